//! What the lab's datapath costs: each program's time per packet under real traffic (the
//! kernel's BPF run-time statistics, on for the measurement only), the egress decision alone
//! with `BPF_PROG_TEST_RUN` (`bpftool prog run`), and the throughput of one TCP download
//! through a gateway (tunnel + SNAT) and on the normal path (BPF masquerade).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::cluster::{Cluster, ECHO, ECHO_EXCLUDED, LabPod};
use crate::cmd::{in_netns, lab_in_netns, run};
use crate::datapath;

const STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
const PROGRAMS: [&str; 3] = ["from_pod", "from_overlay", "from_netdev"];

/// One program's cost on one node.
pub(crate) struct ProgramCost {
    pub(crate) node: String,
    pub(crate) program: &'static str,
    pub(crate) packets: u64,
    pub(crate) ns_per_packet: f64,
}

/// Everything `egress-lab bench` measured.
pub(crate) struct BenchResults {
    /// (what, bytes, seconds).
    pub(crate) downloads: Vec<(String, u64, f64)>,
    pub(crate) costs: Vec<ProgramCost>,
    /// (what, ns per run).
    pub(crate) test_runs: Vec<(String, f64)>,
}

/// The kernel's BPF statistics switched on for a measurement, and back as they were.
struct StatsOn(String);

impl StatsOn {
    fn new() -> Result<Self, String> {
        let before = std::fs::read_to_string(STATS).map_err(|e| format!("{STATS}: {e}"))?;
        std::fs::write(STATS, "1").map_err(|e| format!("{STATS}: {e}"))?;
        Ok(Self(before.trim().to_owned()))
    }
}

impl Drop for StatsOn {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS, &self.0);
    }
}

/// (run count, run time in ns) of a pinned program.
fn program_stats(program: &Path) -> Result<(u64, u64), String> {
    let path = program.to_str().ok_or("a pin path that is not UTF-8")?;
    let json = run("bpftool", &["-j", "prog", "show", "pinned", path])?;
    let v: serde_json::Value = serde_json::from_str(&json).map_err(|e| format!("{path}: {e}"))?;
    Ok((
        v["run_cnt"].as_u64().unwrap_or(0),
        v["run_time_ns"].as_u64().unwrap_or(0),
    ))
}

fn download(pod: &LabPod, dst: Ipv4Addr, bytes: u64) -> Result<f64, String> {
    let addr = SocketAddr::from((dst, 80)).to_string();
    let out = lab_in_netns(&pod.ns, &["download", &addr, &bytes.to_string()])?
        .output()
        .map_err(|e| format!("{}: {e}", pod.display))?;
    if !out.status.success() {
        return Err(format!(
            "{}: download: {}",
            pod.display,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| format!("{}: download printed no time", pod.display))
}

/// An Ethernet + IPv4 + TCP SYN from `src` to `dst`:80.
fn syn(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0u8; 14];
    p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let check = !((folded & 0xffff) + (folded >> 16)) as u16;
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    p.extend_from_slice(&ip);
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    p.extend_from_slice(&tcp);
    p
}

/// `bpftool prog run` of `from_pod` on `pod`'s node, `repeat` times, for a SYN to `dst`: ns
/// per run as the kernel timed it.
fn test_run(cluster: &Cluster, pod: &LabPod, dst: Ipv4Addr, repeat: u32) -> Result<f64, String> {
    let node = &cluster.nodes[pod.node];
    let dir = node.pin_dir(&datapath::bpffs());
    let data = Path::new(crate::cluster::RUN_DIR).join("syn.bin");
    std::fs::write(&data, syn(pod.ip, dst)).map_err(|e| format!("{}: {e}", data.display()))?;
    // A __sk_buff with only `ifindex` (offset 40) set: the pod's veth.
    let mut ctx = vec![0u8; 192];
    let index = datapath::host_ifindex(&pod.ns)?;
    ctx[40..44].copy_from_slice(&index.to_le_bytes());
    let ctx_path = Path::new(crate::cluster::RUN_DIR).join("ctx.bin");
    std::fs::write(&ctx_path, ctx).map_err(|e| format!("{}: {e}", ctx_path.display()))?;
    let program = dir.join("prog/from_pod");
    let text = in_netns(
        &node.ns,
        "bpftool",
        &[
            "prog",
            "run",
            "pinned",
            program.to_str().unwrap_or_default(),
            "data_in",
            data.to_str().unwrap_or_default(),
            "ctx_in",
            ctx_path.to_str().unwrap_or_default(),
            "repeat",
            &repeat.to_string(),
        ],
    )?;
    // `Return value: 7, duration (average): 53ns`
    text.lines()
        .find_map(|l| {
            let rest = &l[l.find("duration")?..];
            let ns = rest.split(':').nth(1)?.trim().strip_suffix("ns")?;
            ns.trim().parse::<f64>().ok()
        })
        .ok_or_else(|| format!("bpftool prog run printed no duration: {text}"))
}

/// Runs the measurements on a lab that is up, programmed with the seed's policy and its
/// excluded destination ([`ECHO_EXCLUDED`]), echo server running.
pub(crate) fn measure(cluster: &Cluster, bytes: u64) -> Result<BenchResults, String> {
    let pod = cluster.pods.first().ok_or("the seed has no pod")?;
    let mut downloads = Vec::new();
    let fs = datapath::bpffs();
    let costs = {
        let _stats = StatsOn::new()?;
        let mut before = Vec::new();
        for node in &cluster.nodes {
            for program in PROGRAMS {
                before.push(program_stats(
                    &node.pin_dir(&fs).join("prog").join(program),
                )?);
            }
        }
        for (what, dst) in [
            ("through its gateway (tunnel + SNAT)", ECHO),
            ("on the normal path (BPF masquerade)", ECHO_EXCLUDED),
        ] {
            let seconds = download(pod, dst, bytes)?;
            downloads.push((format!("{} {what}", pod.display), bytes, seconds));
        }
        let mut costs = Vec::new();
        let mut at = 0;
        for node in &cluster.nodes {
            for program in PROGRAMS {
                let (count, time) = program_stats(&node.pin_dir(&fs).join("prog").join(program))?;
                let (count0, time0) = before[at];
                at += 1;
                let packets = count.saturating_sub(count0);
                if packets > 0 {
                    costs.push(ProgramCost {
                        node: node.name.clone(),
                        program,
                        packets,
                        ns_per_packet: time.saturating_sub(time0) as f64 / packets as f64,
                    });
                }
            }
        }
        costs
    };
    let test_runs = vec![
        (
            format!(
                "from_pod: {} to {ECHO}, the egress decision (LPM lookup, tunnel key, redirect)",
                pod.ip
            ),
            test_run(cluster, pod, ECHO, 200_000)?,
        ),
        (
            format!("from_pod: {} to a VPC address (no lookup)", pod.ip),
            test_run(cluster, pod, crate::cluster::ROUTER, 200_000)?,
        ),
    ];
    Ok(BenchResults {
        downloads,
        costs,
        test_runs,
    })
}
