//! The cluster as network namespaces: a VPC bridge, the "internet" (the VPC router and the
//! echo server), one namespace per node with a VXLAN device in collect-metadata mode, one per
//! pod on a veth pair to its node. Built with iproute2; torn down by deleting every lab
//! namespace (their devices and tc filters go with them) and the lab's bpffs.

use std::path::Path;

use crate::cluster::{
    Cluster, ECHO, ECHO_EXCLUDED, INET_NS, LOCAL_PORTS, NS_PREFIX, POD_MTU, ROUTER, RUN_DIR, VPC,
    VPC_NS, VXLAN_PORT,
};
use crate::cmd::{in_netns, run};

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args).map(drop)
}

/// Forwarding on (the datapath's FIB lookups are forwarding lookups), reverse-path filtering
/// off, IPv6 off (no router solicitations in the captures).
fn sysctls(ns: &str, forwarding: bool) -> Result<(), String> {
    let mut settings = vec![
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ];
    let ports = format!("net.ipv4.ip_local_port_range={LOCAL_PORTS}");
    if forwarding {
        settings.push("net.ipv4.ip_forward=1");
        // A node: its own sockets keep out of the SNAT's ports.
        settings.push(&ports);
    }
    for setting in settings {
        in_netns(ns, "sysctl", &["-qw", setting])?;
    }
    Ok(())
}

/// Builds every namespace and link. Refuses when a lab namespace exists already (`down`
/// first). Pods get their namespaces only: the CNI plugins make their links.
pub(crate) fn up(cluster: &Cluster) -> Result<(), String> {
    if !lab_namespaces()?.is_empty() {
        return Err("a lab is (partly) up already: run `egress-lab down` first".to_owned());
    }
    let vpc = format!("{}/{}", ROUTER, VPC.1);
    ip(&["netns", "add", VPC_NS])?;
    ip(&["-n", VPC_NS, "link", "set", "lo", "up"])?;
    ip(&["-n", VPC_NS, "link", "add", "vpc0", "type", "bridge"])?;
    ip(&["-n", VPC_NS, "link", "set", "vpc0", "up"])?;

    ip(&["netns", "add", INET_NS])?;
    sysctls(INET_NS, true)?;
    ip(&[
        "-n", VPC_NS, "link", "add", "vinet", "type", "veth", "peer", "name", "eth0", "netns",
        INET_NS,
    ])?;
    ip(&["-n", VPC_NS, "link", "set", "vinet", "master", "vpc0", "up"])?;
    ip(&["-n", INET_NS, "link", "set", "lo", "up"])?;
    ip(&["-n", INET_NS, "addr", "add", &vpc, "dev", "eth0"])?;
    ip(&["-n", INET_NS, "link", "set", "eth0", "up"])?;
    for echo in [ECHO, ECHO_EXCLUDED] {
        ip(&[
            "-n",
            INET_NS,
            "addr",
            "add",
            &format!("{echo}/32"),
            "dev",
            "lo",
        ])?;
    }

    for node in &cluster.nodes {
        let ns = node.ns.as_str();
        ip(&["netns", "add", ns])?;
        sysctls(ns, true)?;
        ip(&[
            "-n", VPC_NS, "link", "add", &node.port, "type", "veth", "peer", "name", "eth0",
            "netns", ns,
        ])?;
        ip(&[
            "-n", VPC_NS, "link", "set", &node.port, "master", "vpc0", "up",
        ])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        let addr = format!("{}/{}", node.ipv4, VPC.1);
        ip(&["-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &ROUTER.to_string(),
        ])?;
        // Cilium's tunnel in native routing with the egress gateway: VXLAN, collect_md.
        let port = VXLAN_PORT.to_string();
        ip(&[
            "-n",
            ns,
            "link",
            "add",
            "lab_vxlan",
            "type",
            "vxlan",
            "external",
            "dstport",
            &port,
        ])?;
        let mtu = POD_MTU.to_string();
        ip(&["-n", ns, "link", "set", "lab_vxlan", "mtu", &mtu, "up"])?;
    }

    for pod in &cluster.pods {
        let ns = pod.ns.as_str();
        ip(&["netns", "add", ns])?;
        sysctls(ns, false)?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    Ok(())
}

/// The lab's namespaces that exist now.
pub(crate) fn lab_namespaces() -> Result<Vec<String>, String> {
    let list = run("ip", &["netns", "list"])?;
    Ok(list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(NS_PREFIX))
        .map(str::to_owned)
        .collect())
}

/// Removes everything a lab made, whatever state it is in: the processes in its namespaces,
/// the namespaces (with their links and tc filters), the pins and the bpffs it mounted, its
/// run directory. Safe to repeat. Returns what could not be removed.
pub(crate) fn down() -> Vec<String> {
    let mut problems = Vec::new();
    match lab_namespaces() {
        Ok(namespaces) => {
            for ns in namespaces {
                if let Ok(pids) = run("ip", &["netns", "pids", &ns]) {
                    for pid in pids.split_whitespace() {
                        let _ = run("kill", &[pid]);
                    }
                }
                if let Err(e) = ip(&["netns", "del", &ns]) {
                    problems.push(e);
                }
            }
        }
        Err(e) => problems.push(e),
    }
    let bpffs = Path::new(RUN_DIR).join("bpffs");
    if bpffs.exists() {
        // The mount goes with every pin in it.
        let _ = run("umount", &["-l", bpffs.to_str().unwrap_or_default()]);
    }
    if Path::new(RUN_DIR).exists()
        && let Err(e) = std::fs::remove_dir_all(RUN_DIR)
    {
        problems.push(format!("{RUN_DIR}: {e}"));
    }
    problems
}
