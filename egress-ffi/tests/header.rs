//! The committed header equals what cbindgen (pinned in the workspace) generates from the
//! sources: a change to the ABI without regenerating the header fails here.
//! `EGRESS_UPDATE_HEADER=1` rewrites the header instead.

use std::path::Path;

#[test]
fn the_committed_header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = crate_dir.join("../include/egress_gateway.h");
    let go_copy = crate_dir.join("../bindings/go/egress_gateway.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cbindgen.toml: {e}"));
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen: {e}"));
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("EGRESS_UPDATE_HEADER").is_some() {
        // CI checks the committed header; it never rewrites it.
        assert!(
            std::env::var_os("CI").is_none(),
            "EGRESS_UPDATE_HEADER is refused under CI"
        );
        std::fs::write(&header, &generated).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&go_copy, &generated).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    // The Go package carries its own copy, next to it (`go mod vendor` copies only the
    // package's directory).
    let go_header =
        std::fs::read_to_string(&go_copy).unwrap_or_else(|e| panic!("{}: {e}", go_copy.display()));
    assert!(
        go_header == generated,
        "bindings/go/egress_gateway.h differs from the header: run\n  \
         EGRESS_UPDATE_HEADER=1 cargo test -p egress-ffi --test header\nand commit both"
    );
    let committed =
        std::fs::read_to_string(&header).unwrap_or_else(|e| panic!("{}: {e}", header.display()));
    assert!(
        committed == generated,
        "include/egress_gateway.h differs from what cbindgen generates: run\n  \
         EGRESS_UPDATE_HEADER=1 cargo test -p egress-ffi --test header\nand commit the header"
    );
}
