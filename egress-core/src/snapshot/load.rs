//! Loading inputs: a snapshot or a Kubernetes dump, several merged, within the limits.

use super::*;

/// Reads a snapshot file or a Kubernetes dump (`kubectl get ciliumegressgatewaypolicies,
/// ciliumnodes,ciliumendpoints,namespaces -A -o yaml`: a `List`, or a `---` stream of objects
/// or Lists). A dump has no `localNode` and no devices: callers supply both.
pub fn load(text: &str) -> Result<Loaded, Error> {
    load_for(text, CiliumVersion::default())
}

/// [`load`] validating policies by `version`'s rules.
pub fn load_for(text: &str, version: CiliumVersion) -> Result<Loaded, Error> {
    load_unchecked(text, version).and_then(Loaded::within_limits)
}

/// The most policies one input (or the inputs read together) may hold, valid or not: ours,
/// not Kubernetes' — the batch path matches every policy against every endpoint, so this
/// bounds its work per endpoint.
pub const MAX_POLICIES: usize = 10_000;

/// `policies: Too many: COUNT: must have at most 10000 items`.
pub(super) fn too_many_policies(count: usize) -> FieldError {
    FieldError::new(
        "policies",
        Reason::TooMany {
            count,
            max: MAX_POLICIES,
        },
    )
}

impl Loaded {
    /// Refuses a cluster past the numeric limits a single object cannot see (the policy
    /// count).
    fn within_limits(self) -> Result<Self, Error> {
        let count = self.snapshot.policies.len();
        if count > MAX_POLICIES {
            return Err(Error::Input(vec![too_many_policies(count)]));
        }
        Ok(self)
    }
}

pub(super) fn load_unchecked(text: &str, version: CiliumVersion) -> Result<Loaded, Error> {
    let mut docs = document::parse_documents(text)?;
    if let [doc] = docs.as_slice()
        && Snapshot::is_snapshot_document(doc)
    {
        let doc = docs.pop().unwrap_or(Value::Null);
        return Snapshot::from_document_owned_for(doc, version).map(|snapshot| Loaded {
            snapshot,
            warnings: Vec::new(),
            objects: None,
        });
    }
    if docs.is_empty() {
        return Err(Error::DocumentCount(0));
    }
    check_objects(&docs)?;
    let objects = document::flatten_lists(docs);
    kubernetes::from_objects(&objects, version).map(|(snapshot, warnings, objects)| Loaded {
        snapshot,
        warnings,
        objects: Some(objects),
    })
}

/// The documents of an input that is not one snapshot must be Kubernetes objects: a
/// snapshot in a stream, or a scalar or list where an object belongs, is said so (instead
/// of "kind: Required value" for each).
pub(super) fn check_objects(docs: &[Value]) -> Result<(), Error> {
    let mut errors = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let path = field::item("documents", i);
        if !matches!(doc, Value::Map(_)) {
            errors.push(FieldError::new(
                path,
                Reason::Invalid {
                    value: field::quote(doc.type_name()),
                    detail: "want a snapshot or Kubernetes objects (mappings)".to_owned(),
                },
            ));
        } else if Snapshot::is_snapshot_document(doc) {
            errors.push(FieldError::new(
                path,
                Reason::Invalid {
                    value: "a snapshot".to_owned(),
                    detail: format!(
                        "a snapshot must be the only document of its input, this one has {} \
                         (give several snapshots as several inputs)",
                        docs.len()
                    ),
                },
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Input(errors))
    }
}

/// Reads several inputs as one cluster ("my dump plus this new policy"): later objects
/// replace earlier ones of the same kind and name. Either every input holds Kubernetes
/// objects (merged, then converted as one dump), or the first is a snapshot and the later
/// ones are snapshots (their nodes, endpoints and policies replace the first's by name or
/// uid; their `localNode`, `cluster` and `interfaces` too when present) or Kubernetes objects
/// (policies and CiliumNodes replace by name, CiliumEndpoints by uid, matched to the merged
/// nodes). An error says which input it is about (its index).
pub fn load_all(texts: &[&str]) -> Result<Loaded, (Option<usize>, Error)> {
    load_all_unchecked(texts, CiliumVersion::default())
        .and_then(|loaded| loaded.within_limits().map_err(|e| (None, e)))
}

/// [`load_all`] taking the texts, each dropped once parsed: a large input's text is not
/// held beside the objects read from it.
pub fn load_all_owned(texts: Vec<String>) -> Result<Loaded, (Option<usize>, Error)> {
    load_all_owned_for(texts, CiliumVersion::default())
}

/// [`load_all_owned`] validating policies by `version`'s rules.
pub fn load_all_owned_for(
    texts: Vec<String>,
    version: CiliumVersion,
) -> Result<Loaded, (Option<usize>, Error)> {
    load_all_unchecked(texts, version)
        .and_then(|loaded| loaded.within_limits().map_err(|e| (None, e)))
}

pub(super) fn load_all_unchecked<T: AsRef<str>>(
    texts: impl IntoIterator<Item = T>,
    version: CiliumVersion,
) -> Result<Loaded, (Option<usize>, Error)> {
    let mut parsed = Vec::new();
    for (i, text) in texts.into_iter().enumerate() {
        let docs = document::parse_documents(text.as_ref()).map_err(|e| (Some(i), e.into()))?;
        if docs.is_empty() {
            return Err((Some(i), Error::DocumentCount(0)));
        }
        parsed.push(docs);
    }
    let is_snapshot = |docs: &[Value]| matches!(docs, [doc] if Snapshot::is_snapshot_document(doc));
    if !parsed.first().is_some_and(|docs| is_snapshot(docs)) {
        if let Some(i) = parsed.iter().position(|docs| is_snapshot(docs)) {
            return Err((
                Some(i),
                Error::Input(vec![FieldError::new(
                    "",
                    Reason::Invalid {
                        value: "a snapshot".to_owned(),
                        detail: "a snapshot can only be the first input".to_owned(),
                    },
                )]),
            ));
        }
        for (i, docs) in parsed.iter().enumerate() {
            check_objects(docs).map_err(|e| (Some(i), e))?;
        }
        // Kubernetes objects only: the last object of each kind and name wins, in the place
        // of its first occurrence.
        let mut objects: Vec<Value> = Vec::new();
        let mut at: std::collections::HashMap<(String, String, String), usize> =
            std::collections::HashMap::new();
        for docs in parsed {
            for doc in document::flatten_lists(docs) {
                let key = object_key(&doc);
                match key.and_then(|k| at.get(&k).copied()) {
                    Some(i) => objects[i] = doc,
                    None => {
                        if let Some(k) = object_key(&doc) {
                            at.insert(k, objects.len());
                        }
                        objects.push(doc);
                    }
                }
            }
        }
        return kubernetes::from_objects(&objects, version)
            .map(|(snapshot, warnings, objects)| Loaded {
                snapshot,
                warnings,
                objects: Some(objects),
            })
            .map_err(|e| (None, e));
    }
    let mut inputs = parsed.into_iter().enumerate();
    let Some((_, first)) = inputs.next() else {
        return Err((Some(0), Error::DocumentCount(0)));
    };
    let first = first.into_iter().next().unwrap_or(Value::Null);
    let mut snapshot =
        Snapshot::from_document_owned_for(first, version).map_err(|e| (Some(0), e))?;
    let mut warnings = Vec::new();
    // Nodes by address, so that merging a dump of many endpoints does not scan them all per
    // object; rebuilt when nodes changed.
    let mut addresses: Option<HashMap<IpAddr, String>> = None;
    // B.10 across the object inputs: a CiliumNode beats a Node of its name; the objects that
    // describe a pod are claims on it (a later object of a kind replaces the earlier one),
    // resolved once all are read, each endpoint then replacing the snapshot's of its uid.
    let mut cilium_nodes: HashSet<String> = HashSet::new();
    let mut claims = kubernetes::EndpointClaims::default();
    let mut claimed: Vec<(kubernetes::PodKey, kubernetes::Source)> = Vec::new();
    let mut namespace_labels: HashMap<String, crate::labels::Labels> = HashMap::new();
    for (i, docs) in inputs {
        if is_snapshot(&docs) {
            let doc = docs.into_iter().next().unwrap_or(Value::Null);
            let other =
                Snapshot::from_document_owned_for(doc, version).map_err(|e| (Some(i), e))?;
            snapshot.merge(other);
            addresses = None;
            continue;
        }
        check_objects(&docs).map_err(|e| (Some(i), e))?;
        let docs = document::flatten_lists(docs);
        // Read nodes first; a refusal is the first failing object's in document order.
        let mut failed: Option<(usize, Error)> = None;
        // The object's value, or on its refusal the next object (the lowest refusal kept).
        macro_rules! or_next {
            ($result:expr) => {
                match $result {
                    Ok(value) => value,
                    Err((k, e)) => {
                        if failed.as_ref().is_none_or(|(f, _)| k < *f) {
                            failed = Some((k, e));
                        }
                        continue;
                    }
                }
            };
        }
        for j in kubernetes::reading_order(&docs) {
            if failed.as_ref().is_some_and(|(k, _)| *k < j) {
                continue;
            }
            let doc = &docs[j];
            let path = field::item("objects", j);
            let at_path = |e: Error| (j, kubernetes::at_object(&path, e));
            let notes_at = |notes: Vec<String>| notes.into_iter().map(|w| format!("{path}: {w}"));
            match kubernetes::Kind::of(doc) {
                kubernetes::Kind::Policy => snapshot.replace_policy(parse_policy_for(doc, version)),
                kubernetes::Kind::CiliumNode => {
                    let node = or_next!(kubernetes::node_from_cilium_node(doc).map_err(at_path));
                    cilium_nodes.insert(node.name.clone());
                    snapshot.nodes.insert(node.name.clone(), node);
                    addresses = None;
                }
                kubernetes::Kind::Node => {
                    let node = or_next!(kubernetes::node_from_core_node(doc).map_err(at_path));
                    if !cilium_nodes.contains(&node.name) {
                        snapshot.nodes.insert(node.name.clone(), node);
                        addresses = None;
                    }
                }
                kubernetes::Kind::Pod => {
                    let (endpoint, notes) = or_next!(
                        kubernetes::endpoint_from_pod(doc, &namespace_labels).map_err(at_path)
                    );
                    warnings.extend(notes_at(notes));
                    // A skipped Pod's uid still names its pod (a slice entry takes it).
                    let uid = kubernetes::pod_uid(doc);
                    let key = claims.set_pod(kubernetes::pod_key(doc), uid, endpoint);
                    claimed.push((key, kubernetes::Source::Pod));
                }
                kubernetes::Kind::CiliumEndpoint => {
                    let index =
                        addresses.get_or_insert_with(|| kubernetes::address_index(&snapshot.nodes));
                    let node_at = |ip: IpAddr| index.get(&ip).cloned();
                    let (endpoint, notes) =
                        or_next!(kubernetes::endpoint_indexed(doc, &node_at).map_err(at_path));
                    warnings.extend(notes);
                    // The pod it describes is its, even when it is skipped.
                    let uid = kubernetes::pod_uid(doc);
                    let node_ip = kubernetes::endpoint_node_ip(doc);
                    claims.set_cilium_endpoint(kubernetes::pod_key(doc), uid, endpoint, node_ip);
                }
                kubernetes::Kind::EndpointSlice => {
                    let index =
                        addresses.get_or_insert_with(|| kubernetes::address_index(&snapshot.nodes));
                    // An identity of a later input counts: unknown ones are said once all
                    // inputs are read.
                    let knows = |_: &str| true;
                    let node_at = |ip: IpAddr| index.get(&ip).cloned();
                    let ((name, entries), notes) = or_next!(
                        kubernetes::slice_from_object(doc, &knows, &node_at).map_err(at_path)
                    );
                    warnings.extend(notes_at(notes));
                    claimed.extend(
                        entries
                            .iter()
                            .map(|(k, _)| (k.clone(), kubernetes::Source::SliceEntry)),
                    );
                    claims.set_slice(&name, entries);
                }
                kubernetes::Kind::Identity => {
                    let (id, labels) =
                        or_next!(kubernetes::identity_from_object(doc).map_err(at_path));
                    claims.set_identity(&id, labels);
                }
                kubernetes::Kind::Namespace => {
                    // Read for a Pod's identity; a CiliumEndpoint's holds its labels already.
                    if let Ok(ns) = kubernetes::namespace_from_object(doc) {
                        namespace_labels.insert(ns.name, ns.labels.into());
                    }
                }
                kind @ kubernetes::Kind::Unused(_) => match crate::version::detect(doc) {
                    Some(found) => snapshot.detected_versions.push(found),
                    None => warnings.extend(kind.skipped(&path)),
                },
                kubernetes::Kind::Missing => {
                    or_next!(Err((
                        j,
                        Error::Input(vec![kubernetes::Kind::missing(&path)])
                    )))
                }
            }
        }
        if let Some((_, e)) = failed {
            return Err((Some(i), e));
        }
    }
    // Each resolved endpoint — its node, identity and namespace looked up among every input's
    // — replaces the snapshot's of its uid, or comes after them.
    let index = kubernetes::address_index(&snapshot.nodes);
    let ctx = kubernetes::Context {
        node_at: &|ip| index.get(&ip).cloned(),
        namespace_labels: &|ns| namespace_labels.get(ns).cloned(),
    };
    warnings.extend(claims.waiting_for_identity());
    let mut at_uid = uid_index(&snapshot.endpoints);
    for ep in claims.endpoints(&ctx) {
        match at_uid.get(&ep.uid) {
            Some(&k) => snapshot.endpoints[k] = ep,
            None => {
                at_uid.insert(ep.uid.clone(), snapshot.endpoints.len());
                snapshot.endpoints.push(ep);
            }
        }
    }
    warnings.extend(claims.ignored_notes(&claimed, &ctx));
    // Merged onto a snapshot, endpoints are as given: no objects kept for later events.
    Ok(Loaded {
        snapshot,
        warnings,
        objects: None,
    })
}

/// Where each endpoint is in `endpoints`, by uid.
pub(super) fn uid_index(endpoints: &[Endpoint]) -> HashMap<String, usize> {
    endpoints
        .iter()
        .enumerate()
        .map(|(k, e)| (e.uid.clone(), k))
        .collect()
}

/// (kind, namespace, name) of a Kubernetes object, for replacing by a later one.
pub(super) fn object_key(doc: &Value) -> Option<(String, String, String)> {
    let kind = doc.get("kind").and_then(Value::as_str)?;
    let meta = doc.get("metadata")?;
    let name = meta.get("name").and_then(Value::as_str)?;
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    Some((kind.to_owned(), namespace.to_owned(), name.to_owned()))
}
