//! End-to-end tests of the `egressctl` binary: outputs, warnings and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository's examples (snapshots, their expected outputs, a Kubernetes dump).
fn shared_examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots")
}

#[test]
fn the_repositorys_examples_equal_the_shared_ones() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/examples");
    if !shared.is_dir() {
        // A checkout without ../shared: the repository's copy stands alone.
        return;
    }
    let mut compared = 0;
    for sub in ["", "dumps"] {
        for entry in std::fs::read_dir(shared.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                continue;
            }
            let name = path.file_name().unwrap();
            let ours = shared_examples().join(sub).join(name);
            assert_eq!(
                std::fs::read(&ours).ok(),
                Some(std::fs::read(&path).unwrap()),
                "{} differs from {} (copy the shared examples into examples/snapshots)",
                ours.display(),
                path.display()
            );
            compared += 1;
        }
    }
    assert!(compared >= 17, "{compared}");
}

fn egressctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(args)
        .output()
        .expect("run egressctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Writes `text` to a fresh file under the target directory's temp area.
fn temp_file(name: &str, text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("egressctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, text).unwrap();
    path
}

fn example(name: &str) -> String {
    shared_examples().join(name).display().to_string()
}

#[test]
fn list_json_equals_every_expected_example_exactly() {
    let mut checked = 0;
    for entry in std::fs::read_dir(shared_examples()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = name.strip_suffix(".yaml") else {
            continue;
        };
        let expected_path = path.with_file_name(format!("{stem}.expected.json"));
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let out = egressctl(&["list", "-f", path.to_str().unwrap(), "-o", "json"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want: serde_json::Value = serde_json::from_str(&expected).unwrap();
        assert_eq!(got, want, "{name}");
        assert_eq!(stdout(&out), expected, "{name}: byte-identical output");
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} examples found");
}

/// Every dump under `examples/snapshots/dumps` (`STEM.yaml`, its node's devices in
/// `STEM.NODE.devices.yaml`) gives each of its expected files
/// (`STEM.NODE[.consistent][.cilium-VERSION].expected.json`) byte for byte: the realistic TKE
/// dump, and the seed's gateway-group cluster as core Pods/Nodes and as CiliumEndpointSlices
/// with CiliumIdentities (B.10). The Pod form's expected files are the snapshot's (same uids:
/// the equality B.10 promises, both modes, every version); the slice form's are not (its uids
/// are `<namespace>/<name>`, so the hash picks other gateways).
#[test]
fn every_dump_gives_its_expected_maps_in_every_mode_and_version() {
    let dumps = shared_examples().join("dumps");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dumps).unwrap() {
        let name = entry.unwrap().file_name().to_str().unwrap().to_owned();
        let Some(devices) = name.strip_suffix(".devices.yaml") else {
            continue;
        };
        // STEM may hold dots (`seed-gateway-group.pods`); NODE is the last four (an address).
        let parts: Vec<&str> = devices.split('.').collect();
        let (stem, node) = parts.split_at(parts.len() - 4);
        let (stem, node) = (stem.join("."), node.join("."));
        for selection in ["cilium", "consistent"] {
            for version in ["1.18", "1.19", "1.20"] {
                let mut expected = format!("{stem}.{node}");
                if selection == "consistent" {
                    expected.push_str(".consistent");
                }
                if version != "1.18" {
                    expected.push_str(&format!(".cilium-{version}"));
                }
                let Ok(want) =
                    std::fs::read_to_string(dumps.join(format!("{expected}.expected.json")))
                else {
                    continue;
                };
                let out = egressctl(&[
                    "list",
                    "-f",
                    dumps.join(format!("{stem}.yaml")).to_str().unwrap(),
                    "--node",
                    &node,
                    "--interfaces",
                    dumps.join(&name).to_str().unwrap(),
                    "--selection",
                    selection,
                    "--cilium-version",
                    version,
                    "-o",
                    "json",
                ]);
                assert!(out.status.success(), "{expected}: {}", stderr(&out));
                assert_eq!(stdout(&out), want, "{expected}");
                checked += 1;
                if let Some(snapshot) = stem.strip_suffix(".pods") {
                    let mut same = snapshot.to_owned();
                    if selection == "consistent" {
                        same.push_str(".consistent");
                    }
                    if version != "1.18" {
                        same.push_str(&format!(".cilium-{version}"));
                    }
                    let snapshot_maps = std::fs::read_to_string(
                        shared_examples().join(format!("{same}.expected.json")),
                    )
                    .unwrap();
                    assert_eq!(
                        want, snapshot_maps,
                        "{expected}: the Pod form's maps are the snapshot's"
                    );
                }
                if let Some(base) = stem.strip_suffix(".slices") {
                    let pods = expected.replacen(&stem, &format!("{base}.pods"), 1);
                    let pods = std::fs::read_to_string(dumps.join(format!("{pods}.expected.json")))
                        .unwrap();
                    assert_ne!(want, pods, "{expected}: slice uids hash differently");
                }
            }
        }
    }
    assert!(checked >= 15, "{checked}");
}

#[test]
fn the_demo_snapshot_is_the_shared_example() {
    let embedded = include_str!("../data/seed-gateway-group.yaml");
    let shared =
        std::fs::read_to_string(shared_examples().join("seed-gateway-group.yaml")).unwrap();
    assert_eq!(
        embedded, shared,
        "egressctl/data/seed-gateway-group.yaml drifted from examples/snapshots"
    );
}

#[test]
fn demo_shows_each_pods_gateway_and_each_gateway_map() {
    let out = egressctl(&["demo"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert_eq!(
        text.matches("default/nginx-54c98b4f84-").count(),
        10,
        "{text}"
    );
    assert!(text.contains("default/nginx-54c98b4f84-5wlpc   172.22.48.4    egress-test   172.22.49.119   172.22.49.119"), "{text}");
    assert!(text.contains("default/nginx-54c98b4f84-6jx8n   172.22.48.10   egress-test   172.22.49.147   172.22.49.147"), "{text}");
    assert!(text.contains("Maps programmed on gateway node 172.22.49.119"));
    assert!(text.contains("Maps programmed on gateway node 172.22.49.147"));
    assert!(
        !text.contains("gateway node 172.22.49.20"),
        "the ignored egressGateway is no gateway"
    );
    // The gateway's own pods are SNATed there; the others are tunnelled to the other gateway.
    assert!(text.contains("172.22.48.10   0.0.0.0/0          172.22.49.147   172.22.49.147"));
    assert!(stderr(&out).contains("warning: egress-test: spec.egressGateway: ignored"));
}

#[test]
fn list_table_is_cilium_dbg_format() {
    let out = egressctl(&["list", "-f", &example("dual-stack-excluded.yaml")]);
    assert!(out.status.success());
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Source IP       Destination CIDR   Egress IP        Gateway IP"
    );
    assert_eq!(
        lines[1],
        "172.22.48.4     0.0.0.0/0          172.22.49.119    172.22.49.119"
    );
    assert_eq!(
        lines[2],
        "172.22.48.4     169.254.0.0/16     172.22.49.119    Excluded CIDR"
    );
    assert!(lines.contains(&"172.22.48.38    0.0.0.0/0          0.0.0.0          Not Found"));
    assert!(lines.contains(&"fd00:22:48::4   ::/0               2402:4e00:1::3   172.22.49.119"));
    assert!(lines.iter().all(|l| !l.ends_with(' ')));
    assert_eq!(lines.len(), 1 + 14 + 8);
}

const EMPTY: &str = "localNode: a\nnodes: [{name: a, ipv4: 10.0.0.1}]\n";

#[test]
fn empty_maps() {
    let f = temp_file("empty.yaml", EMPTY);
    let out = egressctl(&["list", "-f", f.to_str().unwrap(), "-o", "json"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "{\n \"ipv4\": [],\n \"ipv6\": []\n}\n");
    let out = egressctl(&["list", "-f", f.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "No entries found.\n");
}

/// `-o cilium-json` is what `cilium-dbg bpf egress list -o json` prints: Cilium's field
/// names and gateway cells, Go's two-space indent, Cilium's two newlines; the expected file
/// was written from the example's expected rows by Cilium's rules, not by this code.
#[test]
fn cilium_json_is_cilium_dbgs() {
    let out = egressctl(&[
        "list",
        "-f",
        &example("dual-stack-excluded.yaml"),
        "-o",
        "cilium-json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = std::fs::read_to_string(test_data("dual-stack-excluded.cilium.json")).unwrap();
    assert_eq!(stdout(&out), want);
    for cell in ["\"Excluded CIDR\"", "\"Not Found\"", "\"::/0\""] {
        assert!(want.contains(cell), "the expected file lacks {cell}");
    }
    // Empty maps: Cilium prints an empty array.
    let f = temp_file("empty.yaml", EMPTY);
    let out = egressctl(&["list", "-f", f.to_str().unwrap(), "-o", "cilium-json"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "[]\n\n");
}

/// `-o wide`: the table's rows, each with its ifindex, the policy and pod that wrote it and
/// the gateway node chosen for them.
#[test]
fn list_wide_says_where_each_entry_comes_from() {
    let f = example("dual-stack-excluded.yaml");
    let wide = stdout(&egressctl(&["list", "-f", &f, "-o", "wide"]));
    let table = stdout(&egressctl(&["list", "-f", &f]));
    assert_eq!(wide.lines().count(), table.lines().count());
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let lines: Vec<&str> = wide.lines().collect();
    assert_eq!(
        words(lines[0]),
        [
            "Source",
            "IP",
            "Destination",
            "CIDR",
            "Egress",
            "IP",
            "Gateway",
            "IP",
            "Ifindex",
            "Policy",
            "Pod",
            "Gateway",
            "Node"
        ]
    );
    let row = |source: &str, dest: &str| {
        lines
            .iter()
            .map(|l| words(l))
            .find(|w| w[0] == source && w[1] == dest)
            .unwrap_or_else(|| panic!("no row {source} {dest}\n{wide}"))
    };
    assert_eq!(
        row("172.22.48.4", "0.0.0.0/0")[2..],
        [
            "172.22.49.119",
            "172.22.49.119",
            "0",
            "egress-nginx",
            "default/nginx-54c98b4f84-5wlpc",
            "172.22.49.119"
        ]
    );
    // Excluded: no gateway node; no gateway at all: "(none)".
    assert_eq!(
        row("172.22.48.4", "169.254.0.0/16")[3..],
        [
            "Excluded",
            "CIDR",
            "0",
            "egress-nginx",
            "default/nginx-54c98b4f84-5wlpc",
            "-"
        ]
    );
    assert_eq!(
        row("172.22.48.38", "0.0.0.0/0")[3..],
        [
            "Not",
            "Found",
            "0",
            "egress-etl",
            "batch/nginx-54c98b4f84-jfr2x",
            "(none)"
        ]
    );
    assert_eq!(row("fd00:22:48::4", "::/0")[5], "egress-nginx");
}

#[test]
fn other_nodes_maps_and_unknown_nodes() {
    let f = example("seed-single-gateway.yaml");
    let out = egressctl(&["list", "-f", &f, "--node", "172.22.48.125", "-o", "json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["ipv4"][0]["egressIP"], "0.0.0.0",
        "a non-gateway node holds no egress IP"
    );
    assert_eq!(v["ipv4"][0]["gatewayIP"], "172.22.49.119");
    let out = egressctl(&["list", "-f", &f, "--node", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--node: Not found: \"nope\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn input_errors_exit_1_with_their_paths() {
    let out = egressctl(&["list", "-f", "/nonexistent/snapshot.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1);
    let bad = temp_file(
        "bad.yaml",
        "localNode: b\nnodes: [{name: a, ipv4: \"fd00::1\", weight: 101, colour: red}]\nendpoints: [{uid: u, ips: [1.2.3]}]\n",
    );
    let out = egressctl(&["list", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for want in [
        "nodes[0].colour: unknown field",
        "nodes[0].ipv4: Invalid value: \"fd00::1\": not an IPv4 address",
        "nodes[0].weight: Invalid value: 101: must be an integer from 0 to 100",
        "localNode: Not found: \"b\"",
        "endpoints[0].ips[0]: Invalid value: \"1.2.3\": not an IP address",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
    assert!(!err.contains("panicked"));
    let garbage = temp_file("garbage.yaml", "nodes: [\n");
    let out = egressctl(&["list", "-f", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

/// The dump command in `list --help` is one piece that copy-pastes, and the docs' own.
#[test]
fn list_help_shows_the_dump_command_whole() {
    const KUBECTL: &str =
        "kubectl get ciliumegressgatewaypolicies,ciliumnodes,ciliumendpoints,namespaces -A -o yaml";
    let help = stdout(&egressctl(&["list", "--help"]));
    assert!(help.contains(&format!("`{KUBECTL}`")), "{help}");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dumps.md");
    assert!(std::fs::read_to_string(docs).unwrap().contains(KUBECTL));
}

/// egressctl with standard output (`stdout`) and standard error (`stderr`) as given; `None`
/// closes that descriptor in the child (`>&-`).
fn run_with_streams(
    args: &[&str],
    stdout: Option<std::process::Stdio>,
    stderr: Option<std::process::Stdio>,
) -> Output {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_egressctl"));
    command.args(args);
    let close_out = stdout.is_none();
    let close_err = stderr.is_none();
    command.stdout(stdout.unwrap_or_else(std::process::Stdio::piped));
    command.stderr(stderr.unwrap_or_else(std::process::Stdio::piped));
    // SAFETY: close(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if close_out {
                libc::close(1);
            }
            if close_err {
                libc::close(2);
            }
            Ok(())
        });
    }
    command.output().unwrap()
}

fn dev_full() -> std::process::Stdio {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
        .into()
}

/// A pipe whose reader is gone: every write fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` is writable storage for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just opened by pipe2 and are owned here alone.
    unsafe {
        libc::close(fds[0]);
        std::process::Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Issue 21: a stream that cannot be written is exit 1 with the data written so far, never
/// a panic (exit 101): standard output on a full disk, a closed pipe or a closed descriptor
/// (`>&-`, which the runtime would otherwise turn into /dev/null, losing the output with exit
/// 0); standard error on a full disk or a closed pipe, where the command still writes all
/// of its standard output. A closed pipe on standard output is said nowhere (its reader left
/// on purpose: `egressctl list | head`).
#[test]
fn unwritable_output_and_errors_are_exit_1_with_the_rest_written() {
    let seed = example("seed-gateway-group.yaml");
    let list = ["list", "-f", seed.as_str()];
    let whole = stdout(&egressctl(&list));
    assert!(whole.contains("172.22.48.4"));
    // Standard output.
    let piped = || Some(std::process::Stdio::piped());
    let out = run_with_streams(&list, Some(dev_full()), piped());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("egressctl: writing the output: No space left on device"),
        "{}",
        stderr(&out)
    );
    let out = run_with_streams(&list, Some(closed_pipe()), piped());
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("egressctl:"), "{}", stderr(&out));
    let out = run_with_streams(&list, None, piped());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("egressctl: writing the output: standard output is closed"),
        "{}",
        stderr(&out)
    );
    // Standard error, for commands that say things there: all of standard output still.
    let doctor_config = test_data("cilium-config-default.yaml");
    let garbage = temp_file("stderr-garbage.yaml", "nodes: [\n");
    for stream in ["full", "closed pipe"] {
        let err = || {
            if stream == "full" {
                dev_full()
            } else {
                closed_pipe()
            }
        };
        let out = run_with_streams(&list, piped(), Some(err()));
        assert_eq!(out.status.code(), Some(1), "list, stderr {stream}");
        assert_eq!(stdout(&out), whole, "list, stderr {stream}");
        // demo warns on stderr; doctor says its failed checks there (exit 1 either way).
        for args in [vec!["demo"], vec!["doctor", "-f", doctor_config.as_str()]] {
            let out = run_with_streams(&args, piped(), Some(err()));
            assert_eq!(out.status.code(), Some(1), "{args:?}, stderr {stream}");
            assert!(!stdout(&out).is_empty(), "{args:?}, stderr {stream}");
        }
        // An error path: its own exit code, no panic.
        let out = run_with_streams(
            &["list", "-f", garbage.to_str().unwrap()],
            piped(),
            Some(err()),
        );
        assert_eq!(out.status.code(), Some(1), "error path, stderr {stream}");
    }
}

/// Names carrying terminal escape sequences reach the terminal escaped, in every human
/// output and on stderr; JSON keeps them as JSON escapes them.
#[test]
fn control_characters_in_names_are_escaped() {
    let evil = "localNode: \"gw\\e[2J\"\nnodes:\n- {name: \"gw\\e[2J\", labels: {egress: \"true\"}, ipv4: 10.0.0.1}\n\
                endpoints:\n- {uid: \"u\\a1\", namespace: web, name: \"pod\\e]0;owned\\a\", labels: {app: x}, ips: [10.1.0.5], node: \"gw\\e[2J\"}\n\
                policies:\n- metadata: {name: p}\n  spec:\n    selectors: [{podSelector: {matchLabels: {app: x}}}]\n    \
                destinationCIDRs: [0.0.0.0/0]\n    egressGateway: {nodeSelector: {matchLabels: {egress: \"true\"}}}\n";
    let f = temp_file("evil.yaml", evil);
    let f = f.to_str().unwrap();
    for args in [
        vec!["list", "-f", f, "-o", "wide"],
        vec!["pods", "-f", f],
        vec!["explain", "-f", f, "--src", "10.1.0.5", "--dst", "1.1.1.1"],
        vec![
            "diff",
            "-f",
            f,
            "--drain",
            "gw\x1b[2J",
            "--selection",
            "consistent",
        ],
    ] {
        let out = egressctl(&args);
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        assert!(
            !all.iter().any(|&b| b == 0x1b || b == 0x07),
            "{args:?}: a raw control character in the output:\n{}",
            String::from_utf8_lossy(&all)
        );
        assert!(
            String::from_utf8_lossy(&all).contains("\\u{1b}"),
            "{args:?}: {}",
            String::from_utf8_lossy(&all)
        );
    }
    let json = egressctl(&[
        "explain", "-f", f, "--src", "10.1.0.5", "--dst", "1.1.1.1", "-o", "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["match"]["gateway"]["node"], "gw\u{1b}[2J");
}

/// Inputs are read up to `--max-input` (64 MiB unless set): `/dev/zero` is refused, a file
/// of exactly the limit is read, one byte more is refused.
#[test]
fn inputs_larger_than_max_input_are_refused() {
    let out = egressctl(&["list", "-f", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/dev/zero: more than 67108864 bytes: refused (raise --max-input"),
        "{}",
        stderr(&out)
    );
    let seed = example("seed-gateway-group.yaml");
    let size = std::fs::metadata(&seed).unwrap().len();
    let exactly = egressctl(&["list", "-f", &seed, "--max-input", &size.to_string()]);
    assert!(exactly.status.success(), "{}", stderr(&exactly));
    let under = egressctl(&["list", "-f", &seed, "--max-input", &(size - 1).to_string()]);
    assert_eq!(under.status.code(), Some(1));
    assert!(
        stderr(&under).contains(&format!("more than {} bytes", size - 1)),
        "{}",
        stderr(&under)
    );
    assert!(
        egressctl(&["validate", "--max-input", "1K", &seed])
            .status
            .code()
            == Some(1)
    );
    assert_eq!(
        egressctl(&["list", "-f", &seed, "--max-input", "0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        egressctl(&["list", "-f", &seed, "--max-input", "9Q"])
            .status
            .code(),
        Some(2)
    );
    // The bound the message names is the one accepted: 2^64 - 1, not 2^64.
    let most = u64::MAX.to_string();
    assert!(
        egressctl(&["list", "-f", &seed, "--max-input", &most])
            .status
            .success()
    );
    let out = egressctl(&["list", "-f", &seed, "--max-input", "18446744073709551616"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("want a size from 1 byte to 2^64 - 1 (18446744073709551615 bytes)"),
        "{}",
        stderr(&out)
    );
    let out = egressctl(&["list", "-f", &seed, "--max-input", "17179869184G"]);
    assert!(stderr(&out).contains("2^64 - 1"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(egressctl(&["list"]).status.code(), Some(2));
    assert_eq!(
        egressctl(&["list", "-f", "x", "-o", "yaml"]).status.code(),
        Some(2)
    );
    assert_eq!(egressctl(&["frobnicate"]).status.code(), Some(2));
    // A map of no entries is a usage error, not a kernel one.
    let zero = egressctl(&[
        "list",
        "-f",
        &example("seed-gateway-group.yaml"),
        "--max-entries",
        "0",
    ]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(stderr(&zero).contains("--max-entries"), "{}", stderr(&zero));
    // Source and destination of different families: no packet is both.
    let mixed = egressctl(&[
        "explain",
        "-f",
        &example("seed-gateway-group.yaml"),
        "--src",
        "172.22.48.4",
        "--dst",
        "2001:db8::1",
    ]);
    assert_eq!(mixed.status.code(), Some(2));
    assert!(
        stderr(&mixed).contains("different families"),
        "{}",
        stderr(&mixed)
    );
}

const WITH_INVALID: &str = r#"
localNode: a
nodes: [{name: a, labels: {gw: "yes"}, ipv4: 10.0.0.1, interfaces: []},
        {name: b, labels: {gw: "yes"}, ipv4: 10.0.0.2}]
endpoints: [{uid: u1, labels: {app: x}, ips: [10.1.0.1]}]
policies:
- metadata: {name: good}
  spec:
    selectors: [{podSelector: {matchLabels: {app: x}}}]
    destinationCIDRs: [0.0.0.0/0]
    egressGateway: {nodeSelector: {matchLabels: {gw: "yes"}}}
- metadata: {name: broken}
  spec:
    selectors: [{podSelector: {}}]
    destinationCIDRs: [8.8.8.8]
"#;

#[test]
fn invalid_policies_warn_and_the_rest_is_computed() {
    let f = temp_file("invalid.yaml", WITH_INVALID);
    let out = egressctl(&["list", "-f", f.to_str().unwrap(), "-o", "json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ipv4"].as_array().unwrap().len(), 1);
    assert_eq!(
        stderr(&out),
        "warning: policy broken is invalid and is not programmed: spec.destinationCIDRs[0]: Invalid value: \"8.8.8.8\": no '/'; spec.egressGateway: Required value\n\
         good: 1 endpoint, gateways [a], 0 dropped\n"
    );
    let out = egressctl(&["list", "-f", f.to_str().unwrap(), "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(": broken: spec.egressGateway: Required value"));
}

#[test]
fn entries_beyond_max_entries_are_shown_with_one_warning() {
    let out = egressctl(&[
        "list",
        "-f",
        &example("seed-gateway-group.yaml"),
        "--max-entries",
        "4",
        "-o",
        "json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ipv4"].as_array().unwrap().len(), 10);
    let warnings: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.contains("max_entries"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        warnings,
        ["warning: cilium_egress_gw_policy_v4 would hold 10 entries, more than its max_entries 4"]
    );
    let out = egressctl(&[
        "list",
        "-f",
        &example("seed-gateway-group.yaml"),
        "--max-entries",
        "4",
        "--layout",
        "legacy",
    ]);
    assert!(stderr(&out).contains("warning: cilium_egress_gw_policy_v4 would hold 10 entries"));
}

#[test]
fn conflicts_are_reported() {
    let out = egressctl(&[
        "list",
        "-f",
        &example("selectors-and-conflicts.yaml"),
        "-o",
        "json",
    ]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("warning: conflict on 172.22.48.10 -> 1.2.3.0/24: policy web-tier (destinationCIDRs[0] 1.2.3.0/24) for endpoint 39fbe8cd-f950-563d-b40d-e67551c83425 is stored (gateway 172.22.49.119, egress 172.22.49.119)"),
        "{err}"
    );
    assert!(err.contains("overridden: policy everything (destinationCIDRs[0] 1.2.3.0/24) for endpoint 39fbe8cd-f950-563d-b40d-e67551c83425"));
    assert!(
        err.contains("Cilium's own choice between them is not deterministic"),
        "{err}"
    );
}

const BAD_POLICIES: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {name: one}
spec:
  selectors: [{podSelector: {}}]
  destinationCIDRs: ["10.0.0.0/024"]
  egressGateway: {nodeSelector: {}, egressIP: 10.0.0.1, interface: eth0}
---
apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {}
spec:
  selectors: [{nodeSelector: {}}]
  destinationCIDRs: []
---
apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {name: fine}
spec:
  selectors: [{podSelector: {matchExpressions: [{key: app, operator: In}]}}]
  destinationCIDRs: []
  egressGateway: {nodeSelector: {}}
"#;

#[test]
fn validate_reports_every_error_and_warning() {
    let f = temp_file("policies.yaml", BAD_POLICIES);
    let name = f.display().to_string();
    let out = egressctl(&["validate", &name]);
    assert_eq!(out.status.code(), Some(1));
    let want = [
        format!(
            "{name}: one: spec.destinationCIDRs[0]: Invalid value: \"10.0.0.0/024\": bad bits after slash: \"024\""
        ),
        format!(
            "{name}: one: spec.egressGateway: Forbidden: interface and egressIP are mutually exclusive"
        ),
        format!("{name}: #1: metadata.name: Required value"),
        format!("{name}: #1: spec.selectors[0]: Required value: podSelector or namespaceSelector"),
        format!("{name}: #1: spec.egressGateway: Required value"),
        format!(
            "warning: {name}: fine: spec.selectors[0]: selector matches nothing: key \"app\": operator In needs at least one value"
        ),
    ];
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), want);
}

/// An empty file (or only comments) holds no policy: an error, not "ok".
#[test]
fn validate_refuses_an_empty_file() {
    for text in ["", "# only a comment\n", "---\n"] {
        let f = temp_file("empty.yaml", text);
        let out = egressctl(&["validate", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{text:?}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("empty: no YAML or JSON document"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn validate_accepts_snapshots_lists_and_good_files() {
    let seed = example("seed-gateway-group.yaml");
    let out = egressctl(&["validate", &seed]);
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "warning: {seed}: egress-test: spec.egressGateway: ignored"
        )),
        "{text}"
    );
    assert!(text.ends_with(&format!("{seed}: ok: 1 valid policy\n")));
    let list = temp_file(
        "list.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [{"metadata": {"name": "a"}, "spec": {"selectors": [{"podSelector": {}}], "destinationCIDRs": ["0.0.0.0/0"], "egressGateway": {"nodeSelector": {}}}}]}"#,
    );
    let out = egressctl(&["validate", list.to_str().unwrap(), &seed]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains(": ok: 1 valid policy"));
    let snap = temp_file("snap-invalid.yaml", WITH_INVALID);
    let out = egressctl(&["validate", snap.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(": broken: spec.egressGateway: Required value"));
    let broken_snapshot = temp_file("snap-broken.yaml", &format!("{WITH_INVALID}extra: 1\n"));
    let out = egressctl(&["validate", broken_snapshot.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains(": extra: unknown field"), "{text}");
    assert!(
        text.contains(": broken: spec.egressGateway: Required value"),
        "{text}"
    );
    assert_eq!(
        egressctl(&["validate", "/nonexistent.yaml"]).status.code(),
        Some(1)
    );
}

fn test_data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn kubernetes_dumps_give_the_same_maps_as_the_snapshot() {
    let dump = test_data("seed-dump.yaml");
    let out = egressctl(&["list", "-f", &dump]);
    assert_eq!(out.status.code(), Some(1), "a dump names no node");
    assert!(
        stderr(&out).contains("--node: Required value"),
        "{}",
        stderr(&out)
    );
    let out = egressctl(&[
        "list",
        "-f",
        &dump,
        "--node",
        "172.22.49.119",
        "--interfaces",
        &test_data("gateway-interfaces.yaml"),
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected =
        std::fs::read_to_string(shared_examples().join("seed-single-gateway.expected.json"))
            .unwrap();
    assert_eq!(stdout(&out), expected);
    // validate reads only the policies of a dump.
    let out = egressctl(&["validate", &dump]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).ends_with(": ok: 1 valid policy\n"));
}

const SUMMARIES: &str = r#"
localNode: a
nodes:
- {name: a, labels: {gw: "yes", kubernetes.io/hostname: a}, ipv4: 10.0.0.1, interfaces: []}
- {name: b, labels: {gw: "yes", kubernetes.io/hostname: b}, ipv4: 10.0.0.2}
endpoints:
- {uid: u1, labels: {app: x}, ips: [10.1.0.1]}
- {uid: u2, labels: {app: x}, ips: [10.1.0.2]}
- {uid: u3, labels: {app: y}, ips: [10.1.0.3]}
policies:
- metadata: {name: spread}
  spec:
    selectors: [{podSelector: {matchLabels: {app: x}}}]
    destinationCIDRs: [0.0.0.0/0]
    egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: a}}}
    egressGateways:
    - nodeSelector: {matchLabels: {kubernetes.io/hostname: a}}
    - nodeSelector: {matchLabels: {kubernetes.io/hostname: b}}
- metadata: {name: nowhere}
  spec:
    selectors: [{podSelector: {matchLabels: {app: y}}}]
    destinationCIDRs: [1.0.0.0/8]
    egressGateway: {nodeSelector: {matchLabels: {gw: "no-such-node"}}}
- metadata: {name: nobody}
  spec:
    selectors: [{podSelector: {matchLabels: {app: z}}}]
    destinationCIDRs: [2.0.0.0/8]
    egressGateway: {nodeSelector: {matchLabels: {gw: "yes"}}}
"#;

#[test]
fn cidr_lints_are_warnings_naming_the_field() {
    let policy = |dest: &str, excl: &str| {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {{name: p}}\nspec:\n  \
             selectors: [{{podSelector: {{}}}}]\n  destinationCIDRs: {dest}\n  excludedCIDRs: {excl}\n  \
             egressGateway: {{nodeSelector: {{matchLabels: {{a: b}}}}}}\n"
        )
    };
    let lints = temp_file(
        "lints.yaml",
        &policy("[10.1.2.3/8, 10.0.0.0/8]", "[10.0.0.0/8, 192.168.0.0/16]"),
    );
    let out = egressctl(&["validate", lints.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "warnings are not errors: {}",
        stdout(&out)
    );
    let text = stdout(&out);
    for expected in [
        "p: spec.destinationCIDRs[0]: 10.1.2.3/8 has host bits set",
        "p: spec.destinationCIDRs[1]: 10.0.0.0/8 repeats spec.destinationCIDRs[0]",
        "p: spec.excludedCIDRs[0]: 10.0.0.0/8 equals spec.destinationCIDRs[0]",
        "p: spec.excludedCIDRs[1]: 192.168.0.0/16 lies outside every destinationCIDR",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
    let quiet = temp_file("quiet.yaml", &policy("[0.0.0.0/0]", "[10.0.0.0/8]"));
    let out = egressctl(&["validate", quiet.to_str().unwrap()]);
    assert!(!stdout(&out).contains("warning"), "{}", stdout(&out));
    // --strict: warnings are errors (exit 1), the report still printed.
    let strict = egressctl(&["validate", "--strict", lints.to_str().unwrap()]);
    assert_eq!(strict.status.code(), Some(1));
    assert_eq!(stdout(&strict), text);
    assert!(
        stderr(&strict).contains("--strict: 4 warnings"),
        "{}",
        stderr(&strict)
    );
    let strict_quiet = egressctl(&["validate", "--strict", quiet.to_str().unwrap()]);
    assert!(strict_quiet.status.success());
}

/// The lints that need the cluster: a namespace on the cluster-scoped kind, a gateway with
/// one possible node, a destination family no endpoint has; and a policy that stays quiet.
#[test]
fn cluster_lints_are_warnings_naming_the_field() {
    let policy = |name: &str, meta: &str, dests: &str, gateway: &str| {
        format!(
            "- metadata: {{name: {name}{meta}}}\n  spec:\n    selectors: [{{podSelector: {{}}}}]\n    \
             destinationCIDRs: {dests}\n    egressGateway: {{nodeSelector: {{matchLabels: {gateway}}}}}\n"
        )
    };
    let pool = "{egress: 'true'}";
    let snapshot = format!(
        "localNode: c\nnodes:\n- {{name: a, labels: {{egress: 'true', host: a}}, ipv4: 10.0.0.1}}\n\
         - {{name: b, labels: {{egress: 'true', host: b}}, ipv4: 10.0.0.2}}\n\
         - {{name: c, ipv4: 10.0.0.3}}\n\
         endpoints:\n- {{uid: u1, namespace: team-a, ips: [10.1.0.1], node: c}}\npolicies:\n{}{}{}{}",
        policy("namespaced", ", namespace: team-a", "[0.0.0.0/0]", pool),
        policy("lonely", "", "[0.0.0.0/0]", "{host: a}"),
        policy("v6", "", "['0.0.0.0/0', '::/0']", pool),
        policy("quiet", "", "[0.0.0.0/0]", pool),
    );
    let f = temp_file("cluster-lints.yaml", &snapshot);
    let out = egressctl(&["list", "-f", f.to_str().unwrap(), "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    let warnings = text.lines().filter(|l| l.starts_with("warning:")).count();
    for expected in [
        "namespaced: metadata.namespace: ignored: CiliumEgressGatewayPolicy is cluster-scoped",
        "lonely: spec.egressGateway: every gateway entry matches only node a",
        "v6: spec.destinationCIDRs[1]: ::/0: no endpoint in the input has an IPv6 address",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
    assert_eq!(warnings, 3, "{text}");
    assert!(
        !text.contains("quiet: spec") && !text.contains("quiet: metadata"),
        "{text}"
    );
    // The same from validate, which has the snapshot too.
    let out = egressctl(&["validate", f.to_str().unwrap()]);
    assert_eq!(
        stdout(&out).matches("warning:").count(),
        3,
        "{}",
        stdout(&out)
    );
}

/// Policy names are cluster-wide: validate warns when two files (or two documents) use one.
#[test]
fn validate_warns_of_one_name_in_two_files() {
    let policy = |name: &str| {
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {{name: {name}}}\nspec:\n  \
             selectors: [{{podSelector: {{}}}}]\n  destinationCIDRs: [0.0.0.0/0]\n  \
             egressGateway: {{nodeSelector: {{matchLabels: {{a: b}}}}}}\n"
        )
    };
    let first = temp_file("first.yaml", &policy("web"));
    let second = temp_file(
        "second.yaml",
        &format!("{}---\n{}", policy("db"), policy("web")),
    );
    let out = egressctl(&[
        "validate",
        first.to_str().unwrap(),
        second.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let want = format!(
        "warning: {}: web: metadata.name: also the name of {} (#0): policy names are \
         cluster-wide, so applying both keeps only the last one applied",
        second.display(),
        first.display()
    );
    assert!(stdout(&out).contains(&want), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).matches("warning:").count(),
        1,
        "{}",
        stdout(&out)
    );
    let other = temp_file("other.yaml", &policy("api"));
    let out = egressctl(&["validate", first.to_str().unwrap(), other.to_str().unwrap()]);
    assert!(!stdout(&out).contains("warning"), "{}", stdout(&out));
}

#[test]
fn list_strict_makes_warnings_errors_after_printing() {
    let conflicts = example("selectors-and-conflicts.yaml");
    let lenient = egressctl(&["list", "-f", &conflicts, "-o", "json"]);
    assert!(lenient.status.success());
    let strict = egressctl(&["list", "-f", &conflicts, "-o", "json", "--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    assert_eq!(
        stdout(&strict),
        stdout(&lenient),
        "the maps are still printed"
    );
    assert!(
        stderr(&strict).contains("make this an error"),
        "{}",
        stderr(&strict)
    );
    let quiet = egressctl(&[
        "list",
        "-f",
        &example("egress-pool-consistent.yaml"),
        "--strict",
    ]);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
}

#[test]
fn every_policy_gets_a_summary_line() {
    let f = temp_file("summaries.yaml", SUMMARIES);
    let out = egressctl(&["list", "-f", f.to_str().unwrap(), "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| !l.starts_with("warning:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines,
        [
            "spread: 2 endpoints, gateways [a, b], 0 dropped",
            "nowhere: 1 endpoint, gateways [], 1 dropped",
            "nobody: 0 endpoints, gateways [], 0 dropped",
        ]
    );
}

#[test]
fn a_gateway_without_known_devices_is_not_silent() {
    let dump = test_data("seed-dump.yaml");
    let out = egressctl(&["list", "-f", &dump, "--node", "172.22.49.119"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: node 172.22.49.119 is the gateway of")
            && err.contains("give them with --interfaces FILE"),
        "{err}"
    );
    // Quiet once the devices are given, and for a node that is no gateway.
    let out = egressctl(&[
        "list",
        "-f",
        &dump,
        "--node",
        "172.22.49.119",
        "--interfaces",
        &test_data("gateway-interfaces.yaml"),
    ]);
    assert!(!stderr(&out).contains("devices"), "{}", stderr(&out));
    let out = egressctl(&["list", "-f", &dump, "--node", "172.22.48.125"]);
    assert!(!stderr(&out).contains("devices"), "{}", stderr(&out));
    // A snapshot that lists the gateway's devices stays quiet too.
    let out = egressctl(&["list", "-f", &example("seed-single-gateway.yaml")]);
    assert!(!stderr(&out).contains("devices"), "{}", stderr(&out));
}

#[test]
fn interfaces_from_the_host() {
    let out = egressctl(&[
        "list",
        "-f",
        &example("seed-single-gateway.yaml"),
        "--interfaces",
        "host",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // This host does not carry 172.22.49.119: derivation fails, the gateway IP stays.
    assert_eq!(v["ipv4"][0]["egressIP"], "0.0.0.0");
    assert_eq!(v["ipv4"][0]["gatewayIP"], "172.22.49.119");
    let bad = temp_file(
        "ifs.yaml",
        "- {name: eth0, index: 2, addresses: [10.0.0.1]}\n",
    );
    let out = egressctl(&[
        "list",
        "-f",
        &example("seed-single-gateway.yaml"),
        "--interfaces",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("interfaces[0].addresses[0]: Invalid value: \"10.0.0.1\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn consistent_selection_equals_every_consistent_example_exactly() {
    let mut checked = 0;
    for entry in std::fs::read_dir(shared_examples()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = name.strip_suffix(".consistent.expected.json") else {
            continue;
        };
        let snapshot = path.with_file_name(format!("{stem}.yaml"));
        let out = egressctl(&[
            "list",
            "-f",
            snapshot.to_str().unwrap(),
            "--selection",
            "consistent",
            "-o",
            "json",
        ]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            std::fs::read_to_string(&path).unwrap(),
            "{name}"
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} consistent examples found");
}

#[test]
fn explain_text_and_json() {
    let f = example("selectors-and-conflicts.yaml");
    let out = egressctl(&[
        "explain",
        "-f",
        &f,
        "--src",
        "172.22.48.10",
        "--dst",
        "1.2.3.4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "172.22.48.10 -> 1.2.3.4: masquerade: SNAT to 172.22.49.119 here, then route\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("from: policy web-tier (destinationCIDRs[0] 1.2.3.0/24)"),
        "{text}"
    );
    assert!(
        text.contains("selected by: spec.selectors[0] of pod default/nginx-54c98b4f84-6jx8n"),
        "{text}"
    );
    assert!(text.contains("overrides: policy everything"), "{text}");
    let out = egressctl(&[
        "explain",
        "-f",
        &f,
        "--src",
        "172.22.48.14",
        "--dst",
        "9.9.9.9",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"]["kind"], "forward");
    assert_eq!(v["verdict"]["gatewayIP"], "172.22.49.20");
    assert_eq!(v["match"]["producer"]["policy"], "everything");
    assert_eq!(v["match"]["gateway"]["reason"]["kind"], "cilium");
    let out = egressctl(&[
        "explain", "-f", &f, "--src", "10.0.0.1", "--dst", "9.9.9.9", "-o", "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"]["kind"], "noEntry");
    assert!(v["match"].is_null());
    assert_eq!(
        egressctl(&[
            "explain",
            "-f",
            &f,
            "--src",
            "not-an-ip",
            "--dst",
            "9.9.9.9"
        ])
        .status
        .code(),
        Some(2)
    );
}

/// `--src NAMESPACE/POD`, and for a known pod no policy selects, why each policy does not.
#[test]
fn explain_by_pod_name_says_which_selector_term_failed() {
    let f = example("seed-namespace-and-label.yaml");
    let by_name = egressctl(&[
        "explain",
        "-f",
        &f,
        "--src",
        "default/nginx-54c98b4f84-mpvpz",
        "--dst",
        "8.8.8.8",
    ]);
    let by_ip = egressctl(&[
        "explain",
        "-f",
        &f,
        "--src",
        "172.22.48.41",
        "--dst",
        "8.8.8.8",
    ]);
    assert!(by_name.status.success(), "{}", stderr(&by_name));
    assert_eq!(stdout(&by_name), stdout(&by_ip));
    assert_eq!(
        stdout(&by_name),
        "172.22.48.41 -> 8.8.8.8: no entry: normal path (the egress gateway is not used)\n  \
         no policy selects source 172.22.48.41\n  \
         why no policy selects default/nginx-54c98b4f84-mpvpz:\n    \
         egress-prod: spec.selectors[0]: io.kubernetes.pod.namespace=prod, but it has io.kubernetes.pod.namespace=default\n    \
         egress-mall: spec.selectors[0]: business=mall, but it has no label business\n"
    );
    // A selected pod by name: its entry, no "why not".
    let selected = egressctl(&[
        "explain",
        "-f",
        &f,
        "--src",
        "shop/nginx-54c98b4f84-8ptvh",
        "--dst",
        "8.8.8.8",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&selected.stdout).unwrap();
    assert_eq!(v["source"], "172.22.48.37");
    assert_eq!(v["match"]["producer"]["policy"], "egress-mall");
    // Unknown pods and families: exit 1 naming --src; not a pod name: usage, exit 2.
    let missing = egressctl(&[
        "explain",
        "-f",
        &f,
        "--src",
        "shop/nope",
        "--dst",
        "8.8.8.8",
    ]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("--src shop/nope: Not found"),
        "{}",
        stderr(&missing)
    );
    let family = egressctl(&[
        "explain",
        "-f",
        &f,
        "--src",
        "shop/nginx-54c98b4f84-8ptvh",
        "--dst",
        "2001:db8::1",
    ]);
    assert_eq!(family.status.code(), Some(1));
    assert!(
        stderr(&family).contains("has no IPv6 address"),
        "{}",
        stderr(&family)
    );
    let bad = egressctl(&["explain", "-f", &f, "--src", "nonsense", "--dst", "8.8.8.8"]);
    assert_eq!(bad.status.code(), Some(2));
    // Selected, but the policy has no destination of the source's family: said so, not
    // "no policy selects".
    let v6 = temp_file(
        "v6pod.yaml",
        "localNode: gw\nnodes:\n- {name: gw, labels: {egress: \"true\"}, ipv4: 10.0.0.1}\n\
         endpoints:\n- {uid: u1, namespace: web, name: api-0, labels: {app: api}, ips: [10.1.0.5, \"fd00:1::5\"], node: gw}\n\
         policies:\n- metadata: {name: v4-only}\n  spec:\n    selectors: [{podSelector: {matchLabels: {app: api}}}]\n    \
         destinationCIDRs: [0.0.0.0/0]\n    egressGateway: {nodeSelector: {matchLabels: {egress: \"true\"}}}\n",
    );
    let out = egressctl(&[
        "explain",
        "-f",
        v6.to_str().unwrap(),
        "--src",
        "web/api-0",
        "--dst",
        "2001:db8::1",
    ]);
    assert_eq!(
        stdout(&out),
        "fd00:1::5 -> 2001:db8::1: no entry: normal path (the egress gateway is not used)\n  \
         policy v4-only selects source fd00:1::5 but names no IPv6 destinationCIDR, so it has no entry\n"
    );
}

#[test]
fn diff_plans_the_change_and_lists_moved_endpoints() {
    let old = example("seed-gateway-group.yaml");
    let text = std::fs::read_to_string(&old).unwrap();
    // NEW: gateway .147 removed from egressGateways, one pod replaced by a new IP, and an
    // invalid policy that must not take effect.
    let new_text = text
        .replace("    - nodeSelector:\n        matchLabels:\n          kubernetes.io/hostname: 172.22.49.147\n      egressIP: 172.22.49.147\n", "")
        .replace("  - 172.22.48.44\n", "  - 172.22.48.45\n")
        + "- metadata: {name: broken}\n  spec: {selectors: []}\n";
    let new = temp_file("new.yaml", &new_text);
    let out = egressctl(&["diff", "-f", &old, "-f", new.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("upsert   cilium_egress_gw_policy_v4   172.22.48.45   0.0.0.0/0          172.22.49.119   172.22.49.119"), "{text}");
    assert!(text.contains("delete   cilium_egress_gw_policy_v4   172.22.48.44   0.0.0.0/0          0.0.0.0         172.22.49.147"), "{text}");
    assert!(text.contains("5 upserts, 1 deletes"), "{text}");
    assert_eq!(
        text.matches("-> 172.22.49.119 (172.22.49.119)").count(),
        5,
        "{text}"
    );
    assert!(text.contains("default/nginx-54c98b4f84-6jx8n (policy egress-test): 172.22.49.147 (172.22.49.147) -> 172.22.49.119"), "{text}");
    assert!(
        stderr(&out).contains("policy broken is invalid"),
        "{}",
        stderr(&out)
    );
    let same = egressctl(&["diff", "-f", &old, "-f", &old]);
    assert_eq!(stdout(&same), "No changes.\n");
    // NEW without the node whose maps are compared: an error, not the maps of a ghost.
    let without_local = temp_file(
        "without-local.yaml",
        &std::fs::read_to_string(&old)
            .unwrap()
            .replace("localNode: 172.22.49.119", "localNode: 172.22.49.147")
            .replacen("- name: 172.22.49.119\n", "- name: 172.22.49.118\n", 1),
    );
    let ghost = egressctl(&["diff", "-f", &old, "-f", without_local.to_str().unwrap()]);
    assert_eq!(ghost.status.code(), Some(1), "{}", stdout(&ghost));
    assert!(
        stderr(&ghost).contains("node 172.22.49.119, whose maps are compared, is not in NEW ("),
        "{}",
        stderr(&ghost)
    );
    let lost = egressctl(&["diff", "-f", &old, "--without-node", "172.22.49.119"]);
    assert_eq!(lost.status.code(), Some(1));
    let other = egressctl(&[
        "diff",
        "-f",
        &old,
        "--without-node",
        "172.22.49.119",
        "--node",
        "172.22.49.147",
    ]);
    assert!(other.status.success(), "{}", stderr(&other));
    // Gateway cells as list prints them.
    let dual = egressctl(&[
        "diff",
        "-f",
        &old,
        "-f",
        &example("dual-stack-excluded.yaml"),
    ]);
    let rows = stdout(&dual);
    assert!(
        rows.lines()
            .any(|l| l.contains("172.22.48.38") && l.ends_with("Not Found")),
        "{rows}"
    );
    assert!(
        rows.lines()
            .any(|l| l.contains("169.254.0.0/16") && l.ends_with("Excluded CIDR")),
        "{rows}"
    );
    assert_eq!(egressctl(&["diff", "-f", &old]).status.code(), Some(2));
    // --exit-code: 1 when anything changes (the plan still printed), 0 when nothing does.
    let changed = egressctl(&[
        "diff",
        "-f",
        &old,
        "-f",
        new.to_str().unwrap(),
        "--exit-code",
    ]);
    assert_eq!(changed.status.code(), Some(1));
    assert_eq!(stdout(&changed), stdout(&out));
    assert!(
        !stderr(&changed).contains("egressctl:"),
        "{}",
        stderr(&changed)
    );
    // --strict: NEW's invalid policy is a warning, so an error.
    let strict = egressctl(&["diff", "-f", &old, "-f", new.to_str().unwrap(), "--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        stderr(&strict).contains("--strict: 1 warning (above)"),
        "{}",
        stderr(&strict)
    );
    assert!(
        egressctl(&["diff", "-f", &old, "-f", &old, "--strict"])
            .status
            .success()
    );
    let same = egressctl(&["diff", "-f", &old, "-f", &old, "--exit-code"]);
    assert_eq!(
        (same.status.code(), stdout(&same).as_str()),
        (Some(0), "No changes.\n")
    );
}

const NEW_POLICY: &str = r#"apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {name: extra}
spec:
  selectors: [{podSelector: {matchLabels: {app: nginx}}}]
  destinationCIDRs: [9.9.9.0/24]
  egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: 172.22.49.119}}}
"#;

#[test]
fn files_merge_later_objects_replacing_earlier_ones() {
    // A dump plus a new policy: its entries join the dump's.
    let dump = test_data("seed-dump.yaml");
    let extra = temp_file("extra.yaml", NEW_POLICY);
    let base = ["list", "-f", &dump, "--node", "172.22.48.125", "-o", "json"];
    let alone = egressctl(&base);
    let both = egressctl(&[&base[..], &["-f", extra.to_str().unwrap()]].concat());
    assert!(both.status.success(), "{}", stderr(&both));
    let count = |o: &Output| {
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["ipv4"].as_array().unwrap().len()
    };
    assert!(count(&both) > count(&alone));
    assert!(stdout(&both).contains("9.9.9.0/24"));
    // A later version of a policy replaces the earlier one (same kind and name).
    let replaced = temp_file(
        "replaced.yaml",
        &NEW_POLICY.replace("9.9.9.0/24", "8.8.8.0/24"),
    );
    let out = egressctl(
        &[
            &base[..],
            &[
                "-f",
                extra.to_str().unwrap(),
                "-f",
                replaced.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("8.8.8.0/24") && !stdout(&out).contains("9.9.9.0/24"));
    // A snapshot plus a policy: the same.
    let snap = example("seed-gateway-group.yaml");
    let out = egressctl(&[
        "list",
        "-f",
        &snap,
        "-f",
        extra.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("9.9.9.0/24"));
    // A snapshot after a dump is refused, naming that file.
    let out = egressctl(&["list", "-f", &dump, "-f", &snap, "--node", "172.22.48.125"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&snap)
            && stderr(&out).contains("a snapshot can only be the first input"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn standard_input_is_a_file_named_dash() {
    use std::io::Write;
    use std::process::Stdio;
    let snap = example("seed-gateway-group.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(["list", "-f", "-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(std::fs::read_to_string(&snap).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        stdout(&egressctl(&["list", "-f", &snap, "-o", "json"]))
    );
    let twice = egressctl(&["list", "-f", "-", "-f", "-"]);
    assert_eq!(twice.status.code(), Some(2));
}

#[test]
fn an_egress_ip_that_is_a_nodes_external_ip_is_the_tke_trap() {
    let dump_path = shared_examples().join("dumps/tke-dump.yaml");
    let dump = std::fs::read_to_string(&dump_path).unwrap();
    assert!(dump.contains("egressIP: 172.22.49.119") && dump.contains("ip: 129.226.84.9"));
    let trap = temp_file(
        "trap.yaml",
        &dump.replace("egressIP: 172.22.49.119", "egressIP: 129.226.84.9"),
    );
    let out = egressctl(&[
        "list",
        "-f",
        trap.to_str().unwrap(),
        "--node",
        "172.22.48.125",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(".egressIP: 129.226.84.9 is node 172.22.49.119's ExternalIP")
            && err.contains("use its InternalIP or a secondary private IP"),
        "{err}"
    );
    let quiet = egressctl(&[
        "list",
        "-f",
        dump_path.to_str().unwrap(),
        "--node",
        "172.22.48.125",
        "-o",
        "json",
    ]);
    assert!(!stderr(&quiet).contains("ExternalIP"), "{}", stderr(&quiet));
}

#[test]
fn diff_shows_the_blast_radius_of_draining_or_losing_a_gateway() {
    let seed = example("seed-gateway-group.yaml");
    let moved = |o: &Output| {
        stdout(o)
            .lines()
            .filter(|l| l.contains("(policy egress-test): 172.22.49.147"))
            .count()
    };
    // Losing .147: in Cilium's mode every endpoint it served moves to the other gateway.
    let lost = egressctl(&["diff", "-f", &seed, "--without-node", "172.22.49.147"]);
    assert!(lost.status.success(), "{}", stderr(&lost));
    assert_eq!(moved(&lost), 5, "{}", stdout(&lost));
    // Draining it: Cilium ignores weights (nothing moves); consistent mode moves its endpoints.
    let cilium = egressctl(&["diff", "-f", &seed, "--drain", "172.22.49.147"]);
    assert_eq!(stdout(&cilium), "No changes.\n");
    let consistent = egressctl(&[
        "diff",
        "-f",
        &seed,
        "--drain",
        "172.22.49.147",
        "--selection",
        "consistent",
    ]);
    assert!(consistent.status.success(), "{}", stderr(&consistent));
    assert!(moved(&consistent) > 0, "{}", stdout(&consistent));
    assert!(
        stdout(&consistent)
            .lines()
            .filter(|l| l.contains(" -> "))
            .all(|l| l.contains(": 172.22.49.147 (")),
        "only the drained node's endpoints move: {}",
        stdout(&consistent)
    );
    // Usage: one file with these flags, a known node.
    assert_eq!(
        egressctl(&["diff", "-f", &seed, "-f", &seed, "--drain", "172.22.49.147"])
            .status
            .code(),
        Some(2)
    );
    let unknown = egressctl(&["diff", "-f", &seed, "--without-node", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("--without-node: Not found"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn pods_show_where_each_pods_traffic_leaves_and_as_what() {
    let out = egressctl(&["pods", "-f", &example("seed-gateway-group.yaml")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "Pod", "Pod", "IP", "Policy", "Gateway", "node", "Egress", "IP", "Public", "IP"
        ]
    );
    assert_eq!(lines.len(), 11, "{text}");
    assert!(text.contains("default/nginx-54c98b4f84-5wlpc   172.22.48.4    egress-test   172.22.49.119   172.22.49.119   -"), "{text}");
    // A dump knows the gateways' ExternalIPs (the partner sees those) but not their devices.
    let dump = shared_examples().join("dumps/tke-dump.yaml");
    let out = egressctl(&[
        "pods",
        "-f",
        dump.to_str().unwrap(),
        "--node",
        "172.22.48.125",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("172.22.49.119   (devices unknown)   129.226.84.9"),
        "{text}"
    );
    // Nothing selected: said on stderr.
    let empty = temp_file("empty-pods.yaml", EMPTY);
    let out = egressctl(&["pods", "-f", empty.to_str().unwrap()]);
    assert_eq!(
        (stdout(&out).as_str(), stderr(&out).as_str()),
        ("", "No selected endpoints.\n")
    );
}

/// `doctor` on the seed's configuration (ConfigMap and Helm values): every check ok; on a
/// default install among other ConfigMaps: the failures, each with its `--set`, the whole
/// `helm upgrade`, exit 1; a mesh member by its cluster id: a warning, an error with --strict.
#[test]
fn doctor_checks_the_seeds_enable_section() {
    for good in ["cilium-config-seed.yaml", "helm-values-seed.yaml"] {
        let out = egressctl(&["doctor", "-f", &test_data(good)]);
        assert!(
            out.status.success(),
            "{good}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        assert_eq!(text.lines().count(), 9, "{text}");
        assert_eq!(
            text.lines().next(),
            Some("Checked against Cilium 1.18 (the input names no release).")
        );
        assert!(text.lines().skip(1).all(|l| l.starts_with("ok ")), "{text}");
    }
    let out = egressctl(&["doctor", "-f", &test_data("cilium-config-default.yaml")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for line in [
        "FAIL  egress gateway: enable-egress-gateway not set (default \"false\"): the feature is off",
        "FAIL  kube-proxy replacement: kube-proxy-replacement: \"false\"",
        "FAIL  BPF masquerade: enable-bpf-masquerade: \"false\"",
        "ok    IPv4 masquerade: enable-ipv4-masquerade: \"true\"",
        "ok    native-routing CIDR: not needed: routing-mode: \"tunnel\"",
        "FAIL  CiliumEndpointSlice: enable-cilium-endpoint-slice: \"true\": incompatible",
        "      fix: --set ciliumEndpointSlice.enabled=false",
        "helm upgrade cilium cilium/cilium --version CHART_VERSION --namespace kube-system --reuse-values \\",
        "  --set egressGateway.enabled=true \\",
        "kubectl rollout restart ds cilium -n kube-system",
    ] {
        assert!(text.lines().any(|l| l.starts_with(line)), "{line}\n{text}");
    }
    assert!(
        stderr(&out).contains("4 of 8 checks failed"),
        "{}",
        stderr(&out)
    );

    let meshed = temp_file(
        "meshed.yaml",
        &std::fs::read_to_string(test_data("cilium-config-seed.yaml"))
            .unwrap()
            .replace("cluster-id: \"0\"", "cluster-id: \"7\""),
    );
    let out = egressctl(&["doctor", "-f", meshed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("warn  Cluster Mesh: cluster-id: \"7\""),
        "{}",
        stdout(&out)
    );
    let strict = egressctl(&["doctor", "--strict", "-f", meshed.to_str().unwrap()]);
    assert_eq!(strict.status.code(), Some(1));

    // Not a configuration: exit 1 naming the field.
    let other = temp_file("deployment.yaml", "kind: Deployment\nspec: {}\n");
    let out = egressctl(&["doctor", "-f", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("kind: Invalid value"),
        "{}",
        stderr(&out)
    );
}

/// `doctor` checks the version the input names (the ConfigMap's Helm chart label) or
/// `--cilium-version`, says which, and warns when they disagree; from 1.19 the removed
/// `enable-ipv4-egress-gateway` no longer enables the feature (#42238).
#[test]
fn doctor_checks_the_cilium_version_the_input_names() {
    let seed = std::fs::read_to_string(test_data("cilium-config-seed.yaml")).unwrap();
    let labelled = |chart: &str| {
        seed.replace(
            "  namespace: kube-system\n",
            &format!("  namespace: kube-system\n  labels: {{helm.sh/chart: {chart}}}\n"),
        )
    };
    let v119 = temp_file("cm-1.19.yaml", &labelled("cilium-1.19.2"));
    let out = egressctl(&["doctor", "-f", v119.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().next(),
        Some(
            "Checked against Cilium 1.19 (the ConfigMap kube-system/cilium-config (label helm.sh/chart) is Cilium 1.19.2)."
        )
    );
    let out = egressctl(&[
        "doctor",
        "--strict",
        "--cilium-version",
        "1.18",
        "-f",
        v119.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a disagreeing version is a warning"
    );
    assert!(
        stderr(&out).contains("is Cilium 1.19.2, but --cilium-version is 1.18"),
        "{}",
        stderr(&out)
    );
    // The old option alone: on 1.18 still the feature's switch, ignored from 1.19.
    let old = labelled("cilium-1.18.3").replace(
        "enable-egress-gateway: \"true\"",
        "enable-ipv4-egress-gateway: \"true\"",
    );
    let old_1_18 = temp_file("cm-old-1.18.yaml", &old);
    assert!(
        egressctl(&["doctor", "-f", old_1_18.to_str().unwrap()])
            .status
            .success()
    );
    let out = egressctl(&[
        "doctor",
        "--cilium-version",
        "1.20",
        "-f",
        old_1_18.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "enable-ipv4-egress-gateway: \"true\" is ignored: Cilium 1.20 removed it (#42238)"
        ),
        "{}",
        stdout(&out)
    );
}

/// A dump holding the agent DaemonSet: `list` says which release it is and warns when
/// `--cilium-version` is another.
#[test]
fn list_names_the_dumps_cilium_release() {
    let dump = std::fs::read_to_string(example("dumps/tke-dump.yaml")).unwrap();
    let ds = "---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: cilium, namespace: kube-system}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: cilium-agent, image: 'quay.io/cilium/cilium:v1.20.1'}\n";
    let with_ds = temp_file("dump-with-ds.yaml", &format!("{dump}\n{ds}"));
    let args = |v: &'static str| {
        [
            "list",
            "-f",
            with_ds.to_str().unwrap(),
            "--node",
            "172.22.49.119",
            "--cilium-version",
            v,
        ]
        .map(str::to_owned)
    };
    let run = |v: &'static str| {
        let a = args(v);
        egressctl(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run("1.20");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cilium: the DaemonSet kube-system/cilium (image quay.io/cilium/cilium:v1.20.1) is Cilium v1.20.1: computed as Cilium 1.20"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("kind DaemonSet is not used"),
        "{}",
        stderr(&out)
    );
    let out = run("1.18");
    assert!(
        stderr(&out).contains("warning: the DaemonSet kube-system/cilium (image quay.io/cilium/cilium:v1.20.1) is Cilium v1.20.1, but the maps are computed as Cilium 1.18: pass --cilium-version 1.20"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn shell_completions_name_every_command() {
    let out = egressctl(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = stdout(&out);
    for command in ["list", "pods", "validate", "explain", "diff", "demo"] {
        assert!(script.contains(command), "{command}");
    }
    assert!(script.contains("--without-node") && script.contains("--exit-code"));
    assert!(egressctl(&["completions", "zsh"]).status.success());
    assert_eq!(
        egressctl(&["completions", "cmd.exe"]).status.code(),
        Some(2)
    );
}

/// The seed's own `cilium-dbg bpf egress list` on its gateway 172.22.49.119 (Cilium 1.18.3:
/// four columns), as the seed prints it (its spacing collapsed to one space).
const SEED_LIST: &str = "\
Source IP Destination CIDR Egress IP Gateway IP
172.22.48.4 0.0.0.0/0 172.22.49.119 172.22.49.119
172.22.48.10 0.0.0.0/0 0.0.0.0 172.22.49.147
172.22.48.14 0.0.0.0/0 0.0.0.0 172.22.49.147
172.22.48.37 0.0.0.0/0 0.0.0.0 172.22.49.147
172.22.48.38 0.0.0.0/0 172.22.49.119 172.22.49.119
172.22.48.39 0.0.0.0/0 172.22.49.119 172.22.49.119
172.22.48.41 0.0.0.0/0 0.0.0.0 172.22.49.147
172.22.48.42 0.0.0.0/0 0.0.0.0 172.22.49.147
172.22.48.43 0.0.0.0/0 172.22.49.119 172.22.49.119
172.22.48.44 0.0.0.0/0 172.22.49.119 172.22.49.119
172.22.48.45 0.0.0.0/0 172.22.49.119 172.22.49.119
172.22.48.46 0.0.0.0/0 0.0.0.0 172.22.49.147
172.22.48.47 0.0.0.0/0 0.0.0.0 172.22.49.147
";

/// The seed's cluster (its nodes and policy) with the thirteen pods of its listing, each
/// given a uid that hashes to the gateway the seed shows for it (the seed does not print
/// uids): `--cilium-version 1.18` prints the seed's listing, four columns; 1.20 prints five
/// columns and, for these dual-stack destinations with an IPv4 egressIP on a node without
/// IPv6, egress IP 0.0.0.0 (cilium#48660).
#[test]
fn the_seeds_listing_is_what_cilium_1_18_prints() {
    let text = std::fs::read_to_string(example("seed-gateway-group.yaml")).unwrap();
    let (head, rest) = text.split_once("\nendpoints:\n").unwrap();
    let policies = &rest[rest.find("\npolicies:").unwrap()..];
    let mut endpoints = String::from("\nendpoints:\n");
    for row in SEED_LIST.lines().skip(1) {
        let cells: Vec<&str> = row.split(' ').collect();
        // Gateways sorted by IP: [.119, .147]; FNV-1a-32(uid) % 2 picks one.
        let want = usize::from(cells[3] == "172.22.49.147");
        let uid = (0..)
            .map(|k| format!("seed-{}-{k}", cells[0]))
            .find(|u| egress_core::gateway::fnv1a32(u.as_bytes()) as usize % 2 == want)
            .unwrap();
        endpoints.push_str(&format!(
            "- {{uid: {uid}, namespace: default, labels: {{app: nginx}}, \
             namespaceLabels: {{kubernetes.io/metadata.name: default}}, ips: [{}], node: 172.22.48.48}}\n",
            cells[0]
        ));
    }
    let cluster = temp_file("seed-listing.yaml", &format!("{head}{endpoints}{policies}"));
    let cluster = cluster.to_str().unwrap();
    let collapsed = |o: &Output| -> String {
        stdout(o)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
            .collect()
    };
    for version in [None, Some("1.18")] {
        let mut args = vec!["list", "-f", cluster];
        args.extend(version.iter().flat_map(|v| ["--cilium-version", v]));
        let out = egressctl(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(collapsed(&out), SEED_LIST, "{version:?}");
    }
    let out = egressctl(&["list", "-f", cluster, "--cilium-version", "1.20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Source IP      Destination CIDR   Egress IP   Gateway IP      Egress Ifindex"
    );
    assert_eq!(
        lines[1],
        "172.22.48.4    0.0.0.0/0          0.0.0.0     172.22.49.119   0"
    );
    // 1.20's JSON rows carry the ifindex; 1.18's do not.
    let json = |v: &str| {
        let out = egressctl(&[
            "list",
            "-f",
            cluster,
            "--cilium-version",
            v,
            "-o",
            "cilium-json",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc[0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        json("1.18"),
        ["SourceIP", "DestCIDR", "EgressIP", "GatewayIP"]
    );
    assert_eq!(
        json("1.20"),
        ["SourceIP", "DestCIDR", "EgressIP", "GatewayIP", "Ifindex"]
    );
}

/// Every shared example's expected maps for every version and mode, exactly (the unsuffixed
/// files are 1.18's, the default).
#[test]
fn list_json_on_every_cilium_version_and_mode() {
    let mut checked = 0;
    for entry in std::fs::read_dir(shared_examples()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = name.strip_suffix(".yaml") else {
            continue;
        };
        for (version, infix) in [
            ("1.18", ""),
            ("1.19", ".cilium-1.19"),
            ("1.20", ".cilium-1.20"),
        ] {
            for (selection, mode) in [("cilium", ""), ("consistent", ".consistent")] {
                let expected = path.with_file_name(format!("{stem}{mode}{infix}.expected.json"));
                let Ok(want) = std::fs::read_to_string(&expected) else {
                    continue;
                };
                let out = egressctl(&[
                    "list",
                    "-f",
                    path.to_str().unwrap(),
                    "-o",
                    "json",
                    "--cilium-version",
                    version,
                    "--selection",
                    selection,
                ]);
                assert!(out.status.success(), "{name} {version}: {}", stderr(&out));
                assert_eq!(stdout(&out), want, "{}", expected.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 27, "only {checked} expected files compared");
}

/// `validate --cilium-version`: the version's CRD schema (an IPv6 egressIP refused up to
/// 1.19 by `format: ipv4`; 65 egressGateways refused from 1.20 by `maxItems: 64`).
#[test]
fn validate_follows_the_cilium_version() {
    let v6 = temp_file(
        "v6-egress-ip.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {name: v6}\nspec:\n  selectors: [{podSelector: {}}]\n  destinationCIDRs: [\"::/0\"]\n  egressGateway: {nodeSelector: {matchLabels: {egress: \"true\"}}, egressIP: \"fd00::1\"}\n",
    );
    let v6 = v6.to_str().unwrap();
    for version in ["1.18", "1.19"] {
        let out = egressctl(&["validate", "--cilium-version", version, v6]);
        assert_eq!(out.status.code(), Some(1), "{version}");
        assert!(
            stdout(&out).contains("v6: spec.egressGateway.egressIP: Invalid value: \"fd00::1\": spec.egressGateway.egressIP in body must be of type ipv4: \"fd00::1\""),
            "{version}: {}",
            stdout(&out)
        );
    }
    let out = egressctl(&["validate", "--cilium-version", "1.20", v6]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let items: String = (0..65)
        .map(|i| format!("  - nodeSelector: {{matchLabels: {{n: \"{i}\"}}}}\n"))
        .collect();
    let many = temp_file(
        "many-gateways.yaml",
        &format!(
            "apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {{name: many}}\nspec:\n  selectors: [{{podSelector: {{}}}}]\n  destinationCIDRs: [0.0.0.0/0]\n  egressGateway: {{nodeSelector: {{}}}}\n  egressGateways:\n{items}"
        ),
    );
    let many = many.to_str().unwrap();
    let out = egressctl(&["validate", "--cilium-version", "1.20", many]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .contains("many: spec.egressGateways: Too many: 65: must have at most 64 items"),
        "{}",
        stdout(&out)
    );
    let out = egressctl(&["validate", many]);
    assert!(out.status.success(), "1.18 sets no limit: {}", stdout(&out));
    let out = egressctl(&["validate", "--cilium-version", "1.17", many]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("1.18, 1.19, 1.20"),
        "{}",
        stderr(&out)
    );
}

/// `diff --to-cilium-version`: the seed's cluster upgraded from 1.18 to 1.20 — the maps
/// written, the gateway's five rows that lose their egress IP (cilium#48660: dual-stack
/// destinations, IPv4 egressIP, no IPv6 on the gateway's device) and the warning naming it;
/// 1.18 to 1.19 on the dual-stack example: the IPv6 rows gain their ifindex. A version the
/// engine does not know is a usage error.
#[test]
fn diff_to_another_cilium_version_shows_what_an_upgrade_changes() {
    let seed = example("seed-gateway-group.yaml");
    let out = egressctl(&[
        "diff",
        "-f",
        &seed,
        "--to-cilium-version",
        "1.20",
        "--exit-code",
    ]);
    assert_eq!(out.status.code(), Some(1), "rows change: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Cilium 1.18 -> 1.20, node 172.22.49.119's maps:\n  1.18: cilium_egress_gw_policy_v4, cilium_egress_gw_policy_v6\n  1.20: cilium_egress_gw_policy_v4, cilium_egress_gw_policy_v4_v2, cilium_egress_gw_policy_v6\n"), "{text}");
    assert!(
        text.contains(
            "was (1.18)   172.22.48.4    0.0.0.0/0          172.22.49.119   172.22.49.119   0"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "now (1.20)   172.22.48.4    0.0.0.0/0          0.0.0.0         172.22.49.119   0"
        ),
        "{text}"
    );
    assert!(
        text.contains("5 rows change: 5 changed, 0 added, 0 removed"),
        "{text}"
    );
    assert!(!text.contains("Endpoints that change gateway"), "{text}");
    assert!(
        stderr(&out).contains("warning: egress-test: spec.egressGateways[1].egressIP: on Cilium 1.20, egressIP 172.22.49.119 with destinations of both families fails both (172.22.49.119's device eth0 has no IPv6 address)"),
        "{}",
        stderr(&out)
    );
    // The same warning from list and validate on 1.20, none on 1.18.
    let list = egressctl(&["list", "-f", &seed, "--cilium-version", "1.20"]);
    assert!(stderr(&list).contains("cilium#48660"), "{}", stderr(&list));
    assert!(!stderr(&egressctl(&["list", "-f", &seed])).contains("cilium#48660"));
    let validate = egressctl(&["validate", "--cilium-version", "1.20", &seed]);
    assert!(
        stdout(&validate).contains("cilium#48660"),
        "{}",
        stdout(&validate)
    );

    let dual = example("dual-stack-excluded.yaml");
    let out = egressctl(&["diff", "-f", &dual, "--to-cilium-version", "1.19"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "now (1.19)   fd00:22:48::4   ::/0               2402:4e00:1::3   172.22.49.119   2"
        ),
        "{text}"
    );
    assert!(
        text.contains("8 rows change: 8 changed, 0 added, 0 removed"),
        "{text}"
    );
    // Nothing changes from a version to itself.
    let out = egressctl(&[
        "diff",
        "-f",
        &dual,
        "--to-cilium-version",
        "1.18",
        "--exit-code",
    ]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("No row changes."), "{}", stdout(&out));
    let out = egressctl(&["diff", "-f", &dual, "--to-cilium-version", "1.21"]);
    assert_eq!(out.status.code(), Some(2));
    let out = egressctl(&[
        "diff",
        "-f",
        &dual,
        "-f",
        &seed,
        "--to-cilium-version",
        "1.20",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
