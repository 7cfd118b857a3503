//! B.10's precedence as one type: every object that describes a pod (a `CiliumEndpoint`, a
//! `CiliumEndpointSlice` entry, a core `Pod`) is a *claim* on that pod, and the pod's
//! endpoint is its best claim's — a CiliumEndpoint beats a slice entry, which beats a Pod —
//! whatever order the objects came in. A whole dump, inputs merged onto a snapshot and the
//! engine's events all resolve their endpoints here, so the three agree.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::cluster::Endpoint;
use crate::labels::Labels;

/// Which pod an object describes: its namespace and name, or (without both) its uid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PodKey {
    /// `namespace/name`.
    Name(String, String),
    /// An object without a namespace or a name, known by its uid.
    Uid(String),
}

/// One entry of a `CiliumEndpointSlice`, its identity named by id (resolved when the pod's
/// endpoint is made, so that a later `CiliumIdentity` changes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEntry {
    /// The slice that lists it (a later version of that slice without it drops it).
    pub slice: String,
    /// The `CiliumIdentity` name its `id` gives.
    pub id: String,
    /// `networking.addressing`.
    pub ips: Vec<IpAddr>,
    /// The node whose address is `networking.node`, when one is known.
    pub node: Option<String>,
}

/// Where a pod's endpoint comes from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A `CiliumEndpoint`.
    CiliumEndpoint,
    /// A `CiliumEndpointSlice` entry with a known identity.
    SliceEntry,
    /// A core `Pod`.
    Pod,
}

/// What the objects say about one pod.
#[derive(Clone, Debug, Default)]
struct Claim {
    /// When it was first described: endpoints are listed in that order.
    order: usize,
    /// A CiliumEndpoint's uid and endpoint (none for one skipped: no identity or networking
    /// yet): it still describes its pod, whose other objects are not read instead.
    cilium_endpoint: Option<(String, Option<Endpoint>)>,
    slice_entry: Option<SliceEntry>,
    /// A Pod's uid (also when the Pod itself is skipped: a slice entry takes it) and its
    /// endpoint.
    pod: Option<(String, Option<Endpoint>)>,
    /// The uid of the endpoint last resolved for it ([`EndpointClaims::settle`]).
    settled: Option<String>,
}

/// A pod's endpoint as its claims resolve it.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The endpoint, or none (skipped objects only, or a slice entry of an unknown identity).
    pub endpoint: Option<Endpoint>,
    /// Which claim gave it.
    pub source: Option<Source>,
}

/// How a pod's endpoint changed when its claims were settled: the uid to delete (a pod whose
/// uid changed, or that lost every claim) and the endpoint to upsert.
#[derive(Clone, Debug, PartialEq)]
pub struct Settled {
    /// A uid the pod no longer has.
    pub removed: Option<String>,
    /// The pod's endpoint now.
    pub endpoint: Option<Endpoint>,
}

/// Every pod's claims, the identities slice entries name, and which slice lists which pods.
#[derive(Clone, Debug, Default)]
pub struct EndpointClaims {
    pods: HashMap<PodKey, Claim>,
    /// A CiliumEndpoint's or Pod's uid, and the uid each pod's endpoint was settled with, to
    /// its pod ("same namespace and name, or same uid"; a delete by uid finds its pod).
    by_uid: HashMap<String, PodKey>,
    identities: HashMap<String, Labels>,
    /// Identity id → the pods whose slice entry names it.
    users: HashMap<String, BTreeSet<PodKey>>,
    /// Slice name → the pods it lists.
    slices: HashMap<String, Vec<PodKey>>,
    next_order: usize,
}

impl EndpointClaims {
    /// The pod `key` names, or the one an object of the same uid described already.
    fn key_for(&self, key: PodKey, uid: &str) -> PodKey {
        match self.by_uid.get(uid) {
            Some(known) if !uid.is_empty() => known.clone(),
            _ => key,
        }
    }

    fn claim(&mut self, key: PodKey) -> &mut Claim {
        let order = self.next_order;
        let claim = self.pods.entry(key).or_insert_with(|| Claim {
            order,
            ..Claim::default()
        });
        if claim.order == order {
            self.next_order += 1;
        }
        claim
    }

    /// Whether a CiliumEndpoint (`cilium_endpoint`) or a Pod already described the pod of
    /// `key` or `uid`: a whole dump calls two such objects a duplicate.
    pub fn has(&self, key: &PodKey, uid: &str, source: Source) -> bool {
        let key = self.key_for(key.clone(), uid);
        self.pods.get(&key).is_some_and(|c| match source {
            Source::CiliumEndpoint => c.cilium_endpoint.is_some(),
            Source::SliceEntry => c.slice_entry.is_some(),
            Source::Pod => c.pod.is_some(),
        })
    }

    /// A CiliumEndpoint describes a pod (`None`: it is skipped, yet still the pod's).
    /// Returns the pod's key.
    pub fn set_cilium_endpoint(
        &mut self,
        key: PodKey,
        uid: &str,
        endpoint: Option<Endpoint>,
    ) -> PodKey {
        let key = self.key_for(key, uid);
        if !uid.is_empty() {
            self.by_uid.insert(uid.to_owned(), key.clone());
        }
        self.claim(key.clone()).cilium_endpoint = Some((uid.to_owned(), endpoint));
        key
    }

    /// A Pod of uid `uid` describes a pod (`None`: it is skipped: host network, finished).
    /// Returns the pod's key.
    pub fn set_pod(&mut self, key: PodKey, uid: &str, endpoint: Option<Endpoint>) -> PodKey {
        let key = self.key_for(key, uid);
        if !uid.is_empty() {
            self.by_uid.insert(uid.to_owned(), key.clone());
        }
        self.claim(key.clone()).pod = Some((uid.to_owned(), endpoint));
        key
    }

    /// A slice lists exactly `entries` now: pods it listed before and no longer lists lose
    /// their slice entry (unless another slice lists them now). Returns every pod whose
    /// claims changed.
    pub fn set_slice(&mut self, slice: &str, entries: Vec<(PodKey, SliceEntry)>) -> Vec<PodKey> {
        let listed: Vec<PodKey> = entries.iter().map(|(k, _)| k.clone()).collect();
        let before = self
            .slices
            .insert(slice.to_owned(), listed.clone())
            .unwrap_or_default();
        let mut touched = Vec::with_capacity(before.len() + entries.len());
        for key in before {
            if listed.contains(&key) {
                continue;
            }
            if let Some(claim) = self.pods.get_mut(&key)
                && claim.slice_entry.as_ref().is_some_and(|e| e.slice == slice)
                && let Some(old) = claim.slice_entry.take()
            {
                Self::unuse(&mut self.users, &old.id, &key);
                touched.push(key);
            }
        }
        for (key, entry) in entries {
            self.users
                .entry(entry.id.clone())
                .or_default()
                .insert(key.clone());
            let claim = self.claim(key.clone());
            if let Some(old) = claim.slice_entry.replace(entry)
                && claim.slice_entry.as_ref().is_none_or(|e| e.id != old.id)
            {
                Self::unuse(&mut self.users, &old.id, &key);
            }
            touched.push(key);
        }
        touched
    }

    fn unuse(users: &mut HashMap<String, BTreeSet<PodKey>>, id: &str, key: &PodKey) {
        if let Some(set) = users.get_mut(id) {
            set.remove(key);
            if set.is_empty() {
                users.remove(id);
            }
        }
    }

    /// Whether an identity of that id is known.
    pub fn knows_identity(&self, id: &str) -> bool {
        self.identities.contains_key(id)
    }

    /// A `CiliumIdentity`'s labels. Returns the pods whose slice entry names it (none when
    /// its labels did not change).
    pub fn set_identity(&mut self, id: &str, labels: Labels) -> Vec<PodKey> {
        if self.identities.get(id) == Some(&labels) {
            return Vec::new();
        }
        self.identities.insert(id.to_owned(), labels);
        self.users
            .get(id)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the pod whose endpoint has `uid` (it was deleted): every claim on it.
    /// Returns whether one was known. Costs the pod's own claims, not the cluster's.
    pub fn forget_uid(&mut self, uid: &str) -> bool {
        let Some(key) = self.by_uid.get(uid).cloned() else {
            return false;
        };
        let Some(claim) = self.pods.remove(&key) else {
            self.by_uid.remove(uid);
            return false;
        };
        let uids = [
            claim.cilium_endpoint.as_ref().map(|(u, _)| u.as_str()),
            claim.pod.as_ref().map(|(u, _)| u.as_str()),
            claim.settled.as_deref(),
            Some(uid),
        ];
        for known in uids.into_iter().flatten() {
            if self.by_uid.get(known) == Some(&key) {
                self.by_uid.remove(known);
            }
        }
        if let Some(entry) = claim.slice_entry {
            Self::unuse(&mut self.users, &entry.id, &key);
            if let Some(listed) = self.slices.get_mut(&entry.slice) {
                listed.retain(|k| *k != key);
            }
        }
        true
    }

    /// Forgets everything (the engine took a snapshot's endpoints as given).
    pub fn clear(&mut self) {
        *self = EndpointClaims::default();
    }

    /// The pod's endpoint by B.10's precedence.
    pub fn resolve(&self, key: &PodKey) -> Resolved {
        let none = Resolved {
            endpoint: None,
            source: None,
        };
        let Some(claim) = self.pods.get(key) else {
            return none;
        };
        if let Some((_, endpoint)) = &claim.cilium_endpoint {
            return Resolved {
                endpoint: endpoint.clone(),
                source: endpoint.as_ref().map(|_| Source::CiliumEndpoint),
            };
        }
        if let Some(entry) = &claim.slice_entry
            && let Some(labels) = self.identities.get(&entry.id)
        {
            let (namespace, name) = match key {
                PodKey::Name(ns, n) => (Some(ns.clone()), Some(n.clone())),
                PodKey::Uid(_) => (None, None),
            };
            let uid = match (&claim.pod, &namespace, &name) {
                (Some((uid, _)), _, _) if !uid.is_empty() => uid.clone(),
                (_, Some(ns), Some(n)) => format!("{ns}/{n}"),
                _ => String::new(),
            };
            return Resolved {
                endpoint: Some(Endpoint {
                    uid,
                    namespace,
                    name,
                    identity_labels: Some(labels.clone()),
                    ips: entry.ips.clone(),
                    node: entry.node.clone(),
                    ..Endpoint::default()
                }),
                source: Some(Source::SliceEntry),
            };
        }
        match &claim.pod {
            Some((_, Some(endpoint))) => Resolved {
                endpoint: Some(endpoint.clone()),
                source: Some(Source::Pod),
            },
            _ => none,
        }
    }

    /// Resolves the pod again and remembers its uid: what to delete and upsert so that an
    /// engine holds its endpoint now.
    pub fn settle(&mut self, key: &PodKey) -> Settled {
        let endpoint = self.resolve(key).endpoint;
        let now = endpoint.as_ref().map(|e| e.uid.clone());
        let before = match self.pods.get_mut(key) {
            Some(claim) => std::mem::replace(&mut claim.settled, now.clone()),
            None => None,
        };
        if let Some(uid) = &now {
            self.by_uid.insert(uid.clone(), key.clone());
        }
        // A uid the pod no longer has finds it no more (unless an object of it still says it).
        if let Some(old) = before.as_ref().filter(|b| Some(*b) != now.as_ref())
            && let Some(claim) = self.pods.get(key)
        {
            let still_said = claim
                .cilium_endpoint
                .as_ref()
                .is_some_and(|(u, _)| u == old)
                || claim.pod.as_ref().is_some_and(|(u, _)| u == old);
            if !still_said && self.by_uid.get(old) == Some(key) {
                self.by_uid.remove(old);
            }
        }
        Settled {
            removed: before.filter(|b| Some(b) != now.as_ref()),
            endpoint,
        }
    }

    /// Every pod's endpoint, in the order the pods were first described.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let mut keys: Vec<(&PodKey, usize)> = self.pods.iter().map(|(k, c)| (k, c.order)).collect();
        keys.sort_by_key(|(_, order)| *order);
        keys.into_iter()
            .filter_map(|(k, _)| self.resolve(k).endpoint)
            .collect()
    }

    /// The objects of `keys` (one per object that claimed a pod, with its source) that a
    /// better claim beats: counted per kind and said once per kind (B.10).
    pub fn ignored_notes(&self, claimed: &[(PodKey, Source)]) -> Vec<String> {
        let (mut slices, mut pods) = (0usize, 0usize);
        for (key, source) in claimed {
            let Some(claim) = self.pods.get(key) else {
                continue;
            };
            match source {
                Source::SliceEntry if claim.cilium_endpoint.is_some() => slices += 1,
                Source::Pod
                    if claim.pod.as_ref().is_some_and(|(_, ep)| ep.is_some())
                        && (claim.cilium_endpoint.is_some()
                            || self.resolve(key).source == Some(Source::SliceEntry)) =>
                {
                    pods += 1
                }
                _ => {}
            }
        }
        let mut notes = Vec::new();
        if slices > 0 {
            notes.push(format!(
                "{slices} CiliumEndpointSlice entr(ies) ignored: a CiliumEndpoint of the same pod is read (a CiliumEndpoint beats a slice entry, B.10)"
            ));
        }
        if pods > 0 {
            notes.push(format!(
                "{pods} Pod object(s) ignored: a CiliumEndpoint or slice entry of the same pod is read (both beat a Pod, B.10)"
            ));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> PodKey {
        PodKey::Name("ns".into(), name.into())
    }

    fn pod(uid: &str, ip: &str) -> Endpoint {
        Endpoint {
            uid: uid.into(),
            namespace: Some("ns".into()),
            name: Some("p".into()),
            ips: vec![ip.parse().unwrap()],
            ..Endpoint::default()
        }
    }

    fn entry(slice: &str, id: &str) -> SliceEntry {
        SliceEntry {
            slice: slice.into(),
            id: id.into(),
            ips: vec!["10.0.0.9".parse().unwrap()],
            node: None,
        }
    }

    /// A pod first known by its slice entry (uid `ns/p`), then by its Pod (uid `u`): the
    /// endpoint's uid moves, the old uid finds the pod no more, the new one does.
    #[test]
    fn a_delete_finds_the_pod_by_its_current_uid_only() {
        let mut claims = EndpointClaims::default();
        claims.set_identity("7", Labels::default());
        claims.set_slice("s", vec![(key("p"), entry("s", "7"))]);
        let first = claims.settle(&key("p"));
        assert_eq!(first.endpoint.unwrap().uid, "ns/p");
        claims.set_pod(key("p"), "u", Some(pod("u", "10.0.0.1")));
        let second = claims.settle(&key("p"));
        assert_eq!(second.removed.as_deref(), Some("ns/p"));
        let ep = second.endpoint.unwrap();
        assert_eq!((ep.uid.as_str(), ep.ips.len()), ("u", 1));
        assert_eq!(
            ep.ips[0].to_string(),
            "10.0.0.9",
            "the slice entry beats the Pod"
        );
        assert!(!claims.forget_uid("ns/p"), "a uid the pod no longer has");
        assert!(claims.forget_uid("u"));
        assert_eq!(claims.resolve(&key("p")).endpoint, None);
        assert!(!claims.forget_uid("u"));
        // The identity no longer lists the forgotten pod as a user.
        assert!(
            claims
                .set_identity("7", [("a", "b")].into_iter().collect())
                .is_empty()
        );
    }

    /// The resolution is a function of the claims, not of their order; an entry moved to
    /// another slice stays when its old slice drops it.
    #[test]
    fn the_order_of_claims_does_not_matter() {
        let labels: Labels = [("app", "web")].into_iter().collect();
        let mut a = EndpointClaims::default();
        a.set_cilium_endpoint(key("p"), "ce", Some(pod("ce", "10.0.0.2")));
        a.set_pod(key("p"), "u", Some(pod("u", "10.0.0.1")));
        a.set_slice("s", vec![(key("p"), entry("s", "7"))]);
        a.set_identity("7", labels.clone());
        let mut b = EndpointClaims::default();
        b.set_identity("7", labels);
        b.set_slice("s", vec![(key("p"), entry("s", "7"))]);
        b.set_pod(key("p"), "u", Some(pod("u", "10.0.0.1")));
        b.set_cilium_endpoint(key("p"), "ce", Some(pod("ce", "10.0.0.2")));
        assert_eq!(a.resolve(&key("p")), b.resolve(&key("p")));
        assert_eq!(a.resolve(&key("p")).source, Some(Source::CiliumEndpoint));
        let mut c = EndpointClaims::default();
        c.set_identity("7", Labels::default());
        c.set_slice("old", vec![(key("q"), entry("old", "7"))]);
        c.set_slice("new", vec![(key("q"), entry("new", "7"))]);
        assert!(c.set_slice("old", Vec::new()).is_empty());
        assert_eq!(c.resolve(&key("q")).source, Some(Source::SliceEntry));
        assert_eq!(c.set_slice("new", Vec::new()), [key("q")]);
        assert_eq!(c.resolve(&key("q")).endpoint, None);
    }
}
