//! Two-phase programming: `take_plan` (the net difference between programmed and desired),
//! `ack` (what was applied), `adopt` (a live map's dump as the programmed baseline).

use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashMap;

use super::arena::ListId;
use super::{Engine, family};
use crate::compact::CompactElement;
use crate::entries::{Entry, Slot};
use crate::field::{FieldError, Reason};
use crate::maps::{CapacityError, Layout, MapId, MapKeyV6, MapValueV6};

/// The compact layout's sets a plan creates, with their content.
type NewSets = Vec<(u32, Vec<Slot>)>;

/// What a plan operation does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create or overwrite the key with the value.
    Upsert,
    /// Delete the key.
    Delete,
}

/// What a plan operation writes: one of Cilium's entries, or an element of the compact
/// layout's maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpSubject {
    /// An entry of Cilium's maps.
    Entry(Entry),
    /// An endpoint or a rule of the compact layout's maps.
    Compact(CompactElement),
}

impl std::fmt::Display for OpSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpSubject::Entry(e) => write!(f, "the entry {} -> {}", e.source, e.destination),
            OpSubject::Compact(block @ CompactElement::Block { base, .. }) => {
                write!(f, "the endpoint block {base} (")?;
                let mut first = true;
                for (ip, set) in block.endpoints() {
                    let sep = if first { "" } else { ", " };
                    write!(f, "{sep}{ip}: set {set}")?;
                    first = false;
                }
                f.write_str(")")
            }
            OpSubject::Compact(CompactElement::Rule { set, slot }) => {
                write!(f, "set {set}'s rule for {}", slot.destination)
            }
        }
    }
}

/// One map operation, with the exact bytes of the configured layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOp {
    action: Action,
    subject: OpSubject,
    map: MapId,
    key: [u8; MapKeyV6::SIZE],
    key_len: u8,
    value: [u8; MapValueV6::SIZE],
    value_len: u8,
}

impl PlanOp {
    /// The operation on `map` (one of the maps of the entry's family).
    fn new(action: Action, entry: Entry, map: MapId) -> Self {
        let mut op = Self {
            action,
            subject: OpSubject::Entry(entry),
            map,
            key: [0; MapKeyV6::SIZE],
            key_len: 0,
            value: [0; MapValueV6::SIZE],
            value_len: 0,
        };
        let with_value = action == Action::Upsert;
        if let Some((k, v)) = entry.to_map_v6() {
            k.encode(sub(&mut op.key));
            op.key_len = MapKeyV6::SIZE as u8;
            if with_value {
                v.encode(sub(&mut op.value));
                op.value_len = MapValueV6::SIZE as u8;
            }
        } else if let Some((k, v)) = entry.to_map_v4() {
            k.encode(sub(&mut op.key));
            op.key_len = crate::maps::MapKeyV4::SIZE as u8;
            if with_value {
                if map == MapId::V4Legacy {
                    let legacy = crate::maps::MapValueV4Legacy {
                        egress_ip: v.egress_ip,
                        gateway_ip: v.gateway_ip,
                    };
                    legacy.encode(sub(&mut op.value));
                } else {
                    v.encode(sub(&mut op.value));
                }
                op.value_len = map.value_size() as u8;
            }
        }
        op
    }

    /// One operation per map of the entry's family that `layout` writes, in Cilium's order.
    fn each_map(action: Action, entry: Entry, layout: Layout, out: &mut Vec<PlanOp>) {
        if entry.source.is_ipv4() {
            for &map in layout.ipv4_maps() {
                out.push(Self::new(action, entry, map));
            }
        } else {
            out.push(Self::new(action, entry, MapId::V6));
        }
    }

    /// The operation writing or deleting one element of the compact layout's maps.
    pub(super) fn compact(action: Action, element: CompactElement) -> Self {
        let mut key = [0u8; crate::compact::MAX_KEY_SIZE];
        let key_len = element.encode_key(&mut key);
        let mut value = [0u8; MapValueV6::SIZE];
        let value_len = if action == Action::Upsert {
            element.encode_value(&mut value)
        } else {
            0
        };
        let mut op = Self {
            action,
            subject: OpSubject::Compact(element),
            map: element.map(),
            key: [0; MapKeyV6::SIZE],
            key_len: key_len as u8,
            value,
            value_len: value_len as u8,
        };
        op.key[..key_len].copy_from_slice(&key[..key_len]);
        op
    }

    /// Upsert or delete.
    pub fn action(&self) -> Action {
        self.action
    }

    /// What it writes or deletes.
    pub fn subject(&self) -> &OpSubject {
        &self.subject
    }

    /// The entry written, or the programmed entry deleted (`None` for the compact layout's
    /// operations: [`PlanOp::compact_element`]).
    pub fn entry(&self) -> Option<&Entry> {
        match &self.subject {
            OpSubject::Entry(e) => Some(e),
            OpSubject::Compact(_) => None,
        }
    }

    /// The compact layout's element written or deleted (`None` for Cilium's layouts).
    pub fn compact_element(&self) -> Option<&CompactElement> {
        match &self.subject {
            OpSubject::Compact(c) => Some(c),
            OpSubject::Entry(_) => None,
        }
    }

    /// The map this operation goes to.
    pub fn map(&self) -> MapId {
        self.map
    }

    /// The encoded key ([`MapId::key_size`] bytes).
    pub fn key(&self) -> &[u8] {
        &self.key[..usize::from(self.key_len)]
    }

    /// The encoded value ([`MapId::value_size`] bytes; empty for a delete).
    pub fn value(&self) -> &[u8] {
        &self.value[..usize::from(self.value_len)]
    }
}

/// A fixed-size prefix of a buffer, for the layouts' `encode` methods.
fn sub<const N: usize, const M: usize>(buf: &mut [u8; M]) -> &mut [u8; N] {
    const { assert!(N <= M) };
    // The const assertion proves the range is in bounds; `first_chunk_mut` cannot fail.
    buf.first_chunk_mut::<N>().unwrap_or_else(|| unreachable!())
}

/// Which plan of which engine: what [`Engine::ack_id`] acknowledges (a binding whose plans
/// are copies, as Go's, keeps this instead of the plan).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PlanId {
    /// The engine that took the plan (unique per engine in the process; never 0).
    pub engine: u64,
    /// The plan's number in that engine, from 1 in the order taken (0: no plan).
    pub sequence: u64,
}

/// What to write, no key twice: every upsert, then every delete (make before break) — or,
/// when that would overflow a map and the desired state fits, every delete of a stale key
/// first ([`Plan::deletes_first`]). Written in order. Acknowledged once, with
/// [`Engine::ack`], by the engine that took it (B.8). Cloning shares the operations.
///
/// Two plans are equal when they hold the same operations, whichever engine took them.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    id: PlanId,
    ops: Arc<Vec<PlanOp>>,
    upserts: usize,
    peak: [usize; 2],
    deletes_first: bool,
    /// The compact layout's sets the plan creates, with their content.
    pub(super) new_sets: Arc<NewSets>,
}

impl PartialEq for Plan {
    fn eq(&self, other: &Self) -> bool {
        (&self.ops, self.upserts, self.peak, self.deletes_first)
            == (&other.ops, other.upserts, other.peak, other.deletes_first)
    }
}

impl Eq for Plan {}

impl Plan {
    /// Which engine took it, and when.
    pub fn id(&self) -> PlanId {
        self.id
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Every operation, in the order to write them: upserts then deletes, or deletes then
    /// upserts when [`Plan::deletes_first`].
    pub fn ops(&self) -> &[PlanOp] {
        &self.ops
    }

    /// Per map (IPv4, IPv6): the most entries the map holds while the plan is written —
    /// programmed entries plus the new keys when the upserts come first; the larger of the
    /// programmed and the desired counts when the deletes come first.
    pub fn peak(&self) -> [usize; 2] {
        self.peak
    }

    /// Whether the stale keys are deleted before the upserts: written upserts first, some
    /// map would overflow although the desired state fits it (SEMANTICS B.5 as issue 21
    /// amends it). For a moment the deleted keys' traffic and the new keys' both follow no
    /// entry (make before break is given up only then).
    pub fn deletes_first(&self) -> bool {
        self.deletes_first
    }

    /// The upserts.
    pub fn upserts(&self) -> &[PlanOp] {
        if self.deletes_first {
            &self.ops[self.ops.len() - self.upserts..]
        } else {
            &self.ops[..self.upserts]
        }
    }

    /// The deletes.
    pub fn deletes(&self) -> &[PlanOp] {
        if self.deletes_first {
            &self.ops[..self.ops.len() - self.upserts]
        } else {
            &self.ops[self.upserts..]
        }
    }
}

impl<'a> IntoIterator for &'a Plan {
    type Item = &'a PlanOp;
    type IntoIter = std::slice::Iter<'a, PlanOp>;

    fn into_iter(self) -> Self::IntoIter {
        self.ops.iter()
    }
}

/// A plan refused before anything was written: its peak would not fit the map.
/// Why no plan was taken: nothing was handed out, nothing recorded as taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The desired state does not fit a map (counted before anything was built).
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// The operations could not be allocated.
    #[error(transparent)]
    OutOfMemory(#[from] crate::error::AllocError),
}

impl From<PlanError> for crate::Error {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Capacity(c) => crate::Error::Capacity(c),
            PlanError::OutOfMemory(a) => crate::Error::OutOfMemory(a),
        }
    }
}

/// A plan's operations and shape, before it is numbered.
struct PlanParts {
    ops: Vec<PlanOp>,
    upserts: usize,
    peak: [usize; 2],
    deletes_first: bool,
}

/// A plan counted, not built.
struct Counted {
    upsert_ops: usize,
    delete_ops: usize,
    shape: Shape,
}

impl Counted {
    fn len(&self) -> usize {
        self.upsert_ops + self.delete_ops
    }
}

/// The order and peak of a plan.
struct Shape {
    peak: [usize; 2],
    deletes_first: bool,
}

/// How a desired slot compares with the programmed one of its key.
enum Change<'a> {
    /// A key the maps do not hold.
    New(&'a Slot),
    /// A key the maps hold with other bytes.
    Changed(&'a Slot),
    /// A programmed key that is not desired.
    Stale(&'a Slot),
}

/// The changes from `programmed` to `desired` (both in [`lookup_order`], one slot per key),
/// netted on what `layout` stores: a merge of the two sorted lists, linear in their lengths.
fn diff_lists<'a>(
    desired: &'a [Slot],
    programmed: &'a [Slot],
    layout: Layout,
    ipv4: bool,
    mut each: impl FnMut(Change<'a>),
) {
    let (mut d, mut p) = (desired.iter().peekable(), programmed.iter().peekable());
    loop {
        match (d.peek(), p.peek()) {
            (Some(&dn), Some(&pn)) => match lookup_order(dn, pn) {
                Ordering::Less => {
                    each(Change::New(dn));
                    d.next();
                }
                Ordering::Greater => {
                    each(Change::Stale(pn));
                    p.next();
                }
                Ordering::Equal => {
                    // Netted on what the layout stores: a legacy IPv4 value has no ifindex,
                    // so a dump (ifindex 0) and the desired entry are equal.
                    if !same_stored(pn, dn, layout, ipv4) {
                        each(Change::Changed(dn));
                    }
                    d.next();
                    p.next();
                }
            },
            (Some(&dn), None) => {
                each(Change::New(dn));
                d.next();
            }
            (None, Some(&pn)) => {
                each(Change::Stale(pn));
                p.next();
            }
            (None, None) => break,
        }
    }
}

/// An acknowledgement refused (B.8): nothing was recorded. A plan is acknowledged once, by
/// the engine that took it, only while it is the last plan taken and the baseline it was
/// taken against is still the engine's, and only up to its length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckError {
    /// The plan was taken from another engine.
    OtherEngine,
    /// No plan was taken from this engine.
    NoneTaken,
    /// The plan (this sequence number) was acknowledged already.
    AlreadyAcknowledged(u64),
    /// A later plan was taken: only the last one can be acknowledged.
    Stale {
        /// The plan's sequence number.
        plan: u64,
        /// The last plan taken.
        last: u64,
    },
    /// The programmed baseline was replaced ([`Engine::adopt`]) after the plan (this
    /// sequence number) was taken.
    Adopted(u64),
    /// The take (this sequence number) handed no plan out: refused for capacity.
    NotHandedOut(u64),
    /// `applied` is past the plan's end.
    PastEnd {
        /// The count given.
        applied: usize,
        /// The plan's length.
        len: usize,
    },
}

impl AckError {
    /// The same error as a field error: path `plan`, or `applied` for [`AckError::PastEnd`].
    pub fn to_field_error(&self) -> FieldError {
        let forbidden = |detail: String| FieldError::new("plan", Reason::Forbidden(detail));
        match *self {
            AckError::OtherEngine => forbidden("taken from another engine".into()),
            AckError::NoneTaken => FieldError::new(
                "plan",
                Reason::Required(Some("no plan has been taken from this engine".into())),
            ),
            AckError::AlreadyAcknowledged(plan) => forbidden(format!(
                "plan {plan} was acknowledged already; take a new plan"
            )),
            AckError::Stale { plan, last } => forbidden(format!(
                "plan {plan} is older than the last plan taken ({last}); acknowledge that one, or take a new plan"
            )),
            AckError::Adopted(plan) => forbidden(format!(
                "the programmed baseline was adopted after plan {plan} was taken; take a new plan"
            )),
            AckError::NotHandedOut(plan) => forbidden(format!(
                "plan {plan} was refused for capacity, nothing was handed out; take a plan"
            )),
            AckError::PastEnd { applied, len } => FieldError::new(
                "applied",
                Reason::Invalid {
                    value: applied.to_string(),
                    detail: format!("more than the plan's {len} operations"),
                },
            ),
        }
    }
}

impl std::fmt::Display for AckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_field_error().fmt(f)
    }
}

impl std::error::Error for AckError {}

/// A baseline refused: nothing was adopted. The compact layout's maps hold set ids that no
/// entry says; they are adopted as their elements ([`Engine::adopt_compact`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdoptError {
    /// The entries given.
    pub entries: usize,
}

impl AdoptError {
    /// The same error as a field error, path `entries`.
    pub fn to_field_error(&self) -> FieldError {
        FieldError::new(
            "entries",
            Reason::Forbidden(format!(
                "the compact layout's maps are adopted as their elements (Engine::adopt_compact; egress-bpf's EgressMaps::adopt_into): {} entries do not say which set ids the kernel holds",
                self.entries
            )),
        )
    }
}

impl std::fmt::Display for AdoptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_field_error().fmt(f)
    }
}

impl std::error::Error for AdoptError {}

impl From<AdoptError> for crate::Error {
    /// An [`crate::Error::InvalidArgument`] naming `entries`.
    fn from(e: AdoptError) -> Self {
        crate::Error::InvalidArgument(e.to_field_error())
    }
}

impl From<AckError> for crate::Error {
    /// An [`crate::Error::InvalidArgument`] naming `plan` or `applied`.
    fn from(e: AckError) -> Self {
        crate::Error::InvalidArgument(e.to_field_error())
    }
}

/// What an engine remembers of its plans, to acknowledge each once (B.8).
#[derive(Debug, Default)]
pub(super) struct PlanBook {
    /// The last plan taken, until it is acknowledged or replaced.
    open: Option<Plan>,
    /// The sequence number of the last plan taken (0: none yet).
    last_taken: u64,
    /// The sequence number of the last plan acknowledged.
    last_acked: u64,
    /// `last_taken` when the baseline was last adopted: plans up to it are void.
    adopted_after: u64,
    /// The last take that handed no plan out (refused for capacity).
    not_handed_out: u64,
}

/// The engine's plan book; a panic while it was held leaves nothing half-updated in it.
pub(super) fn book(plans: &Mutex<PlanBook>) -> MutexGuard<'_, PlanBook> {
    plans
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What `layout` stores of a slot for a source of the family: everything, except the
/// ifindex where the layout's value has none.
fn stored(slot: &Slot, layout: Layout, ipv4: bool) -> Slot {
    let mut stored = *slot;
    if !layout.stores_ifindex(ipv4) {
        stored.egress_ifindex = 0;
    }
    stored
}

/// Whether two slots give the same kernel bytes in `layout` (same key, destination bytes
/// and stored value).
pub(super) fn same_stored(a: &Slot, b: &Slot, layout: Layout, ipv4: bool) -> bool {
    a == b || stored(a, layout, ipv4) == stored(b, layout, ipv4)
}

/// Whether two lists in [`lookup_order`] give the same kernel bytes in `layout`.
pub(super) fn same_stored_lists(a: &[Slot], b: &[Slot], layout: Layout, ipv4: bool) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| same_stored(x, y, layout, ipv4))
}

/// The programmed baseline the live maps of `layout` make, from their elements tagged with
/// their map (elements of other maps are left out). With one IPv4 map, its entries and the
/// IPv6 map's. With two (`dual`, Cilium 1.20's legacy map and `_v4_v2`), one baseline for
/// both: a key both hold with the same bytes is taken as `_v4_v2` holds it; a key only one
/// holds, or that they hold with different bytes, is taken with ifindex `u32::MAX` — which no
/// device has — so that the next plan writes it again to both maps (or deletes it from both).
pub fn baseline(layout: Layout, elements: impl IntoIterator<Item = (MapId, Entry)>) -> Vec<Entry> {
    let dual = layout == Layout::V4Dual;
    let mut out = Vec::new();
    let mut legacy: HashMap<crate::entries::KeyIdentity, Entry> = HashMap::new();
    let mut v4v2: Vec<Entry> = Vec::new();
    for (map, entry) in elements {
        if !layout.maps().contains(&map) {
            continue;
        }
        match map {
            MapId::V4Legacy if dual => {
                legacy.insert(entry.identity(), entry);
            }
            MapId::V4 if dual => v4v2.push(entry),
            _ => out.push(entry),
        }
    }
    for mut entry in v4v2 {
        let same = legacy.remove(&entry.identity()).is_some_and(|l| {
            (l.destination, l.egress_ip, l.gateway_ip)
                == (entry.destination, entry.egress_ip, entry.gateway_ip)
        });
        if !same {
            entry.egress_ifindex = u32::MAX;
        }
        out.push(entry);
    }
    out.extend(legacy.into_values().map(|mut e| {
        e.egress_ifindex = u32::MAX;
        e
    }));
    out
}

/// A vector for `total` plan operations, reserved at once (an allocation the machine
/// refuses is [`PlanError::OutOfMemory`], never an abort).
pub(super) fn reserve_ops(total: usize) -> Result<Vec<PlanOp>, PlanError> {
    let mut ops: Vec<PlanOp> = Vec::new();
    ops.try_reserve_exact(total)
        .map_err(|_| crate::error::AllocError {
            what: "plan operations",
            count: total,
        })?;
    Ok(ops)
}

/// A map's address family (0: IPv4, 1: IPv6).
fn family_of(map: MapId) -> usize {
    usize::from(!map.is_ipv4())
}

/// Canonical order of a source's list: longest prefix first, then by network.
pub(super) fn lookup_order(a: &Slot, b: &Slot) -> Ordering {
    let (la, na) = a.network();
    let (lb, nb) = b.network();
    lb.cmp(&la).then(na.cmp(&nb))
}

impl Engine {
    /// The net difference between the programmed baseline and the desired state, each key
    /// once; empty when nothing changed. All upserts, then all deletes — unless some map's
    /// peak that way (programmed entries plus new keys) would exceed its `max_entries` while
    /// the desired state fits: then the deletes come first ([`Plan::deletes_first`]).
    /// Refused ([`PlanError::Capacity`]) when a map's desired state itself exceeds its
    /// `max_entries`: counted before anything is built, so that an amplifying state costs no
    /// memory; [`PlanError::OutOfMemory`] when the operations cannot be allocated.
    ///
    /// The plan taken is the one [`Engine::ack`] accepts next: taking another (even one
    /// refused for capacity) or adopting a baseline voids it.
    ///
    /// The compact layout's plans write a new set's rules before any endpoint names it and
    /// a dead set's after the last endpoint left it; where the maps cannot hold the old and
    /// the new sets at once while the end state fits, a plan is one step of the change (the
    /// endpoints of some sets): acknowledged, the next plan holds the next step
    /// ([`Stats::pending_sources`](super::Stats::pending_sources) says whether one is due).
    pub fn take_plan(&self) -> Result<Plan, PlanError> {
        self.take_plan_if(|_| true).map(Option::unwrap_or_default)
    }

    /// [`Engine::take_plan`] for a caller that can take only a plan of some lengths (C's
    /// caller buffer): when `fits(len)` is false, `Ok(None)` and nothing is taken — the plan
    /// to acknowledge is still the previous one, as if this call had not been made.
    pub fn take_plan_if(
        &self,
        fits: impl FnOnce(usize) -> bool,
    ) -> Result<Option<Plan>, PlanError> {
        let pending = self.sources.pending();
        let built = if self.config.layout.is_compact() {
            // Sets and endpoints, built at once (at most one operation per endpoint and per
            // rule of a new set: nothing amplifies).
            let built = self.build_compact_plan(&pending);
            if let Ok((p, _)) = &built
                && !fits(p.ops.len())
            {
                return Ok(None);
            }
            built
        } else {
            // Counted first: a size query builds nothing, a refused state allocates nothing.
            let counted = self.count_plan(&pending);
            if let Ok(c) = &counted
                && !fits(c.len())
            {
                return Ok(None);
            }
            counted
                .and_then(|c| self.build_plan(&pending, &c))
                .map(|p| (p, Vec::new()))
        };
        let mut book = book(&self.plans);
        book.last_taken += 1;
        book.open = None;
        let (parts, new_sets) = match built {
            Ok(parts) => parts,
            Err(e) => {
                book.not_handed_out = book.last_taken;
                return Err(e);
            }
        };
        let plan = Plan {
            id: PlanId {
                engine: self.id,
                sequence: book.last_taken,
            },
            ops: Arc::new(parts.ops),
            upserts: parts.upserts,
            peak: parts.peak,
            deletes_first: parts.deletes_first,
            new_sets: Arc::new(new_sets),
        };
        book.open = Some(plan.clone());
        Ok(Some(plan))
    }

    /// A map's capacity: `max_entries`, or for an IPv6 map `max_entries_v6` when set.
    fn map_capacity(&self, map: MapId) -> u32 {
        match self.config.max_entries_v6 {
            Some(v6) if !map.is_ipv4() => v6,
            _ => self.config.max_entries,
        }
    }

    /// The compact layout's plan for the sources of `pending`, and the sets it creates.
    fn build_compact_plan(&self, pending: &[IpAddr]) -> Result<(PlanParts, NewSets), PlanError> {
        let changes = pending.iter().filter_map(|&ip| {
            self.sources
                .get(ip)
                .map(|source| (ip, self.slots.get(source.desired)))
        });
        let plan = self.compact.plan(changes, |map| self.map_capacity(map))?;
        Ok((
            PlanParts {
                ops: plan.ops,
                upserts: plan.upserts,
                peak: plan.peak,
                deletes_first: plan.deletes_first,
            },
            plan.new_sets,
        ))
    }

    /// Every change of the sources of `pending` ([`SourceMap::pending`]), with its source:
    /// the one walk the plan is counted and built by.
    ///
    /// [`SourceMap::pending`]: super::source::SourceMap::pending
    fn each_change<'a>(&'a self, pending: &[IpAddr], mut each: impl FnMut(IpAddr, Change<'a>)) {
        for &ip in pending {
            if let Some(source) = self.sources.get(ip) {
                diff_lists(
                    self.slots.get(source.desired),
                    self.slots.get(source.programmed),
                    self.config.layout,
                    ip.is_ipv4(),
                    |change| each(ip, change),
                );
            }
        }
    }

    /// The next plan counted, without building anything: per family its upserted, new and
    /// stale keys, and its shape (order and peak) or the capacity refusal.
    fn count_plan(&self, pending: &[IpAddr]) -> Result<Counted, PlanError> {
        let layout = self.config.layout;
        let mut upserted = [0usize; 2];
        let mut new_keys = [0usize; 2];
        let mut stale = [0usize; 2];
        self.each_change(pending, |ip, change| {
            let fam = family(ip);
            match change {
                Change::New(_) => {
                    new_keys[fam] += 1;
                    upserted[fam] += 1;
                }
                Change::Changed(_) => upserted[fam] += 1,
                Change::Stale(_) => stale[fam] += 1,
            }
        });
        let shape = self.plan_shape(new_keys, stale)?;
        let per_map = [layout.ipv4_maps().len(), 1];
        Ok(Counted {
            upsert_ops: upserted[0] * per_map[0] + upserted[1] * per_map[1],
            delete_ops: stale[0] * per_map[0] + stale[1] * per_map[1],
            shape,
        })
    }

    /// The counted plan's operations, in a vector reserved once (an allocation the machine
    /// refuses is [`PlanError::OutOfMemory`], never an abort).
    fn build_plan(&self, pending: &[IpAddr], counted: &Counted) -> Result<PlanParts, PlanError> {
        let layout = self.config.layout;
        let total = counted.len();
        // One vector, reserved once, filled in one pass.
        let mut ops = reserve_ops(total)?;
        self.each_change(pending, |ip, change| match change {
            Change::New(d) | Change::Changed(d) => {
                PlanOp::each_map(Action::Upsert, d.entry(ip), layout, &mut ops)
            }
            Change::Stale(p) => PlanOp::each_map(Action::Delete, p.entry(ip), layout, &mut ops),
        });
        // The upserts, then the deletes; each map by map in Cilium's reconcile order (1.20:
        // legacy, `_v4_v2`, IPv6), each map's operations in output order.
        let rank = |op: &PlanOp| layout.maps().iter().position(|m| *m == op.map);
        ops.sort_unstable_by(|a, b| {
            (a.action == Action::Delete)
                .cmp(&(b.action == Action::Delete))
                .then_with(|| rank(a).cmp(&rank(b)))
                .then_with(|| match (&a.subject, &b.subject) {
                    (OpSubject::Entry(x), OpSubject::Entry(y)) => x.display_order(y),
                    _ => Ordering::Equal,
                })
        });
        let count = counted.upsert_ops;
        if counted.shape.deletes_first {
            ops.rotate_left(count);
        }
        Ok(PlanParts {
            ops,
            upserts: count,
            peak: counted.shape.peak,
            deletes_first: counted.shape.deletes_first,
        })
    }

    /// The order and peak of a plan with these new and stale keys per family, or the
    /// capacity refusal. Upserts first (make before break) when every map's peak — its
    /// programmed entries plus the new keys — fits; else, when every map's end state fits,
    /// deletes first (the stale keys go before the new ones come: the peak is then the
    /// larger of the programmed and the end counts); else refused, naming the first map
    /// whose end state does not fit.
    fn plan_shape(&self, new_keys: [usize; 2], stale: [usize; 2]) -> Result<Shape, PlanError> {
        let programmed = self.programmed_count;
        let upserts_first = [0, 1].map(|f| programmed[f] + new_keys[f]);
        // Every stale key is a programmed one.
        let end = [0, 1].map(|f| (programmed[f] + new_keys[f]).saturating_sub(stale[f]));
        let capacity = |map: MapId| (family_of(map), self.map_capacity(map));
        let maps = self.config.layout.maps();
        let fits = |counts: [usize; 2]| {
            maps.iter().all(|&m| {
                let (f, max) = capacity(m);
                counts[f] <= max as usize
            })
        };
        if fits(upserts_first) {
            return Ok(Shape {
                peak: upserts_first,
                deletes_first: false,
            });
        }
        if fits(end) {
            return Ok(Shape {
                peak: [0, 1].map(|f| programmed[f].max(end[f])),
                deletes_first: true,
            });
        }
        let (map, fam, max) = maps
            .iter()
            .map(|&m| (m, capacity(m)))
            .map(|(m, (f, max))| (m, f, max))
            .find(|&(_, f, max)| end[f] > max as usize)
            .unwrap_or_else(|| unreachable!("some map's end state does not fit"));
        Err(PlanError::Capacity(CapacityError {
            map,
            peak: end[fam],
            max_entries: max,
        }))
    }

    /// Sets the compact layout's maps hold (as far as acknowledgements tell; 0 for Cilium's
    /// layouts).
    pub fn compact_set_count(&self) -> usize {
        self.compact.set_count()
    }

    /// The id of the last plan taken (sequence 0: none yet), what [`Engine::ack_last`]
    /// acknowledges.
    pub fn last_plan_id(&self) -> PlanId {
        PlanId {
            engine: self.id,
            sequence: book(&self.plans).last_taken,
        }
    }

    /// Records that the first `applied` operations of `plan` were written: the programmed
    /// baseline moves forward by exactly those; the rest come back in the next plan. Where
    /// one entry goes to two maps (the `dual` layout) and only some of its operations were
    /// written, the maps disagree on it: it is recorded with ifindex `u32::MAX` (which no
    /// device has, as [`baseline`] records a key the live maps disagree on), so that the next
    /// plan writes it again to both maps, or deletes it from both, whatever is desired then.
    ///
    /// Refused, recording nothing (B.8): a plan of another engine, one acknowledged already,
    /// one older than the last plan taken or taken before the baseline was adopted, and
    /// `applied` past the plan's length.
    pub fn ack(&mut self, plan: &Plan, applied: usize) -> Result<(), AckError> {
        self.ack_id(plan.id, applied)
    }

    /// [`Engine::ack`] of the last plan taken (a binding that hands out copies of the
    /// operations, as C does, acknowledges through this).
    pub fn ack_last(&mut self, applied: usize) -> Result<(), AckError> {
        self.ack_id(self.last_plan_id(), applied)
    }

    /// [`Engine::ack`] of the plan `id` names (the engine keeps the last plan taken until it
    /// is acknowledged).
    pub fn ack_id(&mut self, id: PlanId, applied: usize) -> Result<(), AckError> {
        if id.engine != self.id {
            return Err(AckError::OtherEngine);
        }
        let book = self
            .plans
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let len = match &book.open {
            Some(open) if open.id == id => open.len(),
            _ if id.sequence == 0 || id.sequence > book.last_taken => {
                return Err(AckError::NoneTaken);
            }
            _ if id.sequence == book.last_acked => {
                return Err(AckError::AlreadyAcknowledged(id.sequence));
            }
            _ if id.sequence == book.not_handed_out => {
                return Err(AckError::NotHandedOut(id.sequence));
            }
            _ if id.sequence <= book.adopted_after => return Err(AckError::Adopted(id.sequence)),
            _ => {
                return Err(AckError::Stale {
                    plan: id.sequence,
                    last: book.last_taken,
                });
            }
        };
        if applied > len {
            return Err(AckError::PastEnd { applied, len });
        }
        book.last_acked = id.sequence;
        let plan = book.open.take().unwrap_or_default();
        self.record_applied(&plan, applied);
        Ok(())
    }

    /// Moves the baseline forward by the first `applied` operations of `plan`.
    fn record_applied(&mut self, plan: &Plan, applied: usize) {
        if self.config.layout.is_compact() {
            let mut moved = Vec::new();
            self.compact
                .record(&plan.ops[..applied], &plan.new_sets, |ip, list| {
                    moved.push((ip, list))
                });
            for (ip, list) in moved {
                self.set_programmed(ip, list);
            }
            return;
        }
        // A Cilium layout's plan holds entries only.
        let entries = |ops: &'_ [PlanOp]| {
            ops.iter()
                .filter_map(|op| op.entry().map(|e| (op.action, *e)))
                .collect::<Vec<_>>()
        };
        // Per (source, network, action): how many of its operations the plan has beyond the
        // acknowledged prefix (only a dual plan has two per entry).
        let mut pending: HashMap<(IpAddr, (u8, u128), Action), usize> = HashMap::new();
        for (action, entry) in entries(&plan.ops[applied..]) {
            let slot = Slot::from(&entry);
            *pending
                .entry((entry.source, slot.network(), action))
                .or_default() += 1;
        }
        let mut by_source: HashMap<IpAddr, Vec<(Action, Entry, bool)>> = HashMap::new();
        for (action, entry) in entries(&plan.ops[..applied]) {
            let slot = Slot::from(&entry);
            let whole = !pending.contains_key(&(entry.source, slot.network(), action));
            by_source
                .entry(entry.source)
                .or_default()
                .push((action, entry, whole));
        }
        for (ip, ops) in by_source {
            let programmed = self.sources.get(ip).map_or(ListId::EMPTY, |s| s.programmed);
            let mut list: Vec<Slot> = self.slots.get(programmed).to_vec();
            for (action, entry, whole) in ops {
                let mut slot = Slot::from(&entry);
                list.retain(|s| s.network() != slot.network());
                if !whole {
                    // Half written: held by one map, not (or otherwise) by the other.
                    slot.egress_ifindex = u32::MAX;
                    list.push(slot);
                } else if action == Action::Upsert {
                    list.push(slot);
                }
            }
            self.set_programmed(ip, list);
        }
    }

    /// Makes the elements read from the live maps the programmed baseline, each tagged with
    /// its map ([`baseline`] of the configured layout, then [`Engine::adopt`]). Elements of
    /// a map the layout does not write are left out (the compact layout's maps hold no
    /// entries: it adopts none, [`Engine::adopt`]).
    pub fn adopt_maps(
        &mut self,
        elements: impl IntoIterator<Item = (MapId, Entry)>,
    ) -> Result<(), AdoptError> {
        let entries = baseline(self.config.layout, elements);
        self.adopt(entries)
    }

    /// Makes a live map's contents the programmed baseline (a restarted agent then writes
    /// only the difference). Of several entries with one key identity, the last counts.
    ///
    /// The compact layout's maps hold set ids that no entry says: they are adopted as their
    /// elements ([`Engine::adopt_compact`]); here it takes only the empty baseline (empty
    /// maps) and refuses any entry ([`AdoptError`], nothing adopted) — guessing the ids
    /// would point new endpoints at other sets' rules.
    pub fn adopt(&mut self, entries: impl IntoIterator<Item = Entry>) -> Result<(), AdoptError> {
        if self.config.layout.is_compact() {
            let count = entries.into_iter().count();
            if count > 0 {
                return Err(AdoptError { entries: count });
            }
            self.adopt_compact(std::iter::empty());
            return Ok(());
        }
        self.void_plans();
        let mut by_source: HashMap<IpAddr, Vec<Slot>> = HashMap::new();
        for e in entries {
            let list = by_source.entry(e.source).or_default();
            let slot = Slot::from(&e);
            list.retain(|s| s.network() != slot.network());
            list.push(slot);
        }
        let known: Vec<IpAddr> = self.sources.keys();
        for ip in known {
            if !by_source.contains_key(&ip) {
                self.set_programmed(ip, Vec::new());
            }
        }
        for (ip, list) in by_source {
            self.set_programmed(ip, list);
        }
        Ok(())
    }

    /// Makes the compact layout's maps' elements (a dump of them) the programmed baseline:
    /// their endpoints, sets and set ids, so that the next plan writes only the difference.
    /// An engine of one of Cilium's layouts adopts the entries they make
    /// ([`crate::compact::entries_of`]).
    pub fn adopt_compact(&mut self, elements: impl IntoIterator<Item = CompactElement>) {
        if !self.config.layout.is_compact() {
            let entries = crate::compact::entries_of(elements);
            // A Cilium layout adopts any entries.
            let _ = self.adopt(entries.iter().copied());
            return;
        }
        self.void_plans();
        self.compact = super::compact_plan::CompactBook::adopt(elements);
        let endpoints: std::collections::HashSet<IpAddr> = self.compact.endpoints().collect();
        for ip in self.sources.keys() {
            if !endpoints.contains(&ip) {
                self.set_programmed(ip, Vec::new());
            }
        }
        for ip in endpoints {
            let list = self.compact.programmed(ip).to_vec();
            self.set_programmed(ip, list);
        }
    }

    /// Voids the plan taken: after an adoption nothing taken before it is acknowledged.
    fn void_plans(&mut self) {
        let book = self
            .plans
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        book.open = None;
        book.adopted_after = book.last_taken;
    }

    fn set_programmed(&mut self, ip: IpAddr, mut list: Vec<Slot>) {
        list.sort_by(lookup_order);
        let fam = family(ip);
        self.programmed_count[fam] += list.len();
        let id = self.intern_slots(list);
        let old = self.sources.set_programmed(ip, id);
        self.programmed_count[fam] -= self.slots.get(old).len();
        if old != ListId::EMPTY {
            self.release_slots(old);
        }
        self.settle(ip);
    }
}
