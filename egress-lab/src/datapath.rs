//! The lab's tc programs (`bpf/lab_datapath.c`): compiled with clang, loaded per node on that
//! node's maps with bpftool (Cilium's maps created by egress-bpf beforehand, the lab's own
//! maps by bpftool), attached to tc ingress from inside the node's network namespace.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use egress_core::maps::Layout;

use crate::cluster::{Cluster, LabNode, NAT_PORTS, RUN_DIR, VNI, VPC, vpc_mask};
use crate::cmd::{in_netns, run};

/// The datapath's source, compiled at run time by egress-bpf's compile routine (with Cilium's
/// map structs from `egress-bpf/bpf/cilium_egress_maps.h`).
const SOURCE: &str = include_str!("../bpf/lab_datapath.c");

/// The lab's own maps: name, type, key and value sizes, entries (the datapath declares the
/// same; the loader reuses them).
const LAB_MAPS: [(&str, &str, u32, u32, u32); 5] = [
    ("lab_config", "array", 4, 28, 1),
    ("lab_endpoints", "hash", 4, 8, 256),
    ("lab_nat_fwd", "lru_hash", 16, 8, 65536),
    ("lab_nat_rev", "lru_hash", 16, 24, 65536),
    ("lab_stats", "percpu_array", 4, 8, 32),
];

/// The counters of `lab_stats`, by index (the datapath's `ST_*`).
pub(crate) const COUNTERS: [&str; 17] = [
    "pod: cluster destination, untouched",
    "pod: normal path, SNAT to the node's address",
    "pod: excluded destination (normal path)",
    "pod: dropped, no gateway",
    "pod: this node is the gateway, SNAT to the egress IP",
    "pod: dropped, gateway without an egress IP",
    "pod: encapsulated to the gateway",
    "overlay: reply delivered to a local pod",
    "overlay: request SNATed as the gateway",
    "overlay: dropped, no entry naming this node",
    "netdev: reply reverse-NATed to a local pod",
    "netdev: reply reverse-NATed and tunnelled to the pod's node",
    "NAT port allocated",
    "dropped: NAT ports exhausted",
    "dropped: cannot NAT (fragment, protocol)",
    "dropped: FIB lookup failed",
    "dropped: tunnel key",
];

/// The lab's bpffs (a private mount, removed by `down` with every pin in it).
pub(crate) fn bpffs() -> PathBuf {
    Path::new(RUN_DIR).join("bpffs")
}

/// Mounts the lab's bpffs and compiles the datapath; the object's path.
pub(crate) fn prepare() -> Result<PathBuf, String> {
    let fs = bpffs();
    std::fs::create_dir_all(&fs).map_err(|e| format!("{}: {e}", fs.display()))?;
    run("mount", &["-t", "bpf", "bpf", path(&fs)?])?;
    let object =
        egress_bpf::datapath::compile_program("lab_datapath.c", SOURCE, Path::new(RUN_DIR))
            .map_err(|e| e.to_string())?;
    Ok(object)
}

fn path(p: &Path) -> Result<&str, String> {
    p.to_str()
        .ok_or_else(|| format!("{}: not UTF-8", p.display()))
}

/// The interface index of `dev` in namespace `ns`.
pub(crate) fn ifindex(ns: &str, dev: &str) -> Result<u32, String> {
    let json = run("ip", &["-n", ns, "-j", "link", "show", "dev", dev])?;
    let value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("ip -j link show {dev}: {e}"))?;
    value[0]["ifindex"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| format!("{ns}: no ifindex for {dev}"))
}

fn hex(bytes: &[u8]) -> Vec<String> {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bpftool map update pinned PATH key hex .. value hex ..`.
fn update(map: &Path, key: &[u8], value: &[u8]) -> Result<(), String> {
    let mut args = vec!["map".to_owned(), "update".to_owned(), "pinned".to_owned()];
    args.push(path(map)?.to_owned());
    args.push("key".to_owned());
    args.push("hex".to_owned());
    args.extend(hex(key));
    args.push("value".to_owned());
    args.push("hex".to_owned());
    args.extend(hex(value));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("bpftool", &args).map(drop)
}

/// Creates the node's lab maps beside its Cilium maps (already pinned in `dir`), loads the
/// programs on all of them, writes the node's settings and attaches the node's programs: on
/// `eth0` (replies from outside) and on the tunnel (traffic from other nodes).
pub(crate) fn load_node(
    object: &Path,
    node: &LabNode,
    dir: &Path,
    layout: Layout,
) -> Result<(), String> {
    for (name, kind, key, value, entries) in LAB_MAPS {
        let pin = dir.join(name);
        run(
            "bpftool",
            &[
                "map",
                "create",
                path(&pin)?,
                "type",
                kind,
                "key",
                &key.to_string(),
                "value",
                &value.to_string(),
                "entries",
                &entries.to_string(),
                "name",
                name,
            ],
        )?;
    }
    let progs = dir.join("prog");
    let mut args: Vec<String> = ["prog", "loadall", path(object)?, path(&progs)?, "type"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.push("classifier".to_owned());
    // The layout's IPv4 maps, pinned by egress-bpf (the other layout's the loader makes
    // empty), and the lab's own.
    let maps = layout
        .ipv4_maps()
        .iter()
        .map(|m| m.name())
        .chain(LAB_MAPS.iter().map(|m| m.0));
    for map in maps {
        args.extend([
            "map".to_owned(),
            "name".to_owned(),
            map.to_owned(),
            "pinned".to_owned(),
            path(&dir.join(map))?.to_owned(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("bpftool", &args).map_err(|e| format!("loading the datapath on {}: {e}", node.name))?;

    let vxlan = ifindex(&node.ns, "lab_vxlan")?;
    let mut config = Vec::with_capacity(28);
    config.extend_from_slice(&node.ipv4.octets());
    config.extend_from_slice(&vxlan.to_le_bytes());
    config.extend_from_slice(&VPC.0.octets());
    config.extend_from_slice(&vpc_mask().octets());
    config.extend_from_slice(&NAT_PORTS.0.to_le_bytes());
    config.extend_from_slice(&NAT_PORTS.1.to_le_bytes());
    config.extend_from_slice(&VNI.to_le_bytes());
    config.extend_from_slice(&u32::from(layout.is_compact()).to_le_bytes());
    update(&dir.join("lab_config"), &0u32.to_le_bytes(), &config)?;

    attach(&node.ns, "eth0", &progs.join("from_netdev"))?;
    attach(&node.ns, "lab_vxlan", &progs.join("from_overlay"))
}

/// Every node's datapath loaded (its pods are attached one by one with [`add_pod`]).
pub(crate) fn load_nodes(cluster: &Cluster, object: &Path) -> Result<(), String> {
    let fs = bpffs();
    for node in &cluster.nodes {
        load_node(object, node, &node.pin_dir(&fs), cluster.layout)?;
    }
    Ok(())
}

/// Registers a pod with its node's datapath (namespace `ns`, pins in `dir`) and attaches
/// `from_pod` to its host interface `veth` (the lab's CNI plugin, in CNI ADD).
pub(crate) fn attach_pod(ns: &str, dir: &Path, pod_ip: Ipv4Addr, veth: &str) -> Result<(), String> {
    let index = ifindex(ns, veth)?;
    let mut value = index.to_le_bytes().to_vec();
    value.extend_from_slice(&[0; 4]);
    update(&dir.join("lab_endpoints"), &pod_ip.octets(), &value)?;
    attach(ns, veth, &dir.join("prog/from_pod"))
}

/// Forgets a pod in its node's datapath (its veth, and the program on it, go with the pod).
pub(crate) fn forget_pod(dir: &Path, pod_ip: Ipv4Addr) -> Result<(), String> {
    let map = dir.join("lab_endpoints");
    let mut args = vec!["map", "delete", "pinned", path(&map)?, "key", "hex"];
    let key = hex(&pod_ip.octets());
    args.extend(key.iter().map(String::as_str));
    run("bpftool", &args).map(drop)
}

fn attach(ns: &str, dev: &str, program: &Path) -> Result<(), String> {
    in_netns(ns, "tc", &["qdisc", "add", "dev", dev, "clsact"])?;
    in_netns(
        ns,
        "tc",
        &[
            "filter",
            "add",
            "dev",
            dev,
            "ingress",
            "prio",
            "1",
            "handle",
            "1",
            "bpf",
            "da",
            "object-pinned",
            path(program)?,
        ],
    )
    .map(drop)
}

/// The node's counters, summed over CPUs, by [`COUNTERS`] index.
pub(crate) fn counters(dir: &Path) -> Result<Vec<u64>, String> {
    let json = run(
        "bpftool",
        &["-j", "map", "dump", "pinned", path(&dir.join("lab_stats"))?],
    )?;
    let value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("lab_stats: {e}"))?;
    let mut out = vec![0u64; COUNTERS.len()];
    for element in value.as_array().into_iter().flatten() {
        let index = bytes(&element["key"])
            .and_then(|k| {
                k.get(..4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            })
            .ok_or("lab_stats: a key that is not 4 bytes")?;
        let total: u64 = element["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| bytes(&v["value"]))
            .filter_map(|b| {
                b.get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            })
            .sum();
        if let Some(slot) = out.get_mut(index as usize) {
            *slot = total;
        }
    }
    Ok(out)
}

/// `["0x01", "0x00", ...]` as bytes.
fn bytes(value: &serde_json::Value) -> Option<Vec<u8>> {
    value
        .as_array()?
        .iter()
        .map(|b| {
            let s = b.as_str()?;
            u8::from_str_radix(s.trim_start_matches("0x"), 16).ok()
        })
        .collect()
}

/// The index of the pod's host interface: the peer of its `eth0`.
pub(crate) fn host_ifindex(pod_ns: &str) -> Result<u32, String> {
    let json = run("ip", &["-n", pod_ns, "-j", "link", "show", "dev", "eth0"])?;
    let value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("ip -j link show eth0: {e}"))?;
    value[0]["link_index"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| format!("{pod_ns}: eth0 has no peer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `BPF_MAP_TYPE_*` of the names `LAB_MAPS` uses (bpftool's).
    fn map_type(name: &str) -> u32 {
        match name {
            "hash" => 1,
            "array" => 2,
            "percpu_array" => 6,
            "lru_hash" => 9,
            other => panic!("a map type LAB_MAPS does not use: {other}"),
        }
    }

    /// The program's `ST_*` counters, in order, before `ST_MAX`.
    fn counters_in_source() -> Vec<String> {
        let start = SOURCE.find("\tST_POD_CLUSTER = 0,").expect("the ST_ enum");
        SOURCE[start..]
            .lines()
            .map(str::trim)
            .take_while(|l| !l.starts_with("ST_MAX"))
            .map(|l| l.split([',', ' ', '=']).next().unwrap_or("").to_owned())
            .collect()
    }

    /// Issue 22: the lab's tables say what the C program declares — its maps (name, type,
    /// sizes, capacity), Cilium's map with the flags egress-bpf creates it with, and one
    /// counter name per `ST_*` — checked on the object compiled by the repository's one
    /// compile routine (`-Werror`).
    #[test]
    fn the_tables_match_the_program() {
        let dir = std::env::temp_dir().join(format!("egress-lab-decl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let object = egress_bpf::datapath::compile_program("lab_datapath.c", SOURCE, &dir).unwrap();
        let elf = std::fs::read(&object).unwrap();
        let declared = egress_bpf::datapath::declared_maps(&elf).unwrap();
        let find = |name: &str| {
            declared
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("{name} is not declared: {declared:?}"))
        };
        for (name, kind, key, value, entries) in LAB_MAPS {
            let m = find(name);
            assert_eq!(
                (m.map_type, m.key_size, m.value_size, m.max_entries),
                (map_type(kind), key, value, entries),
                "{name}"
            );
        }
        let cilium = find("cilium_egress_gw_policy_v4_v2");
        assert_eq!(
            (cilium.key_size, cilium.value_size, cilium.flags),
            (
                egress_core::maps::MapKeyV4::SIZE as u32,
                egress_core::maps::MapValueV4::SIZE as u32,
                egress_bpf::map_flags(egress_core::maps::Layout::V4V2)
            )
        );
        // The compact layout's IPv4 maps, as the core lays them out.
        for id in egress_core::maps::Layout::Compact.ipv4_maps() {
            let m = find(id.name());
            assert_eq!(
                (m.map_type, m.key_size as usize, m.value_size as usize),
                (egress_bpf::map_type(*id), id.key_size(), id.value_size()),
                "{}",
                id.name()
            );
        }
        let counters = counters_in_source();
        assert_eq!(counters.len(), COUNTERS.len(), "{counters:?}");
        assert!(
            counters.iter().all(|c| c.starts_with("ST_")),
            "{counters:?}"
        );
        assert!(find("lab_stats").max_entries as usize >= COUNTERS.len());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
