//! `egressctl apply` and `egressctl dump` against real kernel maps in a private bpffs.
#![cfg(feature = "bpf")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use egress_bpf::bpffs::bpffs_or_skip;

fn egressctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(args)
        .output()
        .expect("run egressctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The path of an example snapshot.
fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/snapshots")
        .join(name)
        .display()
        .to_string()
}

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .map(|p| p.display().to_string())
        .collect();
    out.sort();
    assert!(out.len() >= 7);
    out
}

/// Every example on every Cilium version: apply creates exactly that version's pins (1.18
/// and 1.19: the legacy IPv4 map and the IPv6 map; 1.20: also `_v4_v2`), dump prints what
/// list prints (table and JSON, the version's columns), verify finds them in sync, and a
/// second apply writes nothing.
#[test]
fn apply_then_dump_prints_what_list_prints() {
    let Some(fs) = bpffs_or_skip("apply_then_dump_prints_what_list_prints") else {
        return;
    };
    let versions = [
        (
            "1.18",
            &["cilium_egress_gw_policy_v4", "cilium_egress_gw_policy_v6"][..],
        ),
        (
            "1.19",
            &["cilium_egress_gw_policy_v4", "cilium_egress_gw_policy_v6"][..],
        ),
        (
            "1.20",
            &[
                "cilium_egress_gw_policy_v4",
                "cilium_egress_gw_policy_v4_v2",
                "cilium_egress_gw_policy_v6",
            ][..],
        ),
    ];
    for (i, example) in examples().iter().enumerate() {
        for (v, (version, pins)) in versions.iter().enumerate() {
            let case = format!("{example} on {version}");
            let dir = fs.path().join(format!("ex{i}-{v}"));
            let dir = dir.to_str().unwrap();
            let with_version = |args: &[&str]| {
                let mut all = args.to_vec();
                all.extend(["--cilium-version", version]);
                egressctl(&all)
            };
            let out = with_version(&["apply", "-f", example, "--bpffs", dir]);
            assert!(out.status.success(), "{case}: {}", text(&out.stderr));
            let mut pinned: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            pinned.sort();
            assert_eq!(pinned, *pins, "{case}");
            let list = with_version(&["list", "-f", example, "-o", "json"]);
            let dump = with_version(&["dump", "--bpffs", dir, "-o", "json"]);
            assert!(dump.status.success(), "{}", text(&dump.stderr));
            assert_eq!(text(&dump.stdout), text(&list.stdout), "{case}");
            let list = with_version(&["list", "-f", example]);
            let dump = with_version(&["dump", "--bpffs", dir]);
            assert_eq!(text(&dump.stdout), text(&list.stdout), "{case}: table");
            let verify = with_version(&["verify", "-f", example, "--bpffs", dir]);
            assert!(verify.status.success(), "{case}: {}", text(&verify.stdout));
            // Applied again: nothing to write.
            let again = with_version(&["apply", "-f", example, "--bpffs", dir]);
            assert!(
                text(&again.stdout).contains("wrote 0 upserts and 0 deletes"),
                "{case}: {}",
                text(&again.stdout)
            );
        }
    }
}

#[test]
fn apply_writes_only_the_difference_and_refuses_overflow() {
    let Some(fs) = bpffs_or_skip("apply_writes_only_the_difference_and_refuses_overflow") else {
        return;
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/snapshots");
    let group = examples
        .join("seed-gateway-group.yaml")
        .display()
        .to_string();
    let single = examples
        .join("seed-single-gateway.yaml")
        .display()
        .to_string();
    let dir = fs.path().join("maps").display().to_string();
    let out = egressctl(&["apply", "-f", &group, "--bpffs", &dir]);
    assert!(
        text(&out.stdout).contains("wrote 10 upserts and 0 deletes"),
        "{}",
        text(&out.stdout)
    );
    // The single-gateway cluster keeps one of those pods, on a new gateway: 1 upsert, 9 deletes.
    let out = egressctl(&["apply", "-f", &single, "--bpffs", &dir]);
    assert!(
        text(&out.stdout).contains("wrote 0 upserts and 9 deletes"),
        "{}",
        text(&out.stdout)
    );
    let dump = egressctl(&["dump", "--bpffs", &dir, "-o", "json"]);
    assert_eq!(
        text(&dump.stdout),
        text(&egressctl(&["list", "-f", &single, "-o", "json"]).stdout)
    );
    // Too small maps: refused before anything is written, exit 3.
    let small = fs.path().join("small").display().to_string();
    let out = egressctl(&[
        "apply",
        "-f",
        &group,
        "--bpffs",
        &small,
        "--max-entries",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("nothing was written"),
        "{}",
        text(&out.stderr)
    );
    // ... and left no maps behind (this run created them).
    assert!(
        text(&egressctl(&["dump", "--bpffs", &small]).stderr).contains("ENOENT"),
        "the refused apply left maps pinned"
    );
    // Existing maps of another size: a clear mismatch, exit 3.
    let single_small = egressctl(&[
        "apply",
        "-f",
        &single,
        "--bpffs",
        &small,
        "--max-entries",
        "4",
    ]);
    assert!(
        single_small.status.success(),
        "{}",
        text(&single_small.stderr)
    );
    let out = egressctl(&[
        "apply",
        "-f",
        &group,
        "--bpffs",
        &small,
        "--max-entries",
        "64",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("existing pinned map has max_entries 4, expected 64"),
        "{}",
        text(&out.stderr)
    );
    // Legacy layout: the dump cannot show ifindexes.
    let legacy = fs.path().join("legacy").display().to_string();
    let dual = examples
        .join("dual-stack-excluded.yaml")
        .display()
        .to_string();
    let apply_legacy = || {
        let out = egressctl(&[
            "apply", "-f", &dual, "--bpffs", &legacy, "--layout", "legacy",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(apply_legacy().contains("wrote 22 upserts and 0 deletes"));
    // Applied again: the dump's IPv4 ifindexes read 0, which is what the legacy value stores,
    // so nothing is rewritten.
    let again = apply_legacy();
    assert!(again.contains("wrote 0 upserts and 0 deletes"), "{again}");
    let dump = text(
        &egressctl(&[
            "dump", "--bpffs", &legacy, "--layout", "legacy", "-o", "json",
        ])
        .stdout,
    );
    let v: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert!(
        v["ipv4"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["egressIfindex"] == 0)
    );
    // Cilium 1.18 (the default) builds its IPv6 value without an ifindex.
    assert_eq!(v["ipv6"][0]["egressIfindex"], 0);
    // Not a bpffs: exit 3, nothing created there.
    let plain = std::env::temp_dir().join(format!("egressctl-plain-{}", std::process::id()));
    let out = egressctl(&["apply", "-f", &group, "--bpffs", plain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("not a BPF filesystem"),
        "{}",
        text(&out.stderr)
    );
    assert!(!plain.exists());
}

#[test]
fn invalid_policies_stop_apply_unless_skipped() {
    let Some(fs) = bpffs_or_skip("invalid_policies_stop_apply_unless_skipped") else {
        return;
    };
    let snapshot =
        std::env::temp_dir().join(format!("egressctl-invalid-{}.yaml", std::process::id()));
    std::fs::write(
        &snapshot,
        "localNode: a\nnodes: [{name: a, labels: {gw: \"yes\"}, ipv4: 10.0.0.1}]\nendpoints: [{uid: u1, labels: {app: x}, ips: [10.1.0.1]}]\npolicies:\n- metadata: {name: good}\n  spec: {selectors: [{podSelector: {}}], destinationCIDRs: [0.0.0.0/0], egressGateway: {nodeSelector: {}}}\n- metadata: {name: broken}\n  spec: {selectors: []}\n",
    )
    .unwrap();
    let dir = fs.path().join("maps").display().to_string();
    let out = egressctl(&["apply", "-f", snapshot.to_str().unwrap(), "--bpffs", &dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("broken: spec.destinationCIDRs: Required value"),
        "{}",
        text(&out.stderr)
    );
    let out = egressctl(&[
        "apply",
        "-f",
        snapshot.to_str().unwrap(),
        "--bpffs",
        &dir,
        "--skip-invalid",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("wrote 1 upserts"),
        "{}",
        text(&out.stdout)
    );
    std::fs::remove_file(snapshot).unwrap();
}

/// `verify`: in sync after `apply`; after another cluster's maps were written (the drift
/// injected), every differing row and exit 1; no maps at all: exit 3.
#[test]
fn verify_finds_injected_drift() {
    let Some(fs) = bpffs_or_skip("verify_finds_injected_drift") else {
        return;
    };
    let (group, single, dual) = (
        example("seed-gateway-group.yaml"),
        example("seed-single-gateway.yaml"),
        example("dual-stack-excluded.yaml"),
    );
    let dir = fs.path().join("maps").display().to_string();
    let verify = || egressctl(&["verify", "-f", &group, "--bpffs", &dir]);
    let apply = |file: &str| {
        let out = egressctl(&["apply", "-f", file, "--bpffs", &dir]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    apply(&group);
    let out = verify();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).starts_with("In sync: the 10 entries"),
        "{}",
        text(&out.stdout)
    );

    // Drift: the maps hold the single-gateway cluster's one entry.
    apply(&single);
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("missing ")).count(),
        9,
        "{stdout}"
    );
    assert!(
        stdout.contains("9 missing, 0 unexpected, 0 stale, 0 unreadable of 1 live entries"),
        "{stdout}"
    );

    // Drift of every kind: another cluster's 22 entries.
    apply(&dual);
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        // Cilium 1.18's legacy map holds no ifindex: the two entries that differ only there
        // are the same bytes (6 stale with `_v4_v2`).
        stdout.contains("4 missing, 16 unexpected, 4 stale, 0 unreadable of 22 live entries"),
        "{stdout}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for (i, line) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("stale "))
    {
        let source = |l: &str| l.split_whitespace().nth(2).map(str::to_owned);
        assert!(lines[i + 1].starts_with("wanted "), "{stdout}");
        assert_eq!(source(line), source(lines[i + 1]), "{stdout}");
    }

    // Applied again: in sync.
    apply(&group);
    assert!(verify().status.success());

    // No maps there: a kernel error, exit 3.
    let empty = fs.path().join("empty").display().to_string();
    std::fs::create_dir_all(&empty).unwrap();
    let out = egressctl(&["verify", "-f", &group, "--bpffs", &empty]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
}

/// Kernel states with a way out: a refused first apply leaves no maps behind; each map is
/// held to its own capacity; an entry the engine cannot read is shown by dump and verify
/// (with its key bytes) and deleted by apply.
#[test]
fn no_kernel_state_without_a_way_out() {
    let Some(fs) = bpffs_or_skip("no_kernel_state_without_a_way_out") else {
        return;
    };
    let group = example("seed-gateway-group.yaml");
    // A refused apply into a fresh directory: nothing stays pinned, a later apply works.
    let fresh = fs.path().join("fresh");
    let fresh_dir = fresh.display().to_string();
    let out = egressctl(&[
        "apply",
        "-f",
        &group,
        "--bpffs",
        &fresh_dir,
        "--max-entries",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("the maps this run created were removed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&fresh).map(|d| d.count()).unwrap_or(0), 0);
    let out = egressctl(&["apply", "-f", &group, "--bpffs", &fresh_dir]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A wrong map where the IPv6 one belongs (a legacy IPv4 map, key and value of other
    // sizes): refused, and the IPv4 map this run created is not left pinned.
    let wrong = fs.path().join("wrong");
    let wrong_dir = wrong.display().to_string();
    let out = egressctl(&[
        "apply", "-f", &group, "--bpffs", &wrong_dir, "--layout", "legacy",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::remove_file(wrong.join("cilium_egress_gw_policy_v6")).unwrap();
    std::fs::rename(
        wrong.join("cilium_egress_gw_policy_v4"),
        wrong.join("cilium_egress_gw_policy_v6"),
    )
    .unwrap();
    let out = egressctl(&["apply", "-f", &group, "--bpffs", &wrong_dir]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("cilium_egress_gw_policy_v6"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !wrong.join("cilium_egress_gw_policy_v4_v2").exists(),
        "a half-made pair of maps was left"
    );

    // Maps of different sizes: each is held to its own (14 IPv4 entries, 8 IPv6 ones: the
    // smaller size, 10, held to both, refused them).
    let dual = example("dual-stack-excluded.yaml");
    let (big, small) = (fs.path().join("big"), fs.path().join("small"));
    for (dir, size) in [(&big, "64"), (&small, "10")] {
        let out = egressctl(&[
            "apply",
            "-f",
            &group,
            "--bpffs",
            dir.to_str().unwrap(),
            "--max-entries",
            size,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    std::fs::rename(
        small.join("cilium_egress_gw_policy_v6"),
        big.join("cilium_egress_gw_policy_v6_new"),
    )
    .unwrap();
    std::fs::remove_file(big.join("cilium_egress_gw_policy_v6")).unwrap();
    std::fs::rename(
        big.join("cilium_egress_gw_policy_v6_new"),
        big.join("cilium_egress_gw_policy_v6"),
    )
    .unwrap();
    let big_dir = big.display().to_string();
    let out = egressctl(&["apply", "-f", &dual, "--bpffs", &big_dir]);
    assert!(
        out.status.success(),
        "IPv4 64, IPv6 8: {}",
        text(&out.stderr)
    );

    // A foreign entry: prefix length 16, less than the source's 32 bits.
    let maps =
        egress_bpf::EgressMaps::open(&big, egress_core::maps::Layout::V4Legacy, false).unwrap();
    let mut key = vec![0u8; 12];
    key[..4].copy_from_slice(&16u32.to_le_bytes());
    key[4..8].copy_from_slice(&[10, 9, 9, 9]);
    maps.ipv4().write_raw(&key, &[0u8; 8]).unwrap();
    let key_hex = egress_bpf::hex(&key);
    let dump = egressctl(&["dump", "--bpffs", &big_dir, "-o", "json"]);
    assert!(dump.status.success(), "{}", text(&dump.stderr));
    assert!(
        text(&dump.stderr).contains(&format!("key {key_hex}")),
        "{}",
        text(&dump.stderr)
    );
    let verify = egressctl(&["verify", "-f", &dual, "--bpffs", &big_dir]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        text(&verify.stdout).contains(&format!(
            "unreadable   cilium_egress_gw_policy_v4   key {key_hex}"
        )),
        "{}",
        text(&verify.stdout)
    );
    assert!(
        text(&verify.stdout).contains("0 missing, 0 unexpected, 0 stale, 1 unreadable"),
        "{}",
        text(&verify.stdout)
    );
    let out = egressctl(&["apply", "-f", &dual, "--bpffs", &big_dir]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!(
            "deleted an entry of cilium_egress_gw_policy_v4 the engine cannot read: key {key_hex}"
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(
        egressctl(&["verify", "-f", &dual, "--bpffs", &big_dir])
            .status
            .success()
    );
}

/// `egressctl` run through `setpriv` with `how` (util-linux, on every Debian system).
fn unprivileged(how: &[&str], args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(how)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_egressctl"))
        .args(args)
        .output()
        .expect("run setpriv (util-linux) to drop privileges")
}

/// Without privileges nothing changes and the same command, privileged, then succeeds: with
/// no capabilities the maps cannot be created (exit 3 naming the map and EPERM, nothing
/// pinned); as another user neither the directory nor the pinned maps can be opened (exit
/// 3, `Permission denied` — not a misleading "not a BPF filesystem"), the maps unchanged.
#[test]
fn without_privileges_nothing_changes_and_a_retry_succeeds() {
    let Some(fs) = bpffs_or_skip("without_privileges_nothing_changes_and_a_retry_succeeds") else {
        return;
    };
    let no_caps: &[&str] = &["--bounding-set=-all", "--inh-caps=-all"];
    let nobody: &[&str] = &["--reuid=65534", "--regid=65534", "--clear-groups"];
    // Inputs any user can read.
    let tmp = std::env::temp_dir().join(format!("egress-unpriv-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let readable = |name: &str| {
        let path = tmp.join(name);
        std::fs::copy(example(name), &path).unwrap();
        let path = path.display().to_string();
        Command::new("chmod")
            .args(["a+rx", tmp.to_str().unwrap()])
            .status()
            .unwrap();
        Command::new("chmod").args(["a+r", &path]).status().unwrap();
        path
    };
    let group = readable("seed-gateway-group.yaml");
    let single = readable("seed-single-gateway.yaml");
    let dir = fs.path().join("p");
    let dir = dir.to_str().unwrap();

    let out = unprivileged(no_caps, &["apply", "-f", &group, "--bpffs", dir]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("create map") && stderr.contains("EPERM"),
        "{stderr}"
    );
    let pinned: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(pinned.is_empty(), "left pinned: {pinned:?}");

    let out = egressctl(&["apply", "-f", &group, "--bpffs", dir]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = text(&egressctl(&["list", "-f", &group, "-o", "json"]).stdout);
    let dump = || text(&egressctl(&["dump", "--bpffs", dir, "-o", "json"]).stdout);
    assert_eq!(dump(), expected);

    for args in [
        &["apply", "-f", &single, "--bpffs", dir][..],
        &["dump", "--bpffs", dir][..],
    ] {
        let out = unprivileged(nobody, args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(stderr.contains("Permission denied"), "{args:?}: {stderr}");
        assert!(!stderr.contains("not a BPF filesystem"), "{stderr}");
    }
    assert_eq!(dump(), expected, "an unprivileged apply changed the maps");
    // A bpffs mounted under a directory another user may not search: `Permission denied`
    // too (the nearest directory it could see was a tmpfs: "not a BPF filesystem" before).
    let locked = tmp.join("locked");
    let mount_point = locked.join("fs");
    std::fs::create_dir_all(&mount_point).unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    assert!(
        Command::new("mount")
            .args(["-t", "bpf", "bpf", mount_point.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let unmount = Unmount(mount_point.clone());
    let locked_dir = mount_point.join("g").display().to_string();
    assert!(
        egressctl(&["apply", "-f", &group, "--bpffs", &locked_dir])
            .status
            .success()
    );
    Command::new("chmod")
        .args(["700", locked.to_str().unwrap()])
        .status()
        .unwrap();
    let out = unprivileged(nobody, &["apply", "-f", &single, "--bpffs", &locked_dir]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Permission denied"), "{stderr}");
    drop(unmount);

    let out = egressctl(&["apply", "-f", &single, "--bpffs", dir]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        dump(),
        text(&egressctl(&["list", "-f", &single, "-o", "json"]).stdout)
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Cilium 1.20's two IPv4 maps are verified each on its own: a key missing from the legacy
/// map only is one `missing` row of that map (nothing in `_v4_v2`), and apply writes it back.
#[test]
fn verify_checks_each_of_1_20s_ipv4_maps() {
    let Some(fs) = bpffs_or_skip("verify_checks_each_of_1_20s_ipv4_maps") else {
        return;
    };
    let group = example("seed-gateway-group.yaml");
    let dir = fs.path().join("v120");
    let dir = dir.to_str().unwrap();
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--cilium-version", "1.20"]);
        egressctl(&all)
    };
    assert!(
        with(&["apply", "-f", &group, "--bpffs", dir])
            .status
            .success()
    );
    assert!(
        with(&["verify", "-f", &group, "--bpffs", dir])
            .status
            .success()
    );
    let legacy =
        egress_bpf::EgressMaps::open(Path::new(dir), egress_core::maps::Layout::V4Legacy, false)
            .unwrap();
    let (held, _) = legacy.ipv4().entries_lenient().unwrap();
    let first = held.ipv4[0];
    let (key, _) = first.to_map_v4().unwrap();
    let mut bytes = [0u8; egress_core::maps::MapKeyV4::SIZE];
    key.encode(&mut bytes);
    legacy.ipv4().delete_raw(&bytes).unwrap();
    let out = with(&["verify", "-f", &group, "--bpffs", dir]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let drift: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("Drift") && !l.is_empty())
        .collect();
    assert!(
        drift[0].starts_with("missing   cilium_egress_gw_policy_v4 ")
            && drift[0].contains(&first.source.to_string()),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 missing, 0 unexpected, 0 stale, 0 unreadable of 19 live entries"),
        "{stdout}"
    );
    let out = with(&["apply", "-f", &group, "--bpffs", dir]);
    assert!(
        text(&out.stdout).contains("wrote 2 upserts and 0 deletes"),
        "the entry again, in both IPv4 maps: {}",
        text(&out.stdout)
    );
    assert!(
        with(&["verify", "-f", &group, "--bpffs", dir])
            .status
            .success()
    );
}

/// Snapshot files written for one test, removed with it.
struct Files(std::path::PathBuf);

impl Files {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("egressctl-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `text` to the file `name`; its path.
    fn write(&self, name: &str, text: String) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A snapshot of `n` pods (10.<base>.x.y), all selected by one policy to 0.0.0.0/0 through
/// the remote gateway n1: `n` IPv4 entries on node n0, none shared with another base.
fn pods_snapshot(base: u8, n: usize) -> String {
    let endpoints: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "uid": format!("00000000-0000-4000-8{base:03}-{i:012}"),
                "namespace": "default",
                "name": format!("p{base}-{i}"),
                "labels": {"app": "a"},
                "namespaceLabels": {"kubernetes.io/metadata.name": "default"},
                "ips": [format!("10.{base}.{}.{}", i / 256, i % 256)],
                "node": "n0",
            })
        })
        .collect();
    serde_json::json!({
        "localNode": "n0",
        "nodes": [
            {"name": "n0", "labels": {}, "ipv4": "10.255.0.1"},
            {"name": "n1", "labels": {"egress": "true"}, "ipv4": "10.255.0.2"},
        ],
        "endpoints": endpoints,
        "policies": [{
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumEgressGatewayPolicy",
            "metadata": {"name": "all"},
            "spec": {
                "selectors": [{"podSelector": {"matchLabels": {"app": "a"}}}],
                "destinationCIDRs": ["0.0.0.0/0"],
                "egressGateway": {"nodeSelector": {"matchLabels": {"egress": "true"}}},
            },
        }],
    })
    .to_string()
}

/// Issue 21: a map at 999 of 1,000 whose every key is replaced, and a full map (999 entries
/// plus one another writer put there) replaced by 1,000 new keys: upserts first would need
/// 1,998 and 2,000 entries, the end states fit. Apply deletes the stale keys first (saying
/// so on stderr) instead of refusing on every run; verify then finds the maps in sync.
#[test]
fn a_full_map_is_replaced_by_deleting_the_stale_keys_first() {
    let Some(fs) = bpffs_or_skip("a_full_map_is_replaced_by_deleting_the_stale_keys_first") else {
        return;
    };
    let files = Files::new("full");
    let file = |name: &str, text: String| files.write(name, text);
    let a = file("a.json", pods_snapshot(1, 999));
    let b = file("b.json", pods_snapshot(2, 999));
    let c = file("c.json", pods_snapshot(3, 1000));
    let dir = fs.path().join("full").display().to_string();
    let apply = |snapshot: &str| {
        egressctl(&[
            "apply",
            "-f",
            snapshot,
            "--bpffs",
            &dir,
            "--max-entries",
            "1000",
        ])
    };
    let verify = |snapshot: &str| {
        let out = egressctl(&["verify", "-f", snapshot, "--bpffs", &dir]);
        assert!(out.status.success(), "{}", text(&out.stdout));
    };
    let out = apply(&a);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("wrote 999 upserts and 0 deletes ("));
    // 999 of 1,000, every key replaced.
    let out = apply(&b);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("wrote 999 upserts and 999 deletes, the deletes first"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("wrote the 999 deletes of stale entries before the 999 upserts"),
        "{}",
        text(&out.stderr)
    );
    verify(&b);
    // One entry another writer put there: the map is full; a target of 1,000 new keys.
    let maps =
        egress_bpf::EgressMaps::open(Path::new(&dir), egress_core::maps::Layout::V4Legacy, false)
            .unwrap();
    let foreign = egress_core::entries::Entry {
        source: "192.0.2.7".parse().unwrap(),
        destination: egress_core::netip::parse_prefix("203.0.113.0/24").unwrap(),
        egress_ip: "0.0.0.0".parse().unwrap(),
        gateway_ip: "10.255.0.9".parse().unwrap(),
        egress_ifindex: 0,
    };
    let (k, v) = foreign.to_map_v4_legacy().unwrap();
    let (mut key, mut value) = ([0u8; 12], [0u8; 8]);
    k.encode(&mut key);
    v.encode(&mut value);
    maps.ipv4().write_raw(&key, &value).unwrap();
    drop(maps);
    let out = apply(&c);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("wrote 1000 upserts and 1000 deletes, the deletes first"),
        "{}",
        text(&out.stdout)
    );
    verify(&c);
    // A desired state past the capacity is still refused, nothing written.
    let d = file("d.json", pods_snapshot(4, 1001));
    let out = apply(&d);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the plan needs 1001 entries, more than max_entries 1000"),
        "{}",
        text(&out.stderr)
    );
    verify(&c);
    // Half the map another writer's entries the engine cannot read (a prefix shorter than
    // the source): upserting 500 new keys first would meet a full map in the kernel (ENOSPC,
    // on every run); they go first.
    let half = fs.path().join("half").display().to_string();
    let e = file("e.json", pods_snapshot(5, 500));
    let f = file("f.json", pods_snapshot(6, 500));
    let out = egressctl(&["apply", "-f", &e, "--bpffs", &half, "--max-entries", "1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let maps =
        egress_bpf::EgressMaps::open(Path::new(&half), egress_core::maps::Layout::V4Legacy, false)
            .unwrap();
    for i in 0..500u32 {
        let mut key = vec![0u8; 12];
        key[..4].copy_from_slice(&16u32.to_le_bytes());
        key[4..8].copy_from_slice(&(0x0a09_0000 + i * 65536).to_be_bytes());
        maps.ipv4().write_raw(&key, &[0u8; 8]).unwrap();
    }
    drop(maps);
    let out = egressctl(&["apply", "-f", &f, "--bpffs", &half, "--max-entries", "1000"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr)
            .matches("the engine cannot read: key")
            .count(),
        500,
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains(
            "the 500 entries the engine cannot read were deleted before the plan: they took \
             the room it needed"
        ),
        "{}",
        text(&out.stderr)
    );
    let out = egressctl(&["verify", "-f", &f, "--bpffs", &half]);
    assert!(out.status.success(), "{}", text(&out.stdout));
}

/// Issue 21: two applies of different snapshots started together on the same pins, many
/// times: both succeed (the second waits for the first), and the maps are always exactly
/// one snapshot's — never both mixed. A writer that cannot get the directory within its
/// wait gives up with exit 3, naming the directory, and writes nothing.
#[test]
fn racing_applies_take_turns() {
    let Some(fs) = bpffs_or_skip("racing_applies_take_turns") else {
        return;
    };
    let files = Files::new("race");
    let file = |name: &str, text: String| files.write(name, text);
    let a = file("a.json", pods_snapshot(1, 5_000));
    let b = file("b.json", pods_snapshot(2, 5_000));
    let dir = fs.path().join("race").display().to_string();
    let spawn = |snapshot: &str| {
        Command::new(env!("CARGO_BIN_EXE_egressctl"))
            .args([
                "apply",
                "-f",
                snapshot,
                "--bpffs",
                &dir,
                "--max-entries",
                "65536",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let in_sync = |snapshot: &str| {
        egressctl(&["verify", "-f", snapshot, "--bpffs", &dir])
            .status
            .success()
    };
    let mut ends = [0, 0];
    for round in 0..6 {
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let (p, q) = (spawn(first), spawn(second));
        for out in [p.wait_with_output().unwrap(), q.wait_with_output().unwrap()] {
            assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        }
        match (in_sync(&a), in_sync(&b)) {
            (true, false) => ends[0] += 1,
            (false, true) => ends[1] += 1,
            other => panic!("round {round}: the maps are A's, B's: {other:?}"),
        }
    }
    assert_eq!(ends[0] + ends[1], 6);
    // Another writer holds the directory: a bounded wait, then exit 3, nothing written.
    let maps =
        egress_bpf::EgressMaps::open(Path::new(&dir), egress_core::maps::Layout::V4Legacy, false)
            .unwrap();
    let held = maps.lock_writer().unwrap();
    let before = in_sync(&a);
    let out = egressctl(&[
        "apply",
        "-f",
        &b,
        "--bpffs",
        &dir,
        "--max-entries",
        "65536",
        "--wait",
        "0.3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("another writer holds {dir} (waited 0.")),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(in_sync(&a), before);
    drop(held);
    let out = egressctl(&[
        "apply",
        "-f",
        &b,
        "--bpffs",
        &dir,
        "--max-entries",
        "65536",
        "--wait",
        "0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(in_sync(&b));
}

/// Issue 21: kernel conditions named as what they are — a directory at a pin's path
/// (EISDIR, not the kernel's EACCES), a read-only bpffs (EROFS, not "errno (30)"), a map of
/// another type pinned under the name (its type by name).
#[test]
fn kernel_conditions_are_named() {
    let Some(fs) = bpffs_or_skip("kernel_conditions_are_named") else {
        return;
    };
    let group = example("seed-gateway-group.yaml");
    // A directory where a map's pin goes.
    let dir = fs.path().join("dirs");
    std::fs::create_dir_all(dir.join("cilium_egress_gw_policy_v4")).unwrap();
    let out = egressctl(&["apply", "-f", &group, "--bpffs", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("cilium_egress_gw_policy_v4: EISDIR (21)"),
        "{}",
        text(&out.stderr)
    );
    // A read-only bpffs.
    let ro = std::env::temp_dir().join(format!("egressctl-ro-{}", std::process::id()));
    std::fs::create_dir_all(&ro).unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    assert!(
        Command::new("mount")
            .args(["-t", "bpf", "-o", "ro", "bpf", ro.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let _unmount = Unmount(ro.clone());
    let out = egressctl(&["apply", "-f", &group, "--bpffs", ro.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("EROFS (30)"),
        "{}",
        text(&out.stderr)
    );
    // A hash map pinned under the IPv4 map's name.
    let other = fs.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let made = Command::new("bpftool")
        .args(["map", "create"])
        .arg(other.join("cilium_egress_gw_policy_v4"))
        .args([
            "type", "hash", "key", "12", "value", "8", "entries", "16", "name", "x",
        ])
        .status();
    match made {
        Ok(status) if status.success() => {
            let out = egressctl(&["apply", "-f", &group, "--bpffs", other.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(3));
            assert!(
                text(&out.stderr)
                    .contains("existing pinned map has type hash (1), expected lpm_trie (11)"),
                "{}",
                text(&out.stderr)
            );
        }
        _ if std::env::var_os("EGRESS_REQUIRE_BPF").is_some() => {
            panic!("bpftool could not create a hash map (EGRESS_REQUIRE_BPF=1)")
        }
        _ => {
            eprintln!("kernel_conditions_are_named: skipped the map type case: no bpftool");
            egress_bpf::bpffs::record_skip(
                "kernel_conditions_are_named (the map type case)",
                "no bpftool",
            );
        }
    }
}
