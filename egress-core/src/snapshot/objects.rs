//! One object at a time, for the bindings: the snapshot's own readers at a document's root.

use super::*;

// ----- one object at a time ------------------------------------------------------------
//
// The readers the snapshot itself uses, at the document's root: an agent that watches
// objects one by one gets the same validation and the same field errors as a snapshot.

/// The one document of `text`.
pub(super) fn one_document(text: &str) -> Result<Value, Error> {
    let mut docs = document::parse_documents(text)?;
    match docs.len() {
        1 => Ok(docs.swap_remove(0)),
        n => Err(Error::DocumentCount(n)),
    }
}

/// Runs a snapshot reader on a whole document: every input error it meets, or the object.
pub(super) fn read_one<T>(
    doc: &Value,
    read: impl FnOnce(&Value, &str, &mut Vec<FieldError>) -> Option<T>,
) -> Result<T, Error> {
    let mut errors = Vec::new();
    match read(doc, "", &mut errors) {
        Some(object) if errors.is_empty() => Ok(object),
        _ => Err(Error::Input(errors)),
    }
}

/// Reads one node in the snapshot's `nodes[]` shape, or a Kubernetes `CiliumNode` or core
/// `Node` object (converted as a dump's are, B.10).
pub fn node_from_document(doc: &Value) -> Result<Node, Error> {
    match kubernetes::Kind::of(doc) {
        kubernetes::Kind::CiliumNode => kubernetes::node_from_cilium_node(doc),
        kubernetes::Kind::Node => kubernetes::node_from_core_node(doc),
        _ => read_one(doc, read_node),
    }
}

/// [`node_from_document`] on YAML or JSON text holding one document.
pub fn parse_node(text: &str) -> Result<Node, Error> {
    node_from_document(&one_document(text)?)
}

/// Reads one endpoint in the snapshot's `endpoints[]` shape. (A `CiliumEndpoint` names its
/// node by address: convert it with [`kubernetes::endpoint_from_cilium_endpoint`].)
pub fn endpoint_from_document(doc: &Value) -> Result<Endpoint, Error> {
    read_one(doc, read_endpoint)
}

/// [`endpoint_from_document`] on YAML or JSON text holding one document.
pub fn parse_endpoint(text: &str) -> Result<Endpoint, Error> {
    endpoint_from_document(&one_document(text)?)
}

/// Reads a device list (the `interfaces` shape).
pub fn devices_from_document(doc: &Value) -> Result<Vec<Device>, Error> {
    let mut errors = Vec::new();
    match read_devices(doc, "interfaces", &mut errors) {
        Some(devices) if errors.is_empty() => Ok(devices),
        _ => Err(Error::Input(errors)),
    }
}

/// Reads a device list (the `interfaces` shape) from YAML or JSON text.
pub fn parse_interfaces(text: &str) -> Result<Vec<Device>, Error> {
    devices_from_document(&one_document(text)?)
}

/// Reads a namespace: a Kubernetes `Namespace` object (`metadata.name`, `metadata.labels`)
/// or `{name, labels}`.
pub fn namespace_from_document(doc: &Value) -> Result<Namespace, Error> {
    if doc.get("metadata").is_some() || doc.get("kind").is_some() {
        return kubernetes::namespace_from_object(doc);
    }
    read_one(doc, |doc, path, errors| {
        let f = Fields::open(doc, path, errors)?;
        f.finish(NAMESPACE, errors);
        let name = read_name(&f, "name", errors);
        let labels = read_labels(&f, "labels", errors);
        Some(Namespace {
            name: name?,
            labels,
        })
    })
}

/// [`namespace_from_document`] on YAML or JSON text holding one document.
pub fn parse_namespace(text: &str) -> Result<Namespace, Error> {
    namespace_from_document(&one_document(text)?)
}
