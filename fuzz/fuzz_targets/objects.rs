//! Any text through the one-object readers (what the bindings' events take): never a panic,
//! every input error names a field.
#![no_main]

use egress_core::{Error, snapshot};
use libfuzzer_sys::fuzz_target;

fn check<T>(r: Result<T, Error>) {
    if let Err(Error::Input(errors)) = r {
        assert!(!errors.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(snapshot::parse_node(text));
    check(snapshot::parse_endpoint(text));
    check(snapshot::parse_interfaces(text));
    check(snapshot::parse_namespace(text));
    if let Ok(docs) = egress_core::document::parse_documents(text) {
        for doc in &docs {
            check(snapshot::kubernetes::node_from_cilium_node(doc));
            check(snapshot::kubernetes::endpoint_from_cilium_endpoint(
                doc,
                &Default::default(),
            ));
            check(snapshot::kubernetes::namespace_from_object(doc));
            let _ = egress_core::cilium_config::CiliumConfig::from_document(doc).map(|c| c.check());
        }
    }
});
