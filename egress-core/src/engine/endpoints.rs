//! The engine's endpoint table, kept compact: a cluster holds up to 150,000 endpoints and
//! the engine's memory target is 48 bytes per map entry, everything included.
//!
//! - identity inputs (labels, namespace, its labels, service account) and the identity
//!   labels derived from them are interned: endpoints of one workload share one record;
//! - a canonical UUID uid is kept as its 16 bytes (its text is rebuilt on a stack buffer);
//! - a single IP is kept inline; node names are interned to small ids; pod names (only
//!   informational) are not kept;
//! - the slab grows by fixed chunks, not by doubling;
//! - the uid index stores only endpoint ids, hashing the uid text the slab holds.

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};

use super::EndpointId;
use super::slab::Slab;
use crate::cluster::Endpoint;
use crate::identity::{self, IdentitySource};
use crate::labels::Labels;

/// An endpoint uid: a canonical lowercase UUID as 16 bytes, anything else as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Uid {
    Uuid([u8; 16]),
    Text(Box<str>),
}

const UUID_LEN: usize = 36;
const DASHES: [usize; 4] = [8, 13, 18, 23];

impl Uid {
    pub(crate) fn new(s: &str) -> Self {
        Self::parse_uuid(s).map_or_else(|| Uid::Text(s.into()), Uid::Uuid)
    }

    /// The 16 bytes of a canonical lowercase UUID (exactly what `render` gives back).
    fn parse_uuid(s: &str) -> Option<[u8; 16]> {
        let b = s.as_bytes();
        if b.len() != UUID_LEN || DASHES.iter().any(|&i| b[i] != b'-') {
            return None;
        }
        let mut out = [0u8; 16];
        let mut digits = b
            .iter()
            .enumerate()
            .filter(|(i, _)| !DASHES.contains(i))
            .map(|(_, c)| *c);
        for byte in &mut out {
            let mut v = 0u8;
            for _ in 0..2 {
                let c = digits.next()?;
                let d = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return None,
                };
                v = v << 4 | d;
            }
            *byte = v;
        }
        Some(out)
    }

    fn render(bytes: &[u8; 16], buf: &mut [u8; UUID_LEN]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut at = 0;
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                buf[at] = b'-';
                at += 1;
            }
            buf[at] = HEX[usize::from(byte >> 4)];
            buf[at + 1] = HEX[usize::from(byte & 15)];
            at += 2;
        }
    }

    /// Runs `f` on the uid's text.
    pub(crate) fn with_str<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Uid::Text(s) => f(s),
            Uid::Uuid(bytes) => {
                let mut buf = [0u8; UUID_LEN];
                Self::render(bytes, &mut buf);
                // Rendering writes only ASCII hex digits and dashes.
                f(std::str::from_utf8(&buf).unwrap_or_default())
            }
        }
    }

    pub(crate) fn to_text(&self) -> String {
        self.with_str(str::to_owned)
    }

    /// Byte-wise order of the texts (hex rendering preserves the order of the raw bytes).
    pub(crate) fn cmp_text(&self, other: &Uid) -> Ordering {
        match (self, other) {
            (Uid::Uuid(a), Uid::Uuid(b)) => a.cmp(b),
            (a, b) => a.with_str(|x| b.with_str(|y| x.as_bytes().cmp(y.as_bytes()))),
        }
    }
}

/// An endpoint's addresses; one inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ips {
    One(IpAddr),
    Many(Box<[IpAddr]>),
}

impl Ips {
    fn new(ips: &[IpAddr]) -> Self {
        match ips {
            [one] => Ips::One(*one),
            many => Ips::Many(many.into()),
        }
    }

    pub(crate) fn as_slice(&self) -> &[IpAddr] {
        match self {
            Ips::One(ip) => std::slice::from_ref(ip),
            Ips::Many(ips) => ips,
        }
    }
}

/// What identity labels are derived from, and the result; shared between endpoints.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct IdentityInputs {
    pub(crate) namespace: Option<String>,
    pub(crate) labels: Labels,
    pub(crate) namespace_labels: Labels,
    pub(crate) service_account: Option<String>,
    pub(crate) identity_labels: Option<Labels>,
}

#[derive(Debug)]
pub(crate) struct IdentityRecord {
    pub(crate) inputs: IdentityInputs,
    pub(crate) identity: Labels,
}

/// One endpoint.
#[derive(Debug)]
pub(crate) struct EndpointState {
    pub(crate) uid: Uid,
    pub(crate) ips: Ips,
    /// Interned node name id (`NO_NODE` for none).
    pub(crate) node: u32,
    pub(crate) record: Arc<IdentityRecord>,
}

const NO_NODE: u32 = u32::MAX;

impl EndpointState {
    pub(crate) fn identity(&self) -> &Labels {
        &self.record.identity
    }

    pub(crate) fn namespace(&self) -> Option<&str> {
        self.record.inputs.namespace.as_deref()
    }
}

/// The endpoints, by id, with their indexes.
pub(crate) struct EndpointTable {
    slab: Slab<EndpointState>,
    by_uid: HashTable<EndpointId>,
    records: HashTable<Arc<IdentityRecord>>,
    hasher: DefaultHashBuilder,
    node_ids: HashMap<Box<str>, u32>,
    node_names: Vec<Box<str>>,
    by_node: HashMap<u32, HashSet<EndpointId>>,
    by_namespace: HashMap<Box<str>, HashSet<EndpointId>>,
}

impl EndpointTable {
    pub(crate) fn new() -> Self {
        Self {
            slab: Slab::default(),
            by_uid: HashTable::new(),
            records: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            node_ids: HashMap::new(),
            node_names: Vec::new(),
            by_node: HashMap::new(),
            by_namespace: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn get(&self, eid: EndpointId) -> Option<&EndpointState> {
        self.slab.get(eid)
    }

    /// Ids of all endpoints, ascending.
    pub(crate) fn ids(&self) -> Vec<EndpointId> {
        self.slab.iter().map(|(eid, _)| eid).collect()
    }

    fn uid_hash(&self, uid: &str) -> u64 {
        self.hasher.hash_one(uid)
    }

    pub(crate) fn find(&self, uid: &str) -> Option<EndpointId> {
        let hash = self.uid_hash(uid);
        let slab = &self.slab;
        let matches =
            |&eid: &EndpointId| slab.get(eid).is_some_and(|e| e.uid.with_str(|u| u == uid));
        self.by_uid.find(hash, matches).copied()
    }

    /// The node name of an endpoint.
    pub(crate) fn node_name(&self, state: &EndpointState) -> Option<&str> {
        self.node_names.get(state.node as usize).map(|n| &**n)
    }

    pub(crate) fn on_node(&self, node: &str) -> Vec<EndpointId> {
        let ids = self.node_ids.get(node).and_then(|id| self.by_node.get(id));
        let mut out: Vec<EndpointId> = ids.map(|s| s.iter().copied().collect()).unwrap_or_default();
        out.sort_unstable();
        out
    }

    pub(crate) fn in_namespace(&self, namespace: &str) -> Vec<EndpointId> {
        let mut out: Vec<EndpointId> = self
            .by_namespace
            .get(namespace)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        out.sort_unstable();
        out
    }

    fn intern_node(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.node_ids.get(name) {
            return id;
        }
        let id = self.node_names.len() as u32;
        self.node_names.push(name.into());
        self.node_ids.insert(name.into(), id);
        id
    }

    fn intern_record(
        &mut self,
        inputs: IdentityInputs,
        cluster: Option<&str>,
    ) -> Arc<IdentityRecord> {
        let hash = self.hasher.hash_one(&inputs);
        if let Some(found) = self.records.find(hash, |r| r.inputs == inputs) {
            return Arc::clone(found);
        }
        let identity = identity::given_or_derived(
            inputs.identity_labels.as_ref(),
            IdentitySource {
                labels: &inputs.labels,
                namespace: inputs.namespace.as_deref(),
                namespace_labels: &inputs.namespace_labels,
                service_account: inputs.service_account.as_deref(),
                cluster,
            },
        );
        let record = Arc::new(IdentityRecord { inputs, identity });
        let hasher = &self.hasher;
        self.records
            .insert_unique(hash, Arc::clone(&record), |r| hasher.hash_one(&r.inputs));
        record
    }

    /// Drops a record from the interner when only the interner still holds it.
    fn release_record(&mut self, record: Arc<IdentityRecord>) {
        if Arc::strong_count(&record) == 2 {
            let hash = self.hasher.hash_one(&record.inputs);
            if let Ok(entry) = self.records.find_entry(hash, |r| Arc::ptr_eq(r, &record)) {
                entry.remove();
            }
        }
    }

    /// Stores an endpoint under `eid` (a new id when `None`), returning the id.
    pub(crate) fn put(
        &mut self,
        eid: Option<EndpointId>,
        ep: Endpoint,
        cluster: Option<&str>,
    ) -> EndpointId {
        if let Some(state) = eid.and_then(|old| self.take(old)) {
            self.release_record(state.record);
        }
        let inputs = IdentityInputs {
            namespace: ep.namespace,
            labels: ep.labels,
            namespace_labels: ep.namespace_labels,
            service_account: ep.service_account,
            identity_labels: ep.identity_labels,
        };
        let record = self.intern_record(inputs, cluster);
        let node = ep.node.as_deref().map_or(NO_NODE, |n| self.intern_node(n));
        let state = EndpointState {
            uid: Uid::new(&ep.uid),
            ips: Ips::new(&ep.ips),
            node,
            record,
        };
        let namespace: Option<Box<str>> = state.namespace().map(Into::into);
        let eid = match eid {
            Some(eid) => {
                self.slab.put(eid, state);
                eid
            }
            None => self.slab.insert(state),
        };
        if node != NO_NODE {
            self.by_node.entry(node).or_default().insert(eid);
        }
        if let Some(ns) = namespace {
            self.by_namespace.entry(ns).or_default().insert(eid);
        }
        let hash = self.uid_hash(&ep.uid);
        let (slab, hasher) = (&self.slab, &self.hasher);
        let rehash = |&id: &EndpointId| {
            slab.get(id)
                .map_or(0, |e| e.uid.with_str(|u| hasher.hash_one(u)))
        };
        self.by_uid.insert_unique(hash, eid, rehash);
        eid
    }

    /// Removes an endpoint; its id may be reused by `put(None, ..)` unless `put(Some(id))`
    /// is called next, as a replacement does.
    fn take(&mut self, eid: EndpointId) -> Option<EndpointState> {
        let state = self.slab.take(eid)?;
        let hash = state.uid.with_str(|u| self.uid_hash(u));
        if let Ok(entry) = self.by_uid.find_entry(hash, |&id| id == eid) {
            entry.remove();
        }
        if let Some(set) = self.by_node.get_mut(&state.node) {
            set.remove(&eid);
            if set.is_empty() {
                self.by_node.remove(&state.node);
            }
        }
        if let Some(ns) = state.namespace()
            && let Some(set) = self.by_namespace.get_mut(ns)
        {
            set.remove(&eid);
            if set.is_empty() {
                self.by_namespace.remove(ns);
            }
        }
        Some(state)
    }

    /// Deletes an endpoint for good (its id becomes free).
    pub(crate) fn remove(&mut self, eid: EndpointId) {
        if let Some(state) = self.take(eid) {
            self.release_record(state.record);
            self.slab.release_id(eid);
        }
    }

    /// The endpoint as an object again (without its informational pod name: not kept).
    pub(crate) fn to_endpoint(&self, eid: EndpointId) -> Option<Endpoint> {
        let s = self.get(eid)?;
        let inputs = &s.record.inputs;
        Some(Endpoint {
            uid: s.uid.to_text(),
            namespace: inputs.namespace.clone(),
            name: None,
            labels: inputs.labels.clone(),
            namespace_labels: inputs.namespace_labels.clone(),
            service_account: inputs.service_account.clone(),
            identity_labels: inputs.identity_labels.clone(),
            ips: s.ips.as_slice().to_vec(),
            node: self.node_name(s).map(str::to_owned),
        })
    }

    /// Heap bytes held, estimated from capacities (shared identity records not counted).
    pub(crate) fn heap_bytes(&self) -> usize {
        let per_endpoint: usize = self
            .slab
            .iter()
            .map(|(_, s)| {
                let uid = match &s.uid {
                    Uid::Text(t) => t.len(),
                    Uid::Uuid(_) => 0,
                };
                let ips = match &s.ips {
                    Ips::Many(m) => m.len() * size_of::<IpAddr>(),
                    Ips::One(_) => 0,
                };
                uid + ips
            })
            .sum();
        per_endpoint
            + self.slab.heap_bytes()
            + self.by_uid.capacity() * (size_of::<EndpointId>() + 1)
            + self
                .by_node
                .values()
                .map(|s| s.capacity() * 5)
                .sum::<usize>()
            + self
                .by_namespace
                .values()
                .map(|s| s.capacity() * 5)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_kept_as_bytes_and_render_back() {
        let s = "5f48eab5-b251-555b-94c0-7481bd903033";
        let uid = Uid::new(s);
        assert!(matches!(uid, Uid::Uuid(_)));
        assert_eq!(uid.to_text(), s);
        for other in [
            "5F48EAB5-B251-555B-94C0-7481BD903033",
            "u1",
            "5f48eab5b251555b94c07481bd903033",
            "5f48eab5-b251-555b-94c0-7481bd90303g",
        ] {
            assert!(matches!(Uid::new(other), Uid::Text(_)), "{other}");
            assert_eq!(Uid::new(other).to_text(), other);
        }
        let a = Uid::new("0000fc84-7d12-56e3-b02b-f4e718b0c6b3");
        let b = Uid::new("000fc843-7d12-56e3-b02b-f4e718b0c6b3");
        let c = Uid::new("000fc843-zzz");
        assert_eq!(a.cmp_text(&b), Ordering::Less);
        assert_eq!(
            b.cmp_text(&c),
            "000fc843-7d12-56e3-b02b-f4e718b0c6b3".cmp("000fc843-zzz")
        );
        assert_eq!(c.cmp_text(&b), Ordering::Greater);
    }

    #[test]
    fn records_are_shared_and_released() {
        let mut t = EndpointTable::new();
        let ep = |uid: &str| Endpoint {
            uid: uid.into(),
            namespace: Some("ns".into()),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            ips: vec!["10.0.0.1".parse().unwrap()],
            node: Some("n1".into()),
            ..Endpoint::default()
        };
        let a = t.put(None, ep("a"), None);
        let b = t.put(None, ep("b"), None);
        assert!(Arc::ptr_eq(
            &t.get(a).unwrap().record,
            &t.get(b).unwrap().record
        ));
        assert_eq!(t.records.len(), 1);
        assert_eq!(t.find("b"), Some(b));
        assert_eq!(t.on_node("n1"), vec![a, b]);
        assert_eq!(t.in_namespace("ns"), vec![a, b]);
        assert_eq!(
            t.to_endpoint(a).unwrap(),
            Endpoint {
                name: None,
                ..ep("a")
            }
        );
        t.remove(a);
        assert_eq!(t.records.len(), 1);
        t.remove(b);
        assert_eq!(t.records.len(), 0);
        assert_eq!((t.len(), t.find("a")), (0, None));
        assert!(t.on_node("n1").is_empty());
        // Replacing keeps the id.
        let c = t.put(None, ep("c"), None);
        let mut moved = ep("c");
        moved.node = Some("n2".into());
        assert_eq!(t.put(Some(c), moved, None), c);
        assert_eq!(t.on_node("n2"), vec![c]);
        assert!(t.on_node("n1").is_empty());
        assert_eq!(t.len(), 1);
    }
}
