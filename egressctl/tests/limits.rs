//! Resources in proportion to the input and the output: an amplifying input (many identical
//! policies over many endpoints: 600,000 selections for 1,000 entries) must not cost memory
//! per selection. Measured as the largest resident size of the children this test binary
//! ran (its own process: no other test's children count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

mod support;
use support::max_child_rss_kib;

#[test]
fn identical_policies_over_many_endpoints_cost_no_memory_per_selection() {
    let endpoints: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"uid": "u{i:05}", "namespace": "d", "labels": {{"app": "x"}}, "ips": ["10.1.{}.{}"], "node": "gw"}}"#,
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    let policies: Vec<String> = (0..600)
        .map(|j| {
            format!(
                r#"{{"metadata": {{"name": "p{j:04}"}}, "spec": {{"selectors": [{{"podSelector": {{"matchLabels": {{"app": "x"}}}}}}], "destinationCIDRs": ["0.0.0.0/0"], "egressGateway": {{"nodeSelector": {{"matchLabels": {{"egress": "true"}}}}}}}}}}"#
            )
        })
        .collect();
    let snapshot = format!(
        r#"{{"localNode": "gw", "nodes": [{{"name": "gw", "labels": {{"egress": "true"}}, "ipv4": "10.0.0.1"}}], "endpoints": [{}], "policies": [{}]}}"#,
        endpoints.join(","),
        policies.join(",")
    );
    let path =
        std::env::temp_dir().join(format!("egressctl-amplified-{}.json", std::process::id()));
    std::fs::write(&path, &snapshot).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(["list", "-f", path.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ipv4"].as_array().unwrap().len(), 1000);
    // 600,000 selections: one copied gateway choice and one candidate each took ~250 MB; the
    // input is 0.3 MB and the output 1,000 entries.
    let rss_mib = max_child_rss_kib() / 1024;
    assert!(rss_mib < 100, "egressctl list used {rss_mib} MiB");
    let _ = std::fs::remove_file(path);
}
