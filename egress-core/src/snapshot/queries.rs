//! What a snapshot answers: its nodes' devices, the node to compute, the invalid policies,
//! the batch path's [`ClusterState`].

use super::*;

impl Snapshot {
    /// Parses snapshot text (YAML or JSON), policies validated as Cilium 1.18 does.
    pub fn parse(text: &str) -> Result<Self, Error> {
        Self::parse_for(text, CiliumVersion::default())
    }

    /// [`Snapshot::parse`] validating policies by `version`'s rules.
    pub fn parse_for(text: &str, version: CiliumVersion) -> Result<Self, Error> {
        let docs = document::parse_documents(text)?;
        match docs.as_slice() {
            [doc] => {
                let mut errors = Vec::new();
                match read_snapshot(doc, None, version, &mut errors) {
                    Some(s) if errors.is_empty() => Ok(s),
                    _ => Err(Error::Input(errors)),
                }
            }
            other => Err(Error::DocumentCount(other.len())),
        }
    }

    /// Whether a parsed document looks like a snapshot (rather than a Kubernetes object).
    pub fn is_snapshot_document(doc: &Value) -> bool {
        doc.get("kind").is_none() && TOP.iter().any(|k| doc.get(k).is_some())
    }

    /// Reads a snapshot from a parsed document.
    pub fn from_document(doc: &Value) -> Result<Self, Error> {
        let mut errors = Vec::new();
        let snapshot = read_snapshot(doc, None, CiliumVersion::default(), &mut errors);
        match snapshot {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(Error::Input(errors)),
        }
    }

    /// [`Snapshot::from_document`] consuming the document: each endpoint's part of the tree
    /// is dropped as soon as it is read, so a large snapshot's tree and its endpoints are
    /// not held whole at once.
    pub fn from_document_owned(doc: Value) -> Result<Self, Error> {
        Self::from_document_owned_for(doc, CiliumVersion::default())
    }

    /// [`Snapshot::from_document_owned`] validating policies by `version`'s rules.
    pub fn from_document_owned_for(mut doc: Value, version: CiliumVersion) -> Result<Self, Error> {
        let endpoints = doc.take("endpoints");
        let mut errors = Vec::new();
        let snapshot = read_snapshot(&doc, endpoints, version, &mut errors);
        match snapshot {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(Error::Input(errors)),
        }
    }

    /// The node to compute: `override_node` or `localNode`; it must be one of the nodes
    /// ([`Snapshot::node_to_compute`] with the argument named `node`).
    pub fn local_node_name<'a>(
        &'a self,
        override_node: Option<&'a str>,
    ) -> Result<&'a str, FieldError> {
        self.node_to_compute(override_node, "node")
    }

    /// The node to compute: `requested` (an argument named `argument`, e.g. a binding's
    /// `local_node`) when given, else `localNode`; it must be one of the nodes. An input
    /// without `localNode` (a Kubernetes dump never has one) needs `requested`.
    pub fn node_to_compute<'a>(
        &'a self,
        requested: Option<&'a str>,
        argument: &str,
    ) -> Result<&'a str, FieldError> {
        let (path, name) = match requested {
            Some(n) => (argument, n),
            None => match self.local_node.as_deref() {
                Some(n) => ("localNode", n),
                None => {
                    return Err(FieldError::new(
                        argument,
                        Reason::Required(Some(
                            "the input names no localNode (a Kubernetes dump never does)"
                                .to_owned(),
                        )),
                    ));
                }
            },
        };
        if self.nodes.contains_key(name) {
            Ok(name)
        } else {
            Err(FieldError::new(path, Reason::NotFound(field::quote(name))))
        }
    }

    /// The devices of `node`: its own `interfaces` when given, else the top-level list when
    /// `node` is `localNode` (whose list it is), else none.
    pub fn devices_for(&self, node: &str) -> &[Device] {
        if let Some(own) = self.nodes.get(node).and_then(|n| n.interfaces.as_deref()) {
            return own;
        }
        match (&self.interfaces, self.local_node.as_deref()) {
            (Some(list), Some(local)) if local == node => list,
            _ => &[],
        }
    }

    /// Merges a later snapshot into this one: its nodes, endpoints and policies replace
    /// these by name or uid (new ones are added after), and its `localNode`, `cluster` and
    /// `interfaces` replace these when it has them.
    pub fn merge(&mut self, other: Snapshot) {
        if other.local_node.is_some() {
            self.local_node = other.local_node;
        }
        if other.cluster.is_some() {
            self.cluster = other.cluster;
        }
        if other.interfaces.is_some() {
            self.interfaces = other.interfaces;
        }
        self.nodes.extend(other.nodes);
        let mut at_uid = uid_index(&self.endpoints);
        for ep in other.endpoints {
            match at_uid.get(&ep.uid) {
                Some(&k) => self.endpoints[k] = ep,
                None => {
                    at_uid.insert(ep.uid.clone(), self.endpoints.len());
                    self.endpoints.push(ep);
                }
            }
        }
        for policy in other.policies {
            self.replace_policy(policy);
        }
        self.detected_versions.extend(other.detected_versions);
    }

    /// Puts a policy (valid or not) in the place of the one with its name, or last.
    pub(super) fn replace_policy(&mut self, policy: Result<Policy, PolicyErrors>) {
        let name_of = |p: &Result<Policy, PolicyErrors>| match p {
            Ok(p) => Some(p.name.clone()),
            Err(e) => e.name.clone(),
        };
        let name = name_of(&policy);
        match self
            .policies
            .iter()
            .position(|p| name.is_some() && name_of(p) == name)
        {
            Some(k) => self.policies[k] = policy,
            None => self.policies.push(policy),
        }
    }

    /// Whether the input says what `node`'s devices are: its own `interfaces` key (even an
    /// empty list), or the top-level list when `node` is `localNode`. A Kubernetes dump never
    /// does; then a gateway's egress IPs cannot be derived and its rows drop traffic.
    pub fn devices_known(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| n.interfaces.is_some())
            || (self.interfaces.is_some() && self.local_node.as_deref() == Some(node))
    }

    /// Gives `node` these devices (its own `interfaces`), replacing what the file said.
    pub fn set_devices(&mut self, node: &str, devices: Vec<Device>) -> Result<(), FieldError> {
        match self.nodes.get_mut(node) {
            Some(n) => {
                n.interfaces = Some(devices);
                Ok(())
            }
            None => Err(FieldError::new(
                "node",
                Reason::NotFound(field::quote(node)),
            )),
        }
    }

    /// Parses a policy object; a second policy of the same name is an input error.
    pub(super) fn add_policy(
        &mut self,
        doc: &Value,
        path: &str,
        names: &mut HashSet<String>,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some(name) = crate::policy::object_name(doc)
            && !names.insert(name.to_owned())
        {
            let at = format!("{path}.metadata.name");
            errors.push(FieldError::new(at, Reason::Duplicate(field::quote(name))));
        }
        self.policies
            .push(parse_policy_for(doc, self.cilium_version));
    }

    /// The valid policies with the cluster's nodes and endpoints, for the batch path.
    pub fn state(&self) -> ClusterState {
        ClusterState {
            nodes: self.nodes.clone(),
            endpoints: self.endpoints.clone(),
            ..self.state_of(Nodes::default(), Vec::new())
        }
    }

    /// Runs `f` on [`Snapshot::state`] without copying the endpoints and nodes: they are
    /// moved into the state for the call and back after it (a large cluster's endpoints are
    /// most of its memory).
    pub fn with_state<R>(&mut self, f: impl FnOnce(&ClusterState) -> R) -> R {
        let nodes = std::mem::take(&mut self.nodes);
        let endpoints = std::mem::take(&mut self.endpoints);
        let state = self.state_of(nodes, endpoints);
        let result = f(&state);
        self.nodes = state.nodes;
        self.endpoints = state.endpoints;
        result
    }

    /// The state with these nodes and endpoints, and this snapshot's valid policies.
    pub(super) fn state_of(&self, nodes: Nodes, endpoints: Vec<Endpoint>) -> ClusterState {
        ClusterState {
            cluster: self.cluster.clone(),
            nodes,
            endpoints,
            policies: self
                .policies
                .iter()
                .filter_map(|p| p.as_ref().ok())
                .cloned()
                .collect(),
        }
    }

    /// The invalid policies, with their position in the file.
    pub fn invalid_policies(&self) -> impl Iterator<Item = (usize, &PolicyErrors)> {
        self.policies
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().err().map(|e| (i, e)))
    }

    /// The warnings of a valid policy in this cluster: `policy::policy_warnings` against its
    /// nodes, the known failures of the Cilium version it was read for
    /// (`policy::version_warnings`), and, when it has endpoints, destinations of a family none
    /// of them has.
    pub fn policy_warnings(&self, policy: &Policy) -> Vec<crate::policy::Warning> {
        let mut out = crate::policy::policy_warnings(policy, Some(&self.nodes));
        out.extend(crate::policy::version_warnings(
            policy,
            self.cilium_version,
            Some(&self.nodes),
            |node| self.devices_known(node).then(|| self.devices_for(node)),
        ));
        if !self.endpoints.is_empty() {
            let ips = || self.endpoints.iter().flat_map(|e| e.ips.iter());
            let (v4, v6) = (ips().any(IpAddr::is_ipv4), ips().any(IpAddr::is_ipv6));
            out.extend(crate::policy::family_warnings(policy, v4, v6));
        }
        out
    }
}
