//! The incremental engine: events in, the desired maps kept up to date, and two-phase plans
//! against what is programmed (ARCHITECTURE.md, "The engine"; SEMANTICS B.1–B.5).
//!
//! State is kept per *source* (endpoint IP): the contributions of every (policy, endpoint)
//! that selects it, and two interned entry lists — the desired one (contributions merged by
//! B.1) and the programmed one (what the kernel map holds as far as acknowledged plans and
//! `adopt` say). A plan is the difference of the two over the sources where they differ.
//! Each event touches only what depends on it: an endpoint event its own sources, a policy
//! event that policy's members, a node or device event the policies whose gateways it
//! changes and the endpoints on that node.

mod arena;
mod compact_plan;
mod diagnostics;
mod endpoints;
mod explain;
mod fastpath;
mod flat_table;
mod membership;
mod merge;
mod objects;
mod plan;
mod policy_index;
mod slab;
mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use hashbrown::HashMap;

pub use crate::maps::CapacityError;
pub use diagnostics::{Diagnostics, InvalidPolicy};
pub use explain::{CompactPlace, Explanation, GatewayReason, Match};
pub use objects::{Applied, PreparedObjects};
pub use plan::{
    AckError, Action, AdoptError, OpSubject, Plan, PlanError, PlanId, PlanOp, baseline,
};

use crate::Error;
use crate::cluster::{Endpoint, Node, NodeHealth, Nodes};
use crate::device::Device;
use crate::entries::{Conflict, Entry, MapEntries, Producer, Slot};
use crate::field::{FieldError, Reason};
use crate::gateway::{PolicyGateways, ResolvedGateway, Selection};
use crate::labels::Labels;
use crate::lookup::{Verdict, VerdictRecord};
use crate::maps::{DEFAULT_MAX_ENTRIES, Layout, capacity};
use crate::policy::{Policy, PolicyErrors, PolicySelectors, parse_policy_for};
use crate::snapshot::Snapshot;
use crate::version::{CiliumVersion, Rules};
use arena::{Arena, ListId};
use endpoints::{EndpointState, EndpointTable};
use source::{Contribution, RankedSlot, SourceMap};

/// How an engine computes and programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// The node whose maps are computed.
    pub local_node: String,
    /// Gateway selection mode.
    pub selection: Selection,
    /// The Cilium version whose rules apply (CILIUM-VERSIONS.md; default 1.18).
    pub cilium_version: CiliumVersion,
    /// The IPv4 maps plans write: the version's own
    /// ([`CiliumVersion::layout`]) unless overridden.
    pub layout: Layout,
    /// Capacity of each map; plans that would exceed it are refused.
    pub max_entries: u32,
    /// Capacity of the IPv6 map when it is not `max_entries` (pinned maps of different
    /// sizes: each is held to its own).
    pub max_entries_v6: Option<u32>,
    /// Cluster name for `io.cilium.k8s.policy.cluster` (absent: `default`).
    pub cluster: Option<String>,
}

impl EngineConfig {
    /// Defaults: Cilium selection, Cilium 1.18 and its layout (the legacy IPv4 map), 16384
    /// entries per map.
    pub fn new(local_node: impl Into<String>) -> Self {
        Self {
            local_node: local_node.into(),
            selection: Selection::Cilium,
            cilium_version: CiliumVersion::V1_18,
            layout: CiliumVersion::V1_18.layout(),
            max_entries: DEFAULT_MAX_ENTRIES,
            max_entries_v6: None,
            cluster: None,
        }
    }
}

impl EngineConfig {
    /// What an engine needs of its configuration, the one rule every binding applies: a
    /// local node (`local_node`), maps of at least one entry (`max_entries`,
    /// `max_entries_v6`: a capacity of 0 is refused — leave it unset for Cilium's 16384), and
    /// a cluster name, when one is given, that is not empty (`cluster`). Errors name the
    /// field; the first one found is returned.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.local_node.is_empty() {
            return Err(FieldError::new(
                "local_node",
                Reason::Required(Some("the node whose maps are computed".into())),
            ));
        }
        capacity("max_entries", Some(self.max_entries))?;
        if let Some(v6) = self.max_entries_v6 {
            capacity("max_entries_v6", Some(v6))?;
        }
        if self.cluster.as_deref() == Some("") {
            return Err(FieldError::invalid_str(
                "cluster",
                "",
                "must not be empty (leave it unset for \"default\")",
            ));
        }
        Ok(())
    }

    /// The same configuration for another Cilium version, with that version's layout.
    pub fn with_cilium_version(mut self, version: CiliumVersion) -> Self {
        self.cilium_version = version;
        self.layout = version.layout();
        self
    }

    /// The same configuration writing `layout` (an override of the version's own).
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The rules entries are computed by: the selection mode on the Cilium version.
    pub fn rules(&self) -> Rules {
        Rules::new(self.selection, self.cilium_version)
    }
}

/// One endpoint under one policy: where its traffic leaves ([`Engine::pod_routes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRoute {
    /// The policy.
    pub policy: String,
    /// The endpoint's uid.
    pub uid: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
    /// The gateway node (`None`: no gateway, traffic dropped).
    pub gateway_node: Option<String>,
    /// The gateway node's IPv4 (the tunnel's destination).
    pub gateway_ip: Option<Ipv4Addr>,
    /// The IPv4 egress IP the gateway SNATs to, known when the local node is the gateway
    /// (an egress IP is derived on its gateway) and it has one.
    pub egress_ipv4: Option<Ipv4Addr>,
    /// The IPv6 egress IP, likewise.
    pub egress_ipv6: Option<std::net::Ipv6Addr>,
}

/// Counts the engine keeps (B.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Desired entries in the IPv4 map.
    pub desired_v4: usize,
    /// Desired entries in the IPv6 map.
    pub desired_v6: usize,
    /// Programmed (acknowledged or adopted) entries in the IPv4 map.
    pub programmed_v4: usize,
    /// Programmed entries in the IPv6 map.
    pub programmed_v6: usize,
    /// Capacity of the IPv4 map.
    pub max_entries: u32,
    /// Capacity of the IPv6 map (`EngineConfig::max_entries_v6`, else `max_entries`).
    pub max_entries_v6: u32,
    /// Sources whose programmed entries differ from the desired ones.
    pub pending_sources: usize,
    /// Valid policies.
    pub policies: usize,
    /// Endpoints.
    pub endpoints: usize,
    /// Nodes.
    pub nodes: usize,
    /// Distinct entry lists stored, and the entries they hold (sharing makes this small).
    pub stored_lists: usize,
    /// Entries held by the stored lists.
    pub stored_list_entries: usize,
}

/// Heap held by the engine, estimated from its tables' capacities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Desired and programmed state: per-source tables, contributions, interned lists.
    pub desired_state: usize,
    /// The part of `desired_state` that [`Engine::lookup`] reads: the per-source record
    /// tables and the compact copies of the desired lists (the working set of lookups).
    pub lookup: usize,
    /// The endpoint table and its indexes (shared identity records not counted).
    pub endpoints: usize,
}

impl MemoryUsage {
    /// Everything counted: the desired state (which includes the lookup working set) and
    /// the endpoint table.
    pub fn total(&self) -> usize {
        self.desired_state + self.endpoints
    }
}

/// An engine loaded from snapshot text ([`Engine::load_snapshot`]).
pub struct LoadedEngine {
    /// The engine, holding the snapshot's objects.
    pub engine: Engine,
    /// The invalid policies left out, with all their errors.
    pub invalid_policies: Vec<PolicyErrors>,
    /// Warnings of a Kubernetes dump's conversion (skipped objects and addresses).
    pub warnings: Vec<String>,
}

type PolicyId = u32;
type EndpointId = u32;

/// A valid policy with everything derived from it.
struct PolicyState {
    policy: Policy,
    selectors: PolicySelectors,
    gateways: PolicyGateways,
    /// Contribution lists per gateway (index as in `gateways.gateways`, then one for "not
    /// found"), for IPv4 and IPv6 sources.
    lists: Vec<[ListId; 2]>,
    /// Selected endpoints and the gateway list index each uses.
    members: HashMap<EndpointId, u16>,
}

impl PolicyState {
    fn not_found_index(&self) -> u16 {
        self.gateways.gateways.len() as u16
    }

    fn gateway(&self, index: u16) -> &ResolvedGateway {
        self.gateways
            .gateways
            .get(index as usize)
            .unwrap_or(&ResolvedGateway::NOT_FOUND)
    }
}

/// The desired entries of one family in output order ([`Engine::entries_streamed`]).
pub struct EntryStream<'a> {
    engine: &'a Engine,
    sources: std::vec::IntoIter<IpAddr>,
    source: Option<IpAddr>,
    /// The current source's slots in output order (by destination address, then length).
    list: Vec<Slot>,
    next: usize,
}

impl Iterator for EntryStream<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            if let (Some(ip), Some(slot)) = (self.source, self.list.get(self.next)) {
                self.next += 1;
                return Some(slot.entry(ip));
            }
            let ip = self.sources.next()?;
            let desired = self.engine.sources.get(ip).map(|s| s.desired);
            self.list.clear();
            self.list
                .extend_from_slice(desired.map_or(&[][..], |id| self.engine.slots.get(id)));
            // Output order within one source (its keys are distinct): destination address,
            // then prefix length — as `Entry::display_order`.
            self.list
                .sort_unstable_by_key(|s| (s.destination.addr, s.destination.len));
            self.source = Some(ip);
            self.next = 0;
        }
    }
}

/// The live engine. See the module documentation.
pub struct Engine {
    /// Unique per engine (never 0): a plan carries it, so that it is acknowledged only
    /// where it was taken.
    id: u64,
    /// The plans taken and acknowledged (B.8); `take_plan` takes `&self`, so behind a lock.
    plans: std::sync::Mutex<plan::PlanBook>,
    config: EngineConfig,
    nodes: Nodes,
    devices: Vec<Device>,
    policy_ids: BTreeMap<String, PolicyId>,
    policies: Vec<Option<PolicyState>>,
    free_policies: Vec<PolicyId>,
    /// The policies by the labels their endpoint selectors require: what an endpoint event
    /// checks.
    policy_index: policy_index::PolicyIndex,
    endpoints: EndpointTable,
    sources: SourceMap,
    ranked: Arena<RankedSlot>,
    slots: Arena<Slot>,
    /// Compact copies of the slot lists, for lookups.
    fast: fastpath::FastLists,
    /// The local node's IPv4, kept at hand for lookups.
    local_ipv4: Option<Ipv4Addr>,
    /// Sources whose contributions changed and must be merged again.
    dirty: Vec<IpAddr>,
    desired_count: [usize; 2],
    programmed_count: [usize; 2],
    /// What the compact layout's maps hold (empty for Cilium's layouts).
    compact: compact_plan::CompactBook,
    /// What the loads reported (B.7).
    diagnostics: Diagnostics,
    /// Each namespace's labels as the last namespace event gave them: a Pod's identity takes
    /// them (B.10).
    namespace_labels: std::collections::HashMap<String, Labels>,
    /// What the object events said about each pod (B.10's precedence, across events).
    claims: crate::snapshot::kubernetes::EndpointClaims,
    /// The nodes a `CiliumNode` event gave: a later `Node` event of the name is ignored.
    cilium_nodes: std::collections::HashSet<String>,
    /// Each node address's nodes by name: where an endpoint object's node address is looked
    /// up (the first by name wins, as in a dump).
    node_addresses: std::collections::HashMap<IpAddr, BTreeSet<String>>,
    /// What the embedding agent says of nodes' health (B.3), by name, over their objects.
    health: std::collections::HashMap<String, NodeHealth>,
    /// Each node's readiness and weight as its last object gave them (what a cleared
    /// [`NodeHealth`] field returns to).
    given_health: std::collections::HashMap<String, (bool, u8)>,
}

// Bindings share an engine between threads for lookups and move engines and plans across
// them (Go moves goroutines between threads): both must stay `Send + Sync`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Engine>();
    send_sync::<Plan>();
};

/// A node's addresses (IPv4 then IPv6).
fn addresses(node: &Node) -> Vec<IpAddr> {
    [node.ip(true), node.ip(false)]
        .into_iter()
        .flatten()
        .collect()
}

fn family(ip: IpAddr) -> usize {
    usize::from(ip.is_ipv6())
}

/// Answers `queries` in groups of 16: every source's probe first (`span`), then every list
/// scan (`answer`), so that the group's probes, then its scans, do not wait one for another
/// and their cache misses overlap. `out` shorter than `queries`: only its length is answered.
#[inline]
fn grouped<Q, T>(
    queries: &[Q],
    out: &mut [T],
    span: impl Fn(&Q) -> fastpath::Span,
    answer: impl Fn(fastpath::Span, &Q) -> T,
) {
    const GROUP: usize = 16;
    for (qs, os) in queries.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        let mut spans = [fastpath::Span::EMPTY; GROUP];
        for (s, q) in spans.iter_mut().zip(qs) {
            *s = span(q);
        }
        for ((o, s), q) in os.iter_mut().zip(spans).zip(qs) {
            *o = answer(s, q);
        }
    }
}

/// The answer of value id `value` (the lookup tables hold one per id; `none` past them, which
/// never happens: a bounds check, not a branch taken), by reference so that the caller copies
/// it from the table ([`FastLists::verdicts`] says why).
#[inline]
fn answer<'a, T>(answers: &'a [T], value: u32, none: &'a T) -> &'a T {
    answers.get(value as usize).unwrap_or(none)
}

impl Engine {
    /// An empty engine.
    pub fn new(config: EngineConfig) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            plans: std::sync::Mutex::default(),
            config,
            nodes: Nodes::new(),
            devices: Vec::new(),
            policy_ids: BTreeMap::new(),
            policies: Vec::new(),
            free_policies: Vec::new(),
            policy_index: policy_index::PolicyIndex::default(),
            endpoints: EndpointTable::new(),
            sources: SourceMap::new(),
            ranked: Arena::new(),
            slots: Arena::new(),
            fast: fastpath::FastLists::default(),
            local_ipv4: None,
            dirty: Vec::new(),
            desired_count: [0; 2],
            programmed_count: [0; 2],
            compact: compact_plan::CompactBook::default(),
            diagnostics: Diagnostics::default(),
            namespace_labels: std::collections::HashMap::new(),
            claims: Default::default(),
            cilium_nodes: Default::default(),
            node_addresses: Default::default(),
            health: Default::default(),
            given_health: Default::default(),
        }
    }

    /// An empty engine, once `config` passes [`EngineConfig::validate`] (what bindings and
    /// user-supplied configurations go through; [`Engine::new`] trusts its caller).
    pub fn try_new(config: EngineConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self::new(config))
    }

    /// An engine holding a snapshot's objects (valid policies only; `config.cluster` is
    /// taken from the snapshot when unset), with the errors of the invalid policies it left
    /// out. Its devices are the local node's. The snapshot's policies were validated by the
    /// version it was read for ([`Snapshot::cilium_version`]; read it with
    /// [`crate::snapshot::load_for`] for `config.cilium_version`, as
    /// [`Engine::load_snapshot`] does); a policy `config.cilium_version`'s schema refuses is
    /// left out too.
    pub fn from_snapshot(
        snapshot: &Snapshot,
        mut config: EngineConfig,
    ) -> (Self, Vec<PolicyErrors>) {
        if config.cluster.is_none() {
            config.cluster = snapshot.cluster.clone();
        }
        let mut engine = Self::new(config);
        let rejected = engine.sync_snapshot(snapshot);
        (engine, rejected)
    }

    /// Loads snapshot text (a snapshot or a Kubernetes dump) as `egressctl list -f` reads it
    /// and computes the maps of `local_node` — named `argument` in errors — or, when `None`,
    /// of the snapshot's `localNode` (a dump names none: then it is required). The rest of
    /// `config` is kept. Invalid policies are left out and returned, as `list` warns of them.
    pub fn load_snapshot(
        text: &str,
        local_node: Option<&str>,
        argument: &str,
        mut config: EngineConfig,
    ) -> Result<LoadedEngine, Error> {
        let loaded = crate::snapshot::load_for(text, config.cilium_version)?;
        let node = loaded.snapshot.node_to_compute(local_node, argument)?;
        config.local_node = node.to_owned();
        config.validate()?;
        let (mut engine, invalid_policies) = Self::from_snapshot(&loaded.snapshot, config);
        engine.diagnostics.skipped = loaded.warnings.clone();
        // A dump's objects: later events of the same cluster keep B.10's precedence.
        if let Some(objects) = loaded.objects {
            engine.claims = objects.claims;
            engine.cilium_nodes = objects.cilium_nodes;
            engine.namespace_labels = objects.namespaces;
            let ctx = crate::snapshot::kubernetes::Context {
                node_at: &|ip| objects::first_node_at(&engine.node_addresses, ip),
                namespace_labels: &|ns| engine.namespace_labels.get(ns).cloned(),
            };
            engine.claims.settle_all(&ctx);
        }
        Ok(LoadedEngine {
            engine,
            invalid_policies,
            warnings: loaded.warnings,
        })
    }

    /// Makes the engine's objects those of `snapshot`, as a stream of updates would: objects
    /// missing from it are deleted, changed ones upserted, and an invalid policy keeps the
    /// version the engine had (its errors are returned). Devices become the local node's.
    pub fn sync_snapshot(&mut self, snapshot: &Snapshot) -> Vec<PolicyErrors> {
        self.diagnostics = Diagnostics::of_snapshot(snapshot, Vec::new());
        // The snapshot's endpoints and nodes are as given: what earlier object events said
        // is gone.
        self.claims.clear();
        self.cilium_nodes.clear();
        let gone: Vec<String> = self
            .nodes
            .keys()
            .filter(|n| !snapshot.nodes.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.delete_node(&name);
        }
        for node in snapshot.nodes.values() {
            // Compared as the objects gave it (before what set_node_health says over it).
            let given = self.nodes.get(&node.name).map(|held| {
                let mut held = held.clone();
                if let Some(&(ready, weight)) = self.given_health.get(&node.name) {
                    (held.ready, held.weight) = (ready, weight);
                }
                held
            });
            if given.as_ref() != Some(node) {
                self.upsert_node(node.clone());
            }
        }
        self.set_devices(snapshot.devices_for(&self.config.local_node).to_vec());
        let mut named: BTreeSet<&str> = BTreeSet::new();
        let mut rejected = Vec::new();
        for policy in &snapshot.policies {
            match policy {
                Ok(p) => {
                    named.insert(&p.name);
                    if self.policy(&p.name) != Some(p)
                        && let Err(errors) = self.upsert_policy(p.clone())
                    {
                        // Valid as the snapshot was read, refused by this engine's version.
                        self.diagnostics
                            .invalid_policies
                            .push(InvalidPolicy::new(0, &errors));
                        rejected.push(errors);
                    }
                }
                Err(errors) => {
                    named.extend(errors.name.as_deref());
                    rejected.push(errors.clone());
                }
            }
        }
        let stale: Vec<String> = self
            .policy_names()
            .filter(|n| !named.contains(n))
            .map(str::to_owned)
            .collect();
        for name in stale {
            self.delete_policy(&name);
        }
        let uids: BTreeSet<&str> = snapshot.endpoints.iter().map(|e| e.uid.as_str()).collect();
        let stale: Vec<String> = self
            .endpoint_uids()
            .into_iter()
            .filter(|u| !uids.contains(u.as_str()))
            .collect();
        for uid in stale {
            self.delete_endpoint(&uid);
        }
        for ep in &snapshot.endpoints {
            // The engine does not keep pod names: compare without them.
            let unnamed = Endpoint {
                name: None,
                ..ep.clone()
            };
            if self.endpoint_by_uid(&ep.uid).as_ref() != Some(&unnamed) {
                self.put_endpoint(ep.clone());
            }
        }
        rejected
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// What the loads reported (SEMANTICS B.7): the last snapshot's invalid policies,
    /// warnings and skipped objects, and what [`Engine::apply_text`] added since.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    // ----- events ------------------------------------------------------------------------

    /// Validates a policy document and upserts it. A rejected update returns every error
    /// and leaves the previous valid version of that policy in force.
    pub fn upsert_policy_document(
        &mut self,
        doc: &crate::document::Value,
    ) -> Result<(), PolicyErrors> {
        let policy = parse_policy_for(doc, self.config.cilium_version)?;
        self.upsert_policy(policy)
    }

    /// Validates the policies of `text` (YAML or JSON: one object, a `List` or a `---`
    /// stream) and upserts them all, or none: the first invalid policy's errors are returned
    /// and every previous version stays in force. Text holding no policy is an error too.
    /// Returns how many policies were upserted.
    pub fn upsert_policy_text(&mut self, text: &str) -> Result<usize, Error> {
        let parsed = crate::policy::parse_policy_text_for(text, self.config.cilium_version)?;
        if parsed.is_empty() {
            return Err(Error::DocumentCount(0));
        }
        // Parsed by the configured version's rules: every policy is valid for it, so none
        // of the upserts below can be refused (all or none).
        let policies = parsed.into_iter().collect::<Result<Vec<_>, _>>()?;
        let count = policies.len();
        for policy in policies {
            self.upsert_policy(policy)?;
        }
        Ok(count)
    }

    /// Upserts a policy (by name). A policy the configured Cilium version's CRD schema
    /// refuses ([`crate::policy::version_errors`]: an IPv6 `egressIP` up to 1.19, more than
    /// 64 `egressGateways` from 1.20) is rejected with those errors, and the previous
    /// version of that policy stays in force.
    pub fn upsert_policy(&mut self, policy: Policy) -> Result<(), PolicyErrors> {
        let errors = crate::policy::version_errors(&policy, self.config.cilium_version);
        if !errors.is_empty() {
            return Err(PolicyErrors {
                name: Some(policy.name),
                errors,
            });
        }
        self.diagnostics.forget_invalid(&policy.name);
        let pid = match self.policy_ids.get(&policy.name) {
            Some(&pid) => {
                self.detach_policy(pid);
                self.policy_index.remove(pid);
                pid
            }
            None => {
                let pid = self
                    .free_policies
                    .pop()
                    .unwrap_or(self.policies.len() as PolicyId);
                if pid as usize == self.policies.len() {
                    self.policies.push(None);
                }
                self.policy_ids.insert(policy.name.clone(), pid);
                pid
            }
        };
        let state = PolicyState {
            selectors: PolicySelectors::compile(&policy),
            gateways: PolicyGateways {
                selection: self.config.selection,
                gateways: Vec::new(),
            },
            lists: Vec::new(),
            members: HashMap::new(),
            policy,
        };
        self.policy_index.insert(pid, &state.selectors);
        self.policies[pid as usize] = Some(state);
        self.resolve_policy(pid);
        self.attach_policy(pid);
        self.flush();
        Ok(())
    }

    /// Deletes a policy; `false` when there was none of that name.
    pub fn delete_policy(&mut self, name: &str) -> bool {
        self.diagnostics.forget_invalid(name);
        let Some(pid) = self.policy_ids.remove(name) else {
            return false;
        };
        self.detach_policy(pid);
        self.policy_index.remove(pid);
        self.policies[pid as usize] = None;
        self.free_policies.push(pid);
        self.flush();
        true
    }

    /// Upserts a node (by name). Its readiness and weight are the object's, unless
    /// [`Engine::set_node_health`] says otherwise.
    pub fn upsert_node(&mut self, mut node: Node) {
        let name = node.name.clone();
        self.given_health
            .insert(name.clone(), (node.ready, node.weight));
        if let Some(health) = self.health.get(&name) {
            node.ready = health.ready.unwrap_or(node.ready);
            node.weight = health.weight.unwrap_or(node.weight);
        }
        self.index_addresses(&node, true);
        let mut moved = addresses(&node);
        let old = self.nodes.insert(name.clone(), node);
        if let Some(old) = &old {
            self.index_addresses_except(old, &name);
            let before = addresses(old);
            if before == moved {
                moved.clear();
            } else {
                moved.extend(before);
            }
        }
        let labels_changed =
            old.as_ref().map(|o| &o.labels) != self.nodes.get(&name).map(|n| &n.labels);
        self.node_changed(&name, labels_changed);
        self.settle_pods_at(&moved);
    }

    /// The pods whose object names a node at one of `addresses` find their node again (a
    /// node there arrived, moved or went).
    fn settle_pods_at(&mut self, addresses: &[IpAddr]) {
        if addresses.is_empty() {
            return;
        }
        // What was said of endpoints naming an address no node had is no longer so when a
        // node there arrives.
        let arrived: Vec<String> = addresses
            .iter()
            .filter(|ip| self.node_addresses.contains_key(ip))
            .map(|ip| format!("node {} matches no", crate::field::quote(&ip.to_string())))
            .collect();
        if !arrived.is_empty() {
            self.diagnostics
                .forget_skipped(|note| arrived.iter().any(|a| note.contains(a.as_str())));
        }
        for key in self.claims.on_node_addresses(addresses) {
            self.settle_pod(&key);
        }
    }

    /// Sets what the embedding agent's probes or an operator say of a node's health (SEMANTICS
    /// B.3): `ready` and `weight` over the node's objects, kept across its object events until
    /// set again (a `None` field: the objects' value again). A node not known yet takes it
    /// when it arrives. Compat mode ignores both, as Cilium does. Refused, changing nothing,
    /// for a weight above 100 (`weight`) or an empty name (`name`). Whether the node is known.
    pub fn set_node_health(&mut self, name: &str, health: NodeHealth) -> Result<bool, Error> {
        let mut errors = Vec::new();
        if name.is_empty() {
            errors.push(crate::field::FieldError::required("name"));
        }
        errors.extend(health.problems());
        if !errors.is_empty() {
            return Err(Error::Input(errors));
        }
        if health == NodeHealth::default() {
            self.health.remove(name);
        } else {
            self.health.insert(name.to_owned(), health);
        }
        let Some(node) = self.nodes.get(name) else {
            return Ok(false);
        };
        let (ready, weight) = *self
            .given_health
            .entry(name.to_owned())
            .or_insert((node.ready, node.weight));
        let (ready, weight) = (
            health.ready.unwrap_or(ready),
            health.weight.unwrap_or(weight),
        );
        if (node.ready, node.weight) != (ready, weight)
            && let Some(node) = self.nodes.get_mut(name)
        {
            node.ready = ready;
            node.weight = weight;
            self.node_changed(name, false);
        }
        Ok(true)
    }

    /// The nodes the valid policies may choose as gateways, whatever their health (every node
    /// an entry offers, [`crate::gateway::offered_nodes`]): what an embedding agent's health
    /// probes watch (B.3), by name, each once, with its readiness and weight as the engine
    /// uses them (after [`Engine::set_node_health`]).
    pub fn gateway_nodes(&self) -> Vec<&Node> {
        let mut out: BTreeMap<&str, &Node> = BTreeMap::new();
        for pid in self.live_policies() {
            if let Some(state) = self.policy_state(pid) {
                for node in crate::gateway::offered_nodes(
                    &state.policy,
                    &state.selectors.gateways,
                    &self.nodes,
                ) {
                    out.insert(node.name.as_str(), node);
                }
            }
        }
        out.into_values().collect()
    }

    /// Deletes a node; `false` when there was none of that name. What
    /// [`Engine::set_node_health`] said of it stays, for when it returns.
    pub fn delete_node(&mut self, name: &str) -> bool {
        self.cilium_nodes.remove(name);
        self.given_health.remove(name);
        let Some(old) = self.nodes.remove(name) else {
            return false;
        };
        self.index_addresses(&old, false);
        let moved = addresses(&old);
        self.node_changed(name, true);
        self.settle_pods_at(&moved);
        true
    }

    /// Adds (`add`) or removes a node's addresses in the address index.
    fn index_addresses(&mut self, node: &Node, add: bool) {
        for ip in [node.ip(true), node.ip(false)].into_iter().flatten() {
            if add {
                self.node_addresses
                    .entry(ip)
                    .or_default()
                    .insert(node.name.clone());
            } else if let Some(names) = self.node_addresses.get_mut(&ip) {
                names.remove(&node.name);
                if names.is_empty() {
                    self.node_addresses.remove(&ip);
                }
            }
        }
    }

    /// Removes from the index the addresses `old` had and the node of its name no longer has.
    fn index_addresses_except(&mut self, old: &Node, name: &str) {
        let now: Vec<IpAddr> = self
            .nodes
            .get(name)
            .map(|n| [n.ip(true), n.ip(false)].into_iter().flatten().collect())
            .unwrap_or_default();
        for ip in [old.ip(true), old.ip(false)].into_iter().flatten() {
            if !now.contains(&ip)
                && let Some(names) = self.node_addresses.get_mut(&ip)
            {
                names.remove(name);
                if names.is_empty() {
                    self.node_addresses.remove(&ip);
                }
            }
        }
    }

    /// Upserts an endpoint given as values (by uid), once it passes [`Endpoint::validate`]
    /// (nothing changes otherwise). Its addresses are values (SEMANTICS B.6): an IPv4-mapped
    /// IPv6 address is the IPv4 address.
    pub fn upsert_endpoint(&mut self, mut endpoint: Endpoint) -> Result<(), Error> {
        endpoint.validate()?;
        for ip in &mut endpoint.ips {
            *ip = crate::netip::address_value(*ip);
        }
        self.put_endpoint(endpoint);
        Ok(())
    }

    /// Upserts an endpoint read from a document ([`crate::snapshot::parse_endpoint`]), once
    /// it passes [`Endpoint::validate`]: its addresses as Cilium reads text (an IPv4-mapped
    /// address stays IPv6, Part A).
    pub fn upsert_read_endpoint(&mut self, endpoint: Endpoint) -> Result<(), Error> {
        endpoint.validate()?;
        self.put_endpoint(endpoint);
        Ok(())
    }

    /// Upserts an endpoint already held to the rules (read, or the engine's own).
    fn put_endpoint(&mut self, endpoint: Endpoint) {
        let cluster = self.config.cluster.clone();
        // The policies that may select it as it was (its memberships are among them) and as
        // it is.
        let mut candidates = Vec::new();
        let eid = match self.endpoints.find(&endpoint.uid) {
            Some(eid) => {
                self.candidate_policies(eid, &mut candidates);
                let same_ips = self
                    .endpoint(eid)
                    .is_some_and(|s| s.ips.as_slice() == endpoint.ips.as_slice());
                if !same_ips {
                    self.detach_endpoint(eid);
                }
                self.endpoints.put(Some(eid), endpoint, cluster.as_deref())
            }
            None => self.endpoints.put(None, endpoint, cluster.as_deref()),
        };
        self.refresh_endpoint(eid, candidates);
        self.flush();
    }

    /// Deletes an endpoint; `false` when there was none with that uid. For an endpoint an
    /// object event gave (B.10), the object carrying that uid is what is deleted — the
    /// CiliumEndpoint or Pod of that uid, or the pod's slice entries for an endpoint one of
    /// them gave — and the pod's other objects may describe it still: a Pod whose
    /// CiliumEndpoint is deleted is then read (the dump of the remaining objects gives the
    /// same).
    pub fn delete_endpoint(&mut self, uid: &str) -> bool {
        match self.claims.forget_uid(uid) {
            Some(key) => {
                self.settle_pod(&key);
                true
            }
            None => self.remove_endpoint(uid),
        }
    }

    /// Removes an endpoint by uid, keeping the claims on its pod.
    fn remove_endpoint(&mut self, uid: &str) -> bool {
        let Some(eid) = self.endpoints.find(uid) else {
            return false;
        };
        self.detach_endpoint(eid);
        self.endpoints.remove(eid);
        self.flush();
        true
    }

    /// Sets the `namespaceLabels` of every endpoint currently in `namespace`, exactly as
    /// re-upserting each of them would; endpoints upserted later carry their own.
    /// Refused, changing nothing, when `namespace` is not a namespace name or a label breaks
    /// Kubernetes' lengths (the rules of [`Endpoint::validate`]; paths `namespace`,
    /// `labels.<key>`).
    pub fn upsert_namespace(
        &mut self,
        namespace: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let labels = Labels::from(labels);
        Endpoint {
            uid: "-".into(),
            namespace: Some(namespace.to_owned()),
            labels: labels.clone(),
            ..Endpoint::default()
        }
        .validate()?;
        self.put_namespace(namespace, labels);
        Ok(())
    }

    /// [`Engine::upsert_namespace`] of labels already held to the rules (read).
    fn put_namespace(&mut self, namespace: &str, labels: Labels) {
        // Kept for the Pods of later events (B.10), whose identity takes them.
        self.namespace_labels
            .insert(namespace.to_owned(), labels.clone());
        for eid in self.endpoints.in_namespace(namespace) {
            let Some(mut endpoint) = self.endpoints.to_endpoint(eid) else {
                continue;
            };
            if endpoint.namespace_labels != labels {
                endpoint.namespace_labels = labels.clone();
                self.put_endpoint(endpoint);
            }
        }
    }

    /// Sets the local node's devices; egress IPs and ifindexes are derived again at once.
    pub fn set_devices(&mut self, devices: Vec<Device>) {
        if self.devices != devices {
            self.devices = devices;
            self.reresolve_all();
            self.flush();
        }
    }

    // ----- queries -----------------------------------------------------------------------

    /// The desired IPv4 and IPv6 map entries, in output order.
    pub fn entries(&self) -> MapEntries {
        let mut all = Vec::with_capacity(self.desired_count[0] + self.desired_count[1]);
        for (ip, source) in self.sources.iter() {
            all.extend(self.slots.get(source.desired).iter().map(|s| s.entry(ip)));
        }
        MapEntries::from_entries(all)
    }

    /// The desired entries of one family (`ipv6`), in output order, made one source at a
    /// time: memory for the sources' addresses and one source's list, never for all the
    /// entries (a size query or a streamed document of millions of entries costs no more).
    /// The same entries, in the same order, as [`Engine::entries`].
    pub fn entries_streamed(&self, ipv6: bool) -> EntryStream<'_> {
        let mut sources: Vec<IpAddr> = self
            .sources
            .iter()
            .filter(|(ip, s)| ip.is_ipv6() == ipv6 && s.desired != ListId::EMPTY)
            .map(|(ip, _)| ip)
            .collect();
        sources.sort_unstable();
        EntryStream {
            engine: self,
            sources: sources.into_iter(),
            source: None,
            list: Vec::new(),
            next: 0,
        }
    }

    /// The number of desired entries per family (IPv4, IPv6): what [`Engine::entries`]
    /// would hold, without building it.
    pub fn entry_counts(&self) -> [usize; 2] {
        self.desired_count
    }

    /// The desired IPv4 map entries, in output order.
    pub fn entries_v4(&self) -> Vec<Entry> {
        self.entries().ipv4
    }

    /// The desired IPv6 map entries, in output order.
    pub fn entries_v6(&self) -> Vec<Entry> {
        self.entries().ipv6
    }

    /// The programmed (acknowledged or adopted) entries, in output order.
    pub fn programmed(&self) -> MapEntries {
        let mut all = Vec::with_capacity(self.programmed_count[0] + self.programmed_count[1]);
        for (ip, source) in self.sources.iter() {
            all.extend(
                self.slots
                    .get(source.programmed)
                    .iter()
                    .map(|s| s.entry(ip)),
            );
        }
        MapEntries::from_entries(all)
    }

    /// What the datapath does with a packet from `src` to `dst`, by the desired entries:
    /// exact source, then the longest destination prefix. Never allocates.
    #[inline]
    pub fn lookup(&self, src: IpAddr, dst: IpAddr) -> Verdict {
        *answer(
            self.fast.verdicts(),
            self.value(src, dst),
            &Verdict::NoEntry,
        )
    }

    /// The value id a lookup answers with (0: no entry, also for two families).
    #[inline]
    fn value(&self, src: IpAddr, dst: IpAddr) -> u32 {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.value_v4(s, d),
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let span = self.sources.desired_span_v6(s);
                self.fast.value_v6(span, u128::from(d))
            }
            _ => 0,
        }
    }

    #[inline]
    fn value_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
        let span = self.sources.desired_span_v4(src);
        self.fast.value_v4(span, u32::from(dst))
    }

    /// [`Engine::lookup`] of addresses given as values, as every binding answers a lookup
    /// (SEMANTICS B.6): IPv4-mapped addresses are IPv4 ([`crate::netip::address_value`]),
    /// and a source and destination of different families are an argument error
    /// ([`crate::lookup::query_addresses`]). Never allocates when it answers.
    pub fn query(&self, src: IpAddr, dst: IpAddr) -> Result<Verdict, FieldError> {
        let (src, dst) = crate::lookup::query_addresses(src, dst)?;
        Ok(self.lookup(src, dst))
    }

    /// [`Engine::lookup`] as a [`VerdictRecord`] (fixed fields: no enum to match on, no
    /// conversion per packet). Never allocates.
    #[inline]
    pub fn lookup_record(&self, src: IpAddr, dst: IpAddr) -> VerdictRecord {
        *answer(
            self.fast.records(),
            self.value(src, dst),
            &VerdictRecord::NO_ENTRY,
        )
    }

    /// [`Engine::lookup_record`] of an IPv4 packet, for callers holding IPv4 addresses (the C
    /// ABI's 4-byte lookups): no `IpAddr` is built, and none copied. Never allocates.
    #[inline]
    pub fn lookup_record_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> VerdictRecord {
        *answer(
            self.fast.records(),
            self.value_v4(src, dst),
            &VerdictRecord::NO_ENTRY,
        )
    }

    /// [`Engine::lookup`] for many independent packets, writing `out[i]` for `queries[i]`
    /// (`out` shorter than `queries`: only its length is answered). Queries are taken in
    /// groups: first every source's hash probe, then every list scan, so that the memory
    /// accesses of a group overlap instead of waiting one for another. Never allocates.
    pub fn lookup_many(&self, queries: &[(IpAddr, IpAddr)], out: &mut [Verdict]) {
        self.lookup_grouped(queries, out, self.fast.verdicts(), &Verdict::NoEntry);
    }

    /// [`Engine::lookup_many`] writing [`VerdictRecord`]s. Never allocates.
    pub fn lookup_many_records(&self, queries: &[(IpAddr, IpAddr)], out: &mut [VerdictRecord]) {
        self.lookup_grouped(queries, out, self.fast.records(), &VerdictRecord::NO_ENTRY);
    }

    /// [`Engine::lookup_many_records`] of IPv4 packets, for callers holding IPv4 addresses
    /// (the C ABI's 4-byte batches): no `IpAddr` is built. Never allocates.
    pub fn lookup_many_records_v4(
        &self,
        queries: &[(Ipv4Addr, Ipv4Addr)],
        out: &mut [VerdictRecord],
    ) {
        grouped(
            queries,
            out,
            |&(src, _)| self.sources.desired_span_v4(src),
            |span, &(_, dst)| {
                *answer(
                    self.fast.records(),
                    self.fast.value_v4(span, u32::from(dst)),
                    &VerdictRecord::NO_ENTRY,
                )
            },
        );
    }

    #[inline]
    fn lookup_grouped<T: Copy>(
        &self,
        queries: &[(IpAddr, IpAddr)],
        out: &mut [T],
        answers: &[T],
        none: &T,
    ) {
        grouped(
            queries,
            out,
            // A query of two families keeps the empty span: its value is 0, no entry.
            |&(src, dst)| {
                if src.is_ipv4() == dst.is_ipv4() {
                    self.sources.desired_span(src)
                } else {
                    fastpath::Span::EMPTY
                }
            },
            |span, &(_, dst)| *answer(answers, self.fast.value(span, dst), none),
        );
    }

    /// Every conflict (B.1): keys with several producers whose bytes differ, in key order.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.conflicts_streamed().collect()
    }

    /// [`Engine::conflicts`] made one source at a time, in the same order: memory for the
    /// sources' addresses and one source's conflicts, never for all of them.
    pub fn conflicts_streamed(&self) -> impl Iterator<Item = Conflict> + '_ {
        let mut sources: Vec<IpAddr> = self
            .sources
            .iter()
            .filter(|(_, s)| !s.contributions.is_empty())
            .map(|(ip, _)| ip)
            .collect();
        // Key order: IPv4 sources first, each family by address (`KeyIdentity`).
        sources.sort_unstable();
        sources.into_iter().flat_map(move |ip| {
            let mut found: Vec<Conflict> = Vec::new();
            if let Some(source) = self.sources.get(ip) {
                for (_, producers) in self.merge_ranked(source.contributions) {
                    let Some((winner, rest)) = producers.split_first() else {
                        continue;
                    };
                    let losers: Vec<Producer> = rest
                        .iter()
                        .filter(|p| p.1.slot != winner.1.slot)
                        .map(|p| self.producer(ip, p))
                        .collect();
                    if !losers.is_empty() {
                        found.push(Conflict {
                            winner: self.producer(ip, winner),
                            losers,
                        });
                    }
                }
            }
            found.sort_by_key(|c| c.winner.entry.identity());
            found
        })
    }

    fn producer(&self, ip: IpAddr, (c, r): &(Contribution, RankedSlot)) -> Producer {
        Producer {
            policy: self.policy_state(c.policy).map_or_else(
                || std::sync::Arc::from(""),
                |s| std::sync::Arc::from(s.policy.name.as_str()),
            ),
            endpoint: self.endpoint(c.endpoint).map_or_else(
                || std::sync::Arc::from(""),
                |e| std::sync::Arc::from(e.uid.to_text()),
            ),
            kind: r.kind,
            cidr_index: r.cidr_index as usize,
            entry: r.slot.entry(ip),
        }
    }

    /// Counts against capacity.
    pub fn stats(&self) -> Stats {
        let (lists, items) = self.slots.size();
        Stats {
            desired_v4: self.desired_count[0],
            desired_v6: self.desired_count[1],
            programmed_v4: self.programmed_count[0],
            programmed_v6: self.programmed_count[1],
            max_entries: self.config.max_entries,
            max_entries_v6: self
                .config
                .max_entries_v6
                .unwrap_or(self.config.max_entries),
            pending_sources: self.sources.pending_len(),
            policies: self.policy_ids.len(),
            endpoints: self.endpoints.len(),
            nodes: self.nodes.len(),
            stored_lists: lists,
            stored_list_entries: items,
        }
    }

    /// Heap the desired-state tables hold (an estimate from capacities; the report binary
    /// measures the engine's whole heap with a counting allocator).
    pub fn memory(&self) -> MemoryUsage {
        MemoryUsage {
            desired_state: self.fast.heap_bytes()
                + self.sources.heap_bytes()
                + self.slots.heap_bytes()
                + self.ranked.heap_bytes(),
            lookup: self.fast.heap_bytes() + self.sources.record_bytes(),
            endpoints: self.endpoints.heap_bytes(),
        }
    }

    /// The local node's IPv4 (decides masquerade vs forward).
    pub fn local_ipv4(&self) -> Option<Ipv4Addr> {
        self.local_ipv4
    }

    /// A policy by name.
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policy_ids
            .get(name)
            .and_then(|&pid| self.policy_state(pid))
            .map(|s| &s.policy)
    }

    /// The gateway an endpoint uses under a policy (`None` when not selected).
    pub fn gateway_of(&self, policy: &str, uid: &str) -> Option<&ResolvedGateway> {
        let state = self.policy_state(*self.policy_ids.get(policy)?)?;
        let eid = self.endpoints.find(uid)?;
        state.members.get(&eid).map(|&g| state.gateway(g))
    }

    /// Every selected (policy, endpoint) and its gateway, by policy name then uid.
    pub fn gateway_choices(&self) -> Vec<crate::entries::GatewayChoice> {
        let mut out = Vec::new();
        for (name, &pid) in &self.policy_ids {
            let Some(state) = self.policy_state(pid) else {
                continue;
            };
            let mut members: Vec<(String, u16)> = state
                .members
                .iter()
                .filter_map(|(&eid, &g)| self.endpoint(eid).map(|e| (e.uid.to_text(), g)))
                .collect();
            members.sort_unstable();
            for (uid, g) in members {
                out.push(crate::entries::GatewayChoice {
                    policy: name.as_str().into(),
                    endpoint: uid.into(),
                    gateway: std::sync::Arc::new(state.gateway(g).clone()),
                });
            }
        }
        out
    }

    /// Where each selected endpoint's traffic leaves, per policy, as this engine sees it
    /// (what `egressctl pods` shows, from one node's view): sorted by namespace, uid, policy.
    /// The engine keeps no pod names (informational; its memory is per entry), so an endpoint
    /// is its namespace and uid.
    pub fn pod_routes(&self) -> Vec<PodRoute> {
        let mut out = Vec::new();
        for (name, &pid) in &self.policy_ids {
            let Some(state) = self.policy_state(pid) else {
                continue;
            };
            for (&eid, &g) in &state.members {
                let Some(endpoint) = self.endpoints.to_endpoint(eid) else {
                    continue;
                };
                let gateway = state.gateway(g);
                let egress = gateway.egress.as_ref();
                out.push(PodRoute {
                    policy: name.clone(),
                    uid: endpoint.uid,
                    namespace: endpoint.namespace,
                    ips: endpoint.ips,
                    gateway_node: gateway.node.clone(),
                    gateway_ip: gateway.node.as_ref().map(|_| gateway.gateway_ip),
                    egress_ipv4: egress.map(|e| e.ipv4).filter(|ip| !ip.is_unspecified()),
                    egress_ipv6: egress.map(|e| e.ipv6).filter(|ip| !ip.is_unspecified()),
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.namespace, &a.uid, &a.policy).cmp(&(&b.namespace, &b.uid, &b.policy))
        });
        out
    }

    /// An endpoint by uid (rebuilt from the engine's compact form).
    pub fn endpoint_by_uid(&self, uid: &str) -> Option<Endpoint> {
        self.endpoints
            .find(uid)
            .and_then(|eid| self.endpoints.to_endpoint(eid))
    }

    /// The nodes.
    pub fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    /// Names of the policies, in name order.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policy_ids.keys().map(String::as_str)
    }

    /// Uids of the endpoints.
    pub fn endpoint_uids(&self) -> Vec<String> {
        self.endpoints
            .ids()
            .into_iter()
            .filter_map(|eid| self.endpoint(eid))
            .map(|e| e.uid.to_text())
            .collect()
    }

    // ----- internals ---------------------------------------------------------------------

    fn policy_state(&self, pid: PolicyId) -> Option<&PolicyState> {
        self.policies.get(pid as usize).and_then(Option::as_ref)
    }

    fn endpoint(&self, eid: EndpointId) -> Option<&EndpointState> {
        self.endpoints.get(eid)
    }

    fn live_policies(&self) -> Vec<PolicyId> {
        self.policy_ids.values().copied().collect()
    }
}

#[cfg(test)]
mod tests;
