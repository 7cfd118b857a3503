//! B.10's precedence as one type: every object that describes a pod (a `CiliumEndpoint`, a
//! `CiliumEndpointSlice` entry, a core `Pod`) is a *claim* on that pod, and the pod's
//! endpoint is its best claim's — a CiliumEndpoint beats a slice entry, which beats a Pod —
//! whatever order the objects came in. What a claim names by reference (its node's address,
//! its identity, its namespace's labels) is looked up when the endpoint is resolved, so a node,
//! identity or namespace arriving later changes it too. A whole dump, inputs merged onto a
//! snapshot and the engine's events all resolve their endpoints here, so the three agree.

use std::collections::{BTreeSet, HashMap, HashSet};
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

/// One entry of a `CiliumEndpointSlice`, its identity named by id and its node by address
/// (both resolved when the pod's endpoint is made).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEntry {
    /// The slice that lists it (a later version of that slice without it drops it).
    pub slice: String,
    /// The `CiliumIdentity` name its `id` gives.
    pub id: String,
    /// `networking.addressing`.
    pub ips: Vec<IpAddr>,
    /// `networking.node`, parsed.
    pub node_ip: Option<IpAddr>,
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

/// What a resolution looks up: the node of an address, a namespace's labels.
pub struct Context<'a> {
    /// The node whose address this is (the first by name when several have it).
    pub node_at: &'a dyn Fn(IpAddr) -> Option<String>,
    /// A namespace's labels, when known.
    pub namespace_labels: &'a dyn Fn(&str) -> Option<Labels>,
}

/// A CiliumEndpoint's claim.
#[derive(Clone, Debug)]
struct CiliumClaim {
    uid: String,
    /// Its endpoint; none for one skipped (no identity or networking yet): it still
    /// describes its pod, whose other objects are not read instead.
    endpoint: Option<Endpoint>,
    /// `status.networking.node`, parsed.
    node_ip: Option<IpAddr>,
}

/// What the objects say about one pod.
#[derive(Clone, Debug, Default)]
struct Claim {
    /// When it was first described: endpoints are listed in that order.
    order: usize,
    cilium_endpoint: Option<CiliumClaim>,
    /// The entries of the slices listing it, the latest last (a pod moving between slices
    /// is in two for a while).
    slice_entries: Vec<SliceEntry>,
    /// A Pod's uid (also when the Pod itself is skipped: a slice entry takes it) and its
    /// endpoint.
    pod: Option<(String, Option<Endpoint>)>,
    /// The uid of the endpoint last resolved for it ([`EndpointClaims::settle`]).
    settled: Option<String>,
}

impl Claim {
    fn is_empty(&self) -> bool {
        self.cilium_endpoint.is_none() && self.slice_entries.is_empty() && self.pod.is_none()
    }

    /// The uids its objects carry.
    fn carries(&self, uid: &str) -> bool {
        self.cilium_endpoint.as_ref().is_some_and(|c| c.uid == uid)
            || self.pod.as_ref().is_some_and(|(u, _)| u == uid)
    }

    /// The node addresses it names.
    fn node_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .slice_entries
            .iter()
            .filter_map(|e| e.node_ip)
            .chain(self.cilium_endpoint.as_ref().and_then(|c| c.node_ip))
            .collect();
        ips.sort_unstable();
        ips.dedup();
        ips
    }

    fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.slice_entries.iter().map(|e| e.id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
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

/// Every pod's claims, the identities slice entries name, which slice lists which pods, and
/// which pods name which node address.
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
    /// Node address → the pods whose CiliumEndpoint or slice entry names it.
    on_node_ip: HashMap<IpAddr, BTreeSet<PodKey>>,
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

    /// Changes the claim of `key` (created when new), keeping the uid, identity and node
    /// indexes in step with it.
    fn change<R>(&mut self, key: &PodKey, f: impl FnOnce(&mut Claim) -> R) -> R {
        let order = self.next_order;
        let claim = self.pods.entry(key.clone()).or_insert_with(|| Claim {
            order,
            ..Claim::default()
        });
        if claim.order == order {
            self.next_order += 1;
        }
        let (ids, ips) = (claim.ids(), claim.node_ips());
        let carried: Vec<String> = claim
            .cilium_endpoint
            .iter()
            .map(|c| c.uid.clone())
            .chain(claim.pod.iter().map(|(u, _)| u.clone()))
            .collect();
        let out = f(claim);
        let (now_ids, now_ips) = (claim.ids(), claim.node_ips());
        let released: Vec<String> = carried
            .into_iter()
            .filter(|u| !claim.carries(u) && claim.settled.as_deref() != Some(u.as_str()))
            .collect();
        let now_carried: Vec<String> = claim
            .cilium_endpoint
            .iter()
            .map(|c| c.uid.clone())
            .chain(claim.pod.iter().map(|(u, _)| u.clone()))
            .filter(|u| !u.is_empty())
            .collect();
        for uid in released {
            if self.by_uid.get(&uid) == Some(key) {
                self.by_uid.remove(&uid);
            }
        }
        for uid in now_carried {
            self.by_uid.insert(uid, key.clone());
        }
        for id in ids.iter().filter(|i| !now_ids.contains(i)) {
            Self::unlink(&mut self.users, id, key);
        }
        for id in now_ids {
            self.users.entry(id).or_default().insert(key.clone());
        }
        for ip in ips.iter().filter(|i| !now_ips.contains(i)) {
            Self::unlink(&mut self.on_node_ip, ip, key);
        }
        for ip in now_ips {
            self.on_node_ip.entry(ip).or_default().insert(key.clone());
        }
        out
    }

    fn unlink<K: std::hash::Hash + Eq>(
        index: &mut HashMap<K, BTreeSet<PodKey>>,
        at: &K,
        key: &PodKey,
    ) {
        if let Some(set) = index.get_mut(at) {
            set.remove(key);
            if set.is_empty() {
                index.remove(at);
            }
        }
    }

    /// Whether an object of `source`'s kind already described the pod of `key` or `uid`: a
    /// whole dump calls two such objects a duplicate.
    pub fn has(&self, key: &PodKey, uid: &str, source: Source) -> bool {
        let key = self.key_for(key.clone(), uid);
        self.pods.get(&key).is_some_and(|c| match source {
            Source::CiliumEndpoint => c.cilium_endpoint.is_some(),
            Source::SliceEntry => !c.slice_entries.is_empty(),
            Source::Pod => c.pod.is_some(),
        })
    }

    /// A CiliumEndpoint of uid `uid` describes a pod (`endpoint` none: it is skipped, yet
    /// still the pod's), its node at `node_ip`. Returns the pod's key.
    pub fn set_cilium_endpoint(
        &mut self,
        key: PodKey,
        uid: &str,
        endpoint: Option<Endpoint>,
        node_ip: Option<IpAddr>,
    ) -> PodKey {
        let key = self.key_for(key, uid);
        let uid = uid.to_owned();
        self.change(&key, |c| {
            c.cilium_endpoint = Some(CiliumClaim {
                uid,
                endpoint,
                node_ip,
            })
        });
        key
    }

    /// A Pod of uid `uid` describes a pod (`None`: it is skipped: host network, finished).
    /// Returns the pod's key.
    pub fn set_pod(&mut self, key: PodKey, uid: &str, endpoint: Option<Endpoint>) -> PodKey {
        let key = self.key_for(key, uid);
        let uid = uid.to_owned();
        self.change(&key, |c| c.pod = Some((uid, endpoint)));
        key
    }

    /// A slice lists exactly `entries` now: pods it listed before and no longer lists lose
    /// its entry (an entry of another slice listing them stays). Returns every pod whose
    /// claims changed.
    pub fn set_slice(&mut self, slice: &str, entries: Vec<(PodKey, SliceEntry)>) -> Vec<PodKey> {
        let listed: Vec<PodKey> = entries.iter().map(|(k, _)| k.clone()).collect();
        let before = self
            .slices
            .insert(slice.to_owned(), listed.clone())
            .unwrap_or_default();
        let still: HashSet<&PodKey> = listed.iter().collect();
        let mut touched = Vec::with_capacity(before.len() + entries.len());
        for key in before {
            if still.contains(&key) || !self.pods.contains_key(&key) {
                continue;
            }
            self.change(&key, |c| c.slice_entries.retain(|e| e.slice != slice));
            touched.push(key);
        }
        for (key, entry) in entries {
            self.change(&key, |c| {
                c.slice_entries.retain(|e| e.slice != entry.slice);
                c.slice_entries.push(entry);
            });
            touched.push(key);
        }
        touched
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

    /// The pods whose CiliumEndpoint or slice entry names a node at one of `addresses`: the
    /// ones to resolve again when a node there arrives, moves or goes.
    pub fn on_node_addresses(&self, addresses: &[IpAddr]) -> Vec<PodKey> {
        let mut keys: BTreeSet<PodKey> = BTreeSet::new();
        for ip in addresses {
            keys.extend(self.on_node_ip.get(ip).into_iter().flatten().cloned());
        }
        keys.into_iter().collect()
    }

    /// The endpoint of `uid` was deleted: the objects carrying that uid are forgotten — its
    /// CiliumEndpoint or Pod, or, for an endpoint a slice entry gave, the pod's slice
    /// entries. Returns the pod to settle again (another object of it may describe it now),
    /// `None` when no object carries the uid. Costs the pod's own claims.
    pub fn forget_uid(&mut self, uid: &str) -> Option<PodKey> {
        let key = self.by_uid.get(uid).cloned()?;
        let Some(claim) = self.pods.get(&key) else {
            self.by_uid.remove(uid);
            return None;
        };
        let from_slice = !claim.carries(uid) && claim.settled.as_deref() == Some(uid);
        let lists: Vec<String> = if from_slice {
            claim
                .slice_entries
                .iter()
                .map(|e| e.slice.clone())
                .collect()
        } else {
            Vec::new()
        };
        self.change(&key, |c| {
            if c.cilium_endpoint.as_ref().is_some_and(|ce| ce.uid == uid) {
                c.cilium_endpoint = None;
            }
            if c.pod.as_ref().is_some_and(|(u, _)| u == uid) {
                c.pod = None;
            }
            if from_slice {
                c.slice_entries.clear();
            }
        });
        for slice in lists {
            if let Some(listed) = self.slices.get_mut(&slice) {
                listed.retain(|k| *k != key);
            }
        }
        Some(key)
    }

    /// Forgets everything (the engine took a snapshot's endpoints as given).
    pub fn clear(&mut self) {
        *self = EndpointClaims::default();
    }

    /// The pod's endpoint by B.10's precedence, its references looked up in `ctx`.
    pub fn resolve(&self, key: &PodKey, ctx: &Context<'_>) -> Resolved {
        let none = Resolved {
            endpoint: None,
            source: None,
        };
        let Some(claim) = self.pods.get(key) else {
            return none;
        };
        if let Some(ce) = &claim.cilium_endpoint {
            let endpoint = ce.endpoint.clone().map(|mut ep| {
                if let Some(ip) = ce.node_ip {
                    ep.node = (ctx.node_at)(ip);
                }
                ep
            });
            return Resolved {
                source: endpoint.as_ref().map(|_| Source::CiliumEndpoint),
                endpoint,
            };
        }
        if let Some((entry, labels)) = claim
            .slice_entries
            .iter()
            .rev()
            .find_map(|e| Some((e, self.identities.get(&e.id)?)))
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
                    node: entry.node_ip.and_then(|ip| (ctx.node_at)(ip)),
                    ..Endpoint::default()
                }),
                source: Some(Source::SliceEntry),
            };
        }
        match &claim.pod {
            Some((_, Some(endpoint))) => {
                let mut endpoint = endpoint.clone();
                if let Some(labels) = endpoint
                    .namespace
                    .as_deref()
                    .and_then(|ns| (ctx.namespace_labels)(ns))
                {
                    endpoint.namespace_labels = labels;
                }
                Resolved {
                    endpoint: Some(endpoint),
                    source: Some(Source::Pod),
                }
            }
            _ => none,
        }
    }

    /// Resolves the pod again and remembers its uid: what to delete and upsert so that an
    /// engine holds its endpoint now. A pod left with no object is forgotten.
    pub fn settle(&mut self, key: &PodKey, ctx: &Context<'_>) -> Settled {
        let endpoint = self.resolve(key, ctx).endpoint;
        let now = endpoint.as_ref().map(|e| e.uid.clone());
        let Some(claim) = self.pods.get_mut(key) else {
            return Settled {
                removed: None,
                endpoint,
            };
        };
        let before = std::mem::replace(&mut claim.settled, now.clone());
        let empty = claim.is_empty();
        // A uid the pod no longer has finds it no more (unless an object of it says it).
        if let Some(old) = before.as_ref().filter(|b| Some(*b) != now.as_ref())
            && !claim.carries(old)
            && self.by_uid.get(old) == Some(key)
        {
            self.by_uid.remove(old);
        }
        if let Some(uid) = &now {
            self.by_uid.insert(uid.clone(), key.clone());
        }
        if empty {
            self.pods.remove(key);
        }
        Settled {
            removed: before.filter(|b| Some(b) != now.as_ref()),
            endpoint,
        }
    }

    /// Remembers every pod's endpoint as resolved now as the one an engine holds (it was
    /// loaded from the same objects' snapshot).
    pub fn settle_all(&mut self, ctx: &Context<'_>) {
        let keys: Vec<PodKey> = self.pods.keys().cloned().collect();
        for key in keys {
            self.settle(&key, ctx);
        }
    }

    /// Every pod's endpoint, in the order the pods were first described.
    pub fn endpoints(&self, ctx: &Context<'_>) -> Vec<Endpoint> {
        let mut keys: Vec<(&PodKey, usize)> = self.pods.iter().map(|(k, c)| (k, c.order)).collect();
        keys.sort_by_key(|(_, order)| *order);
        keys.into_iter()
            .filter_map(|(k, _)| self.resolve(k, ctx).endpoint)
            .collect()
    }

    /// The slice entries whose identity is not known (each pod once, its latest entry's id),
    /// as `<namespace>/<name>: identity "ID" is not in the input ...: entry skipped`.
    pub fn waiting_for_identity(&self) -> Vec<String> {
        let mut out: Vec<(usize, String)> = self
            .pods
            .iter()
            .filter(|(_, c)| {
                !c.slice_entries.is_empty()
                    && c.slice_entries.iter().all(|e| !self.identities.contains_key(&e.id))
            })
            .filter_map(|(k, c)| {
                let id = &c.slice_entries.last()?.id;
                let who = match k {
                    PodKey::Name(ns, n) => format!("{ns}/{n}"),
                    PodKey::Uid(u) => u.clone(),
                };
                Some((
                    c.order,
                    format!(
                        "{who}: identity {} is not in the input (no CiliumIdentity of that name): entry skipped",
                        crate::field::quote(id)
                    ),
                ))
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, w)| w).collect()
    }

    /// The objects of `claimed` (one per object that claimed a pod, with its source) that a
    /// better claim beats: counted per kind and said once per kind (B.10).
    pub fn ignored_notes(&self, claimed: &[(PodKey, Source)], ctx: &Context<'_>) -> Vec<String> {
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
                            || self.resolve(key, ctx).source == Some(Source::SliceEntry)) =>
                {
                    pods += 1
                }
                _ => {}
            }
        }
        let mut notes = Vec::new();
        if slices > 0 {
            notes.push(format!(
                "{slices} CiliumEndpointSlice entr(ies) ignored: a CiliumEndpoint of the same pod is read, even one skipped (a CiliumEndpoint beats a slice entry, B.10)"
            ));
        }
        if pods > 0 {
            notes.push(format!(
                "{pods} Pod object(s) ignored: a CiliumEndpoint (even one skipped) or slice entry of the same pod is read (both beat a Pod, B.10)"
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
            node_ip: Some("192.168.0.1".parse().unwrap()),
        }
    }

    fn with_ctx<R>(node: Option<&str>, f: impl FnOnce(&Context<'_>) -> R) -> R {
        let node = node.map(str::to_owned);
        f(&Context {
            node_at: &|_| node.clone(),
            namespace_labels: &|_| None,
        })
    }

    /// A pod first known by its slice entry (uid `ns/p`), then by its Pod (uid `u`): the
    /// endpoint's uid moves; the old uid finds the pod no more. Deleting `u` (the Pod) gives
    /// the pod back to its slice entry; deleting that endpoint forgets the entry.
    #[test]
    fn a_delete_forgets_the_object_carrying_the_uid() {
        let mut claims = EndpointClaims::default();
        claims.set_identity("7", Labels::default());
        claims.set_slice("s", vec![(key("p"), entry("s", "7"))]);
        let first = with_ctx(Some("n1"), |ctx| claims.settle(&key("p"), ctx));
        let ep = first.endpoint.unwrap();
        assert_eq!((ep.uid.as_str(), ep.node.as_deref()), ("ns/p", Some("n1")));
        claims.set_pod(key("p"), "u", Some(pod("u", "10.0.0.1")));
        let second = with_ctx(None, |ctx| claims.settle(&key("p"), ctx));
        assert_eq!(second.removed.as_deref(), Some("ns/p"));
        let ep = second.endpoint.unwrap();
        assert_eq!(ep.uid, "u");
        assert_eq!(
            ep.ips[0].to_string(),
            "10.0.0.9",
            "the slice entry beats the Pod"
        );
        assert_eq!(
            claims.forget_uid("ns/p"),
            None,
            "a uid the pod no longer has"
        );
        assert_eq!(claims.forget_uid("u"), Some(key("p")));
        let third = with_ctx(None, |ctx| claims.settle(&key("p"), ctx));
        assert_eq!(third.removed.as_deref(), Some("u"));
        assert_eq!(third.endpoint.unwrap().uid, "ns/p", "the slice entry stays");
        assert_eq!(claims.forget_uid("ns/p"), Some(key("p")));
        let last = with_ctx(None, |ctx| claims.settle(&key("p"), ctx));
        assert_eq!(
            (last.removed.as_deref(), last.endpoint),
            (Some("ns/p"), None)
        );
        assert_eq!(claims.forget_uid("ns/p"), None, "the pod is forgotten");
        assert!(
            claims
                .set_identity("7", [("a", "b")].into_iter().collect())
                .is_empty()
        );
    }

    /// A replaced uid (a recreated Pod under its CiliumEndpoint) finds the pod no more.
    #[test]
    fn a_replaced_uid_is_released() {
        let mut claims = EndpointClaims::default();
        claims.set_cilium_endpoint(key("p"), "c", Some(pod("c", "10.0.0.2")), None);
        claims.set_pod(key("p"), "u2", Some(pod("u2", "10.0.0.1")));
        claims.set_pod(key("p"), "u3", Some(pod("u3", "10.0.0.1")));
        assert_eq!(claims.forget_uid("u2"), None);
        assert_eq!(claims.forget_uid("u3"), Some(key("p")));
        let ep = with_ctx(None, |ctx| claims.resolve(&key("p"), ctx));
        assert_eq!(ep.source, Some(Source::CiliumEndpoint));
    }

    /// The resolution is a function of the claims, not of their order; a pod listed by two
    /// slices keeps an entry while either lists it.
    #[test]
    fn the_order_of_claims_does_not_matter() {
        let labels: Labels = [("app", "web")].into_iter().collect();
        let mut a = EndpointClaims::default();
        a.set_cilium_endpoint(key("p"), "ce", Some(pod("ce", "10.0.0.2")), None);
        a.set_pod(key("p"), "u", Some(pod("u", "10.0.0.1")));
        a.set_slice("s", vec![(key("p"), entry("s", "7"))]);
        a.set_identity("7", labels.clone());
        let mut b = EndpointClaims::default();
        b.set_identity("7", labels);
        b.set_slice("s", vec![(key("p"), entry("s", "7"))]);
        b.set_pod(key("p"), "u", Some(pod("u", "10.0.0.1")));
        b.set_cilium_endpoint(key("p"), "ce", Some(pod("ce", "10.0.0.2")), None);
        with_ctx(None, |ctx| {
            assert_eq!(a.resolve(&key("p"), ctx), b.resolve(&key("p"), ctx));
            assert_eq!(
                a.resolve(&key("p"), ctx).source,
                Some(Source::CiliumEndpoint)
            );
        });
        let mut c = EndpointClaims::default();
        c.set_identity("7", Labels::default());
        c.set_slice("old", vec![(key("q"), entry("old", "7"))]);
        c.set_slice("new", vec![(key("q"), entry("new", "7"))]);
        assert_eq!(c.set_slice("new", Vec::new()), [key("q")]);
        let source = with_ctx(None, |ctx| c.resolve(&key("q"), ctx).source);
        assert_eq!(
            source,
            Some(Source::SliceEntry),
            "the old slice still lists it"
        );
        assert_eq!(c.set_slice("old", Vec::new()), [key("q")]);
        assert_eq!(
            with_ctx(None, |ctx| c.resolve(&key("q"), ctx).endpoint),
            None
        );
        assert_eq!(c.on_node_addresses(&["192.168.0.1".parse().unwrap()]), []);
    }
}
