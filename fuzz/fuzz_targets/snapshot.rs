//! Any text through the snapshot and dump reader, the policy reader and the CLI's merge of
//! several inputs: never a panic; every input error names a field; the document budget holds.
#![no_main]

use egress_core::snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match snapshot::load(text) {
        Ok(loaded) => {
            // What list would do next: the warnings of every valid policy.
            for p in loaded.snapshot.policies.iter().flatten() {
                let _ = loaded.snapshot.policy_warnings(p);
            }
        }
        Err(egress_core::Error::Input(errors)) => {
            assert!(!errors.is_empty());
            for e in &errors {
                let _ = e.to_string();
            }
        }
        Err(other) => {
            let _ = other.to_string();
        }
    }
    let _ = egress_core::policy::parse_policy_text(text);
    // The text twice, as `-f a -f b`: the merge path.
    let _ = snapshot::load_all(&[text, text]);
});
