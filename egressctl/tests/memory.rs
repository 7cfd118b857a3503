//! Peak memory in proportion to the input and the output: `egressctl list -o json` of a
//! 12 MB YAML snapshot computing 500,000 entries stays within 10 × the input, 200 bytes per
//! entry and 16 MiB for the process itself (its code and buffers, ~7 MiB for any input).
//! Before the streaming YAML reader, the compact document tree and labels and the streamed
//! output, the same run took ~990 bytes per entry. Measured as the largest resident size of
//! this test binary's children (one test here: no other child counts).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::process::Command;

fn max_child_rss_bytes() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a writable rusage; RUSAGE_CHILDREN is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: getrusage filled it.
    let kib = unsafe { usage.assume_init() }.ru_maxrss;
    u64::try_from(kib).unwrap() * 1024
}

#[test]
fn list_holds_about_its_input_and_200_bytes_per_entry() {
    const ENDPOINTS: usize = 125_000;
    const CIDRS: usize = 4;
    let mut text = String::from(
        "localNode: gw1\nnodes:\n- name: gw1\n  labels: {egress: 'true'}\n  ipv4: 10.255.0.1\n  interfaces:\n  - {name: eth0, index: 2, addresses: [10.255.0.1/16], defaultRoute: true}\n- {name: w1, ipv4: 10.255.0.2}\nendpoints:\n",
    );
    for i in 0..ENDPOINTS {
        writeln!(
            text,
            "- {{uid: u{i:07}, namespace: default, name: p{i}, node: w1, labels: {{app: a}}, ips: [10.{}.{}.{}]}}",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        )
        .unwrap();
    }
    let cidrs: Vec<String> = (0..CIDRS).map(|j| format!("1.{j}.0.0/16")).collect();
    write!(
        text,
        "policies:\n- metadata: {{name: p}}\n  spec:\n    selectors: [{{podSelector: {{matchLabels: {{app: a}}}}}}]\n    destinationCIDRs: [{}]\n    egressGateway: {{nodeSelector: {{matchLabels: {{egress: 'true'}}}}}}\n",
        cidrs.join(", ")
    )
    .unwrap();
    let path = std::env::temp_dir().join(format!("egressctl-memory-{}.yaml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(["list", "-f", path.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = out
        .stdout
        .windows(b"\"sourceIP\"".len())
        .filter(|w| *w == b"\"sourceIP\"")
        .count();
    assert_eq!(entries, ENDPOINTS * CIDRS);
    let input = text.len() as u64;
    let bound = (16 << 20) + 10 * input + 200 * entries as u64;
    let used = max_child_rss_bytes();
    assert!(
        used <= bound,
        "egressctl list used {} MiB for a {} MiB input and {entries} entries (bound {} MiB)",
        used >> 20,
        input >> 20,
        bound >> 20
    );
    eprintln!(
        "egressctl list: {} MiB for a {} MiB input and {entries} entries (bound {} MiB)",
        used >> 20,
        input >> 20,
        bound >> 20
    );
}
