//! Issue 21: one valid policy with 16,384 CIDRs over 2,000 endpoints — 0.7 MB, inside every
//! documented limit — asks for 32.8 million entries. Counted before anything is built: every
//! command that computes a node's maps refuses it with the count, in a memory in proportion
//! to the input, not to the entries. (Its own test binary: the peak resident size of the
//! children it ran is this test's alone.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod support;
use support::max_child_rss_kib;

#[path = "../../tests/support/amplifying.rs"]
mod amplifying;
use amplifying::amplifying_snapshot;

#[test]
fn an_amplifying_input_is_refused_with_its_count_before_anything_is_built() {
    let snapshot = amplifying_snapshot(16_384, 2_000);
    let input_kib = (snapshot.len() / 1024) as i64;
    assert!(input_kib < 800, "{input_kib} KiB");
    let path =
        std::env::temp_dir().join(format!("egressctl-amplifying-{}.json", std::process::id()));
    std::fs::write(&path, &snapshot).unwrap();
    let file = path.to_str().unwrap();
    for args in [
        vec!["list", "-f", file, "-o", "json"],
        vec!["list", "-f", file, "-o", "wide"],
        vec!["pods", "-f", file],
        vec!["diff", "-f", file, "-f", file],
        vec![
            "explain",
            "-f",
            file,
            "--src",
            "10.1.0.1",
            "--dst",
            "100.0.0.1",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_egressctl"))
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "the maps would hold 32768000 entries (IPv4 32768000, IPv6 0: each selected pod \
                 address times its policies' CIDRs), more than --max-output-entries 4194304; \
                 nothing was computed"
            ),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Asked for, below the count: the same refusal at the number given.
    let out = Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(["list", "-f", file, "--max-output-entries", "1000"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than --max-output-entries 1000;"));
    // In proportion to the input: 10 x 0.7 MB and the program's own (the entries would be
    // ~10 GB).
    let rss_kib = max_child_rss_kib();
    assert!(
        rss_kib < 10 * input_kib + 48 * 1024,
        "egressctl used {} MiB for a {input_kib} KiB input",
        rss_kib / 1024
    );
    let _ = std::fs::remove_file(path);
}
