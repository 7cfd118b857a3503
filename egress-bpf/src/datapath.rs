//! The datapath's decision, made by a real BPF program on the pinned maps.
//!
//! `bpf/egress_datapath.c` is compiled with clang when [`Datapath::load`] runs (the source is
//! embedded in this crate), its maps are replaced by the pinned ones, the local node's IPv4
//! is written into its read-only data, and its programs are run with `BPF_PROG_TEST_RUN`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use egress_core::lookup::{DropReason, Verdict};
use egress_core::maps::{Layout, MapId};

use crate::error::{Error, Result};
use crate::maps::EgressMaps;
use crate::sys;

/// The program's C source.
pub const SOURCE: &str = include_str!("../bpf/egress_datapath.c");

/// Lookups per run of the timing programs (IPv4, IPv6).
pub const BATCH: (usize, usize) = (64, 32);

const ETH_HLEN: usize = 14;
const RESULT_LEN: usize = 28;

fn program_error(what: impl std::fmt::Display) -> Error {
    Error::Program(what.to_string())
}

/// Cilium's map structs and flags, included by both BPF programs of the repository.
pub const MAPS_HEADER: &str = include_str!("../bpf/cilium_egress_maps.h");

/// Compiles a BPF C program with clang — `-O2 -g -Wall -Werror`, `-I/usr/include/<multiarch>`
/// for `asm/types.h` — writing `source` as `file_name` into `out_dir` beside
/// [`MAPS_HEADER`]; the object file's path. The one compile routine of the repository's BPF
/// programs (this crate's test datapath, the lab's).
pub fn compile_program(
    file_name: &str,
    source: &str,
    out_dir: &Path,
) -> Result<std::path::PathBuf> {
    let write = |name: &str, text: &str| {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok::<_, Error>(path)
    };
    write("cilium_egress_maps.h", MAPS_HEADER)?;
    let src = write(file_name, source)?;
    let obj = src.with_extension("o");
    let multiarch = Command::new("gcc")
        .arg("-print-multiarch")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}-linux-gnu", std::env::consts::ARCH));
    let out = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{multiarch}"))
        .arg("-I")
        .arg(out_dir)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .map_err(|e| program_error(format!("cannot run clang: {e}")))?;
    if !out.status.success() {
        return Err(program_error(format!(
            "clang failed on {file_name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(obj)
}

/// Compiles this crate's test datapath; the object's bytes.
pub fn compile(out_dir: &Path) -> Result<Vec<u8>> {
    let obj = compile_program("egress_datapath.c", SOURCE, out_dir)?;
    std::fs::read(&obj).map_err(|source| Error::Io { path: obj, source })
}

/// A map an object declares: its name, type (`BPF_MAP_TYPE_*`), key and value sizes, capacity
/// and flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDeclaration {
    /// The map's name.
    pub name: String,
    /// Its `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map_flags`.
    pub flags: u32,
}

/// The maps a compiled object declares (read by libbpf; nothing is loaded).
pub fn declared_maps(elf: &[u8]) -> Result<Vec<MapDeclaration>> {
    let object = sys::BpfObject::open(elf, "declared").map_err(program_error)?;
    Ok(object
        .map_declarations()
        .into_iter()
        .map(|d| MapDeclaration {
            name: d.name,
            map_type: d.map_type,
            key_size: d.key_size,
            value_size: d.value_size,
            max_entries: d.max_entries,
            flags: d.flags,
        })
        .collect())
}

/// The loaded program object, closed on drop.
pub struct Datapath {
    object: sys::BpfObject,
    verdict: i32,
    lookups: (i32, i32),
    baselines: (i32, i32),
}

impl Datapath {
    /// Compiles and loads the program on `maps` — of the `v4_v2` layout (Cilium's decision,
    /// one trie lookup) or the compact layout (the endpoint hash, then the rule trie) — with
    /// `local_ipv4` as the node's address. `work_dir` receives the source and object files.
    pub fn load(maps: &EgressMaps, local_ipv4: Option<Ipv4Addr>, work_dir: &Path) -> Result<Self> {
        let compact = match maps.layout() {
            Layout::V4V2 => false,
            Layout::Compact => true,
            other => {
                return Err(program_error(format!(
                    "the datapath program reads the v4v2 or the compact layout, not {other}"
                )));
            }
        };
        let elf = compile(work_dir)?;
        let object = sys::BpfObject::open(&elf, "egress_datapath").map_err(program_error)?;
        let local = local_ipv4.map_or([0u8; 4], |a| a.octets());
        let reuse = |id: MapId| {
            maps.map(id).map_or(sys::MapSetup::Keep, |m| {
                sys::MapSetup::Reuse(m.fd().as_fd())
            })
        };
        // The kernel's key and value sizes replace the program's, so the verifier checks the
        // program's accesses against the real maps; the other layout's maps are made empty.
        object
            .prepare_maps(|name| match name {
                "egress_v4" => reuse(MapId::V4),
                "egress_v6" => reuse(MapId::V6),
                "compact_endpoints_v4" => reuse(MapId::CompactEndpointsV4),
                "compact_endpoints_v6" => reuse(MapId::CompactEndpointsV6),
                "compact_rules_v4" => reuse(MapId::CompactRulesV4),
                "compact_rules_v6" => reuse(MapId::CompactRulesV6),
                n if n.ends_with(".rodata") => sys::MapSetup::Initial(&local),
                _ => sys::MapSetup::Keep,
            })
            .map_err(program_error)?;
        object.load().map_err(|errno| {
            program_error(format!("load: {errno} (the verifier refused the program)"))
        })?;
        let fd = |name: &str| object.program_fd(name).map_err(program_error);
        let (verdict, lookups) = if compact {
            (
                fd("compact_verdict")?,
                (fd("compact_lookups_v4")?, fd("compact_lookups_v6")?),
            )
        } else {
            (
                fd("egress_verdict")?,
                (fd("lookups_v4")?, fd("lookups_v6")?),
            )
        };
        Ok(Datapath {
            verdict,
            lookups,
            baselines: (fd("baseline_v4")?, fd("baseline_v6")?),
            object,
        })
    }

    /// Runs a program once per `repeat` on `packet`; returns (return value, mean ns per run,
    /// output bytes).
    fn run(&self, prog: i32, packet: &[u8], repeat: u32) -> Result<(u32, u32, Vec<u8>)> {
        // The object holds the program: it lives as long as `self`.
        let _ = &self.object;
        let mut out = vec![0u8; packet.len() + 256];
        let repeat = i32::try_from(repeat).map_err(|_| program_error("too many repeats"))?;
        let done = sys::prog_test_run(prog, packet, &mut out, repeat).map_err(program_error)?;
        out.truncate(done.written);
        Ok((done.retval, done.duration, out))
    }

    /// The kernel's verdict for a packet from `src` to `dst`.
    pub fn verdict(&self, src: IpAddr, dst: IpAddr) -> Result<Verdict> {
        let (packet, header) = packet(src, dst)?;
        let (_, _, out) = self.run(self.verdict, &packet, 1)?;
        let res = out
            .get(header..header + RESULT_LEN)
            .ok_or_else(|| program_error("short output packet"))?;
        let word = |at: usize| u32::from_ne_bytes([res[at], res[at + 1], res[at + 2], res[at + 3]]);
        let gateway = Ipv4Addr::new(res[4], res[5], res[6], res[7]);
        let egress = match src {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(res[12], res[13], res[14], res[15])),
            IpAddr::V6(_) => {
                let mut b = [0u8; 16];
                b.copy_from_slice(&res[12..28]);
                IpAddr::V6(Ipv6Addr::from(b))
            }
        };
        Ok(match word(0) {
            0 => Verdict::NoEntry,
            1 => Verdict::Drop(DropReason::NoGateway),
            2 => Verdict::Drop(DropReason::NoEgressIp),
            3 => Verdict::Excluded,
            4 => Verdict::Forward { gateway },
            5 => Verdict::Masquerade {
                egress_ip: egress,
                ifindex: word(8),
            },
            other => return Err(program_error(format!("unknown verdict {other}"))),
        })
    }

    /// Mean in-kernel time of one decision's lookups over `pairs` (one family), in ns — one
    /// trie lookup on Cilium's maps, the hash then the trie on the compact layout's: the
    /// lookup loop minus the identical loop without lookups, each run `repeat` times per
    /// batch.
    pub fn lookup_ns(&self, pairs: &[(IpAddr, IpAddr)], repeat: u32) -> Result<f64> {
        let v6 = pairs.first().is_some_and(|(s, _)| s.is_ipv6());
        let (batch, lookups, baseline) = if v6 {
            (BATCH.1, self.lookups.1, self.baselines.1)
        } else {
            (BATCH.0, self.lookups.0, self.baselines.0)
        };
        let (mut with, mut without, mut batches) = (0f64, 0f64, 0usize);
        for chunk in pairs.chunks_exact(batch) {
            let mut data = Vec::with_capacity(batch * 32);
            for (s, d) in chunk {
                for ip in [s, d] {
                    match ip {
                        IpAddr::V4(a) => data.extend(a.octets()),
                        IpAddr::V6(a) => data.extend(a.octets()),
                    }
                }
            }
            with += f64::from(self.run(lookups, &data, repeat)?.1);
            without += f64::from(self.run(baseline, &data, repeat)?.1);
            batches += 1;
        }
        if batches == 0 {
            return Err(program_error(format!("need at least {batch} pairs")));
        }
        Ok(((with - without) / batches as f64 / batch as f64).max(0.0))
    }
}

/// An Ethernet + IP packet from `src` to `dst` with room for the result after the IP header;
/// returns it and the result's offset.
fn packet(src: IpAddr, dst: IpAddr) -> Result<(Vec<u8>, usize)> {
    let mut p = vec![0u8; ETH_HLEN];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&((20 + RESULT_LEN) as u16).to_be_bytes());
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            p.extend(ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(RESULT_LEN as u16).to_be_bytes());
            ip[6] = 17;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            p.extend(ip);
        }
        _ => {
            return Err(program_error(
                "source and destination of different families",
            ));
        }
    }
    let header = p.len();
    p.extend([0u8; RESULT_LEN]);
    Ok((p, header))
}
