//! Command-line definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Show what a node's Cilium egress gateway maps hold, and why.
#[derive(Debug, Parser)]
#[command(name = "egressctl", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Refuse an input file larger than this (bytes, or with K, M or G): a snapshot is read
    /// whole, and its computation may take several times its size in memory.
    #[arg(long, global = true, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    pub(crate) max_input: u64,
}

/// `123`, `64K`, `64M`, `1G` (powers of 1024), at least 1.
fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let shift = match unit {
        "" => 0,
        "K" | "k" | "KiB" => 10,
        "M" | "m" | "MiB" => 20,
        "G" | "g" | "GiB" => 30,
        _ => return Err(format!("{s:?}: want a number of bytes, with K, M or G")),
    };
    let bound = || {
        format!(
            "{s:?}: want a size from 1 byte to 2^64 - 1 ({} bytes)",
            u64::MAX
        )
    };
    let n: u64 = digits.parse().map_err(|e: std::num::ParseIntError| {
        if *e.kind() == std::num::IntErrorKind::PosOverflow {
            bound()
        } else {
            format!("{s:?}: want a number of bytes, with K, M or G")
        }
    })?;
    n.checked_shl(shift)
        .filter(|v| *v >> shift == n && *v > 0)
        .ok_or_else(bound)
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The seed's "group of egress nodes" cluster: each pod's gateway, then each gateway's map.
    Demo,
    /// Print the egress gateway maps a node programs for a snapshot.
    List(ListArgs),
    /// Per pod: the policy, the gateway node, the egress IP and the gateway's public
    /// (ExternalIP) address — the source a partner outside the cluster sees.
    Pods(PodsArgs),
    /// Validate policies (a snapshot, one policy, a List or a `---` stream) and report every error.
    Validate(ValidateArgs),
    /// Explain the verdict for one packet: the entry, the policy, the gateway and why.
    Explain(ExplainArgs),
    /// The plan that turns OLD's maps into NEW's, and the endpoints that change gateway.
    Diff(DiffArgs),
    /// Check that a cluster's Cilium configuration runs the egress gateway, each problem
    /// with the `helm --set` that fixes it.
    Doctor(DoctorArgs),
    /// Print a shell completion script (e.g. `egressctl completions bash >
    /// /etc/bash_completion.d/egressctl`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Make the pinned maps equal to the snapshot's, writing only the difference.
    #[cfg(feature = "bpf")]
    Apply(ApplyArgs),
    /// Read the live pinned maps and print them as `list` does.
    #[cfg(feature = "bpf")]
    Dump(DumpArgs),
    /// Compare the live pinned maps with the snapshot's: print the rows that differ, exit 1
    /// on drift.
    #[cfg(feature = "bpf")]
    Verify(VerifyArgs),
    /// (Needs a build with `--features bpf`.) Program the pinned maps.
    #[cfg(not(feature = "bpf"))]
    Apply(WithoutKernel),
    /// (Needs a build with `--features bpf`.) Read the live pinned maps.
    #[cfg(not(feature = "bpf"))]
    Dump(WithoutKernel),
    /// (Needs a build with `--features bpf`.) Compare the live maps with the snapshot's.
    #[cfg(not(feature = "bpf"))]
    Verify(WithoutKernel),
}

/// The arguments of a kernel command in a build without it: taken as they come, refused
/// with the way to get the command.
#[cfg(not(feature = "bpf"))]
#[derive(Debug, clap::Args)]
pub(crate) struct WithoutKernel {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub(crate) args: Vec<String>,
}

#[cfg(feature = "bpf")]
#[derive(Debug, clap::Args)]
pub(crate) struct ApplyArgs {
    /// Snapshot file or Kubernetes dump.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: PathBuf,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Directory of the pinned maps (on a BPF filesystem).
    #[arg(long, value_name = "DIR", default_value = egress_bpf::DEFAULT_PIN_DIR)]
    pub(crate) bpffs: PathBuf,
    /// Override the IPv4 maps (default: the Cilium version's: 1.18 and 1.19 `legacy`, 1.20
    /// `dual`).
    #[arg(long, value_enum)]
    pub(crate) layout: Option<LayoutArg>,
    /// Capacity of maps to create, and the one existing maps must have (default: an
    /// existing map's, else 16384).
    #[arg(long, value_name = "N", value_parser = parse_capacity)]
    pub(crate) max_entries: Option<u32>,
    /// Program the valid policies even when some are invalid (they are left out).
    #[arg(long)]
    pub(crate) skip_invalid: bool,
    /// How long to wait for another writer of the pin directory (one writer at a time: an
    /// advisory lock on the directory) before giving up, exit 3.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub(crate) wait: std::time::Duration,
}

/// A wait in seconds (fractions allowed), at most a day.
#[cfg(feature = "bpf")]
fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?}: from 0 to 86400 seconds"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// The `cilium-config` ConfigMap (`kubectl get configmap cilium-config -n kube-system -o
    /// yaml`) or Cilium's Helm values (`helm get values cilium -n kube-system -o yaml`); `-`
    /// reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// The Cilium version whose agent is checked (default: the one the input names — the
    /// ConfigMap's chart label, the values' image.tag — else 1.18).
    #[arg(long = "cilium-version", value_name = "VERSION", value_parser = parse_version)]
    pub(crate) cilium_version: Option<egress_core::version::CiliumVersion>,
    /// Make warnings errors (exit 1).
    #[arg(long)]
    pub(crate) strict: bool,
}

#[cfg(feature = "bpf")]
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Snapshot file or Kubernetes dump; repeat to add files (later objects replace earlier
    /// ones of the same kind and name); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Directory of the pinned maps.
    #[arg(long, value_name = "DIR", default_value = egress_bpf::DEFAULT_PIN_DIR)]
    pub(crate) bpffs: PathBuf,
    /// Override the IPv4 maps (default: the Cilium version's: 1.18 and 1.19 `legacy`, 1.20
    /// `dual`).
    #[arg(long, value_enum)]
    pub(crate) layout: Option<LayoutArg>,
    /// Treat invalid policies as fatal (else they are left out, as the agent does).
    #[arg(long)]
    pub(crate) strict: bool,
}

#[cfg(feature = "bpf")]
#[derive(Debug, clap::Args)]
pub(crate) struct DumpArgs {
    /// Directory of the pinned maps.
    #[arg(long, value_name = "DIR", default_value = egress_bpf::DEFAULT_PIN_DIR)]
    pub(crate) bpffs: PathBuf,
    /// Override the IPv4 maps read (default: the Cilium version's; `legacy` prints ifindex
    /// 0: the legacy value cannot store it).
    #[arg(long, value_enum)]
    pub(crate) layout: Option<LayoutArg>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) version: VersionArg,
}

/// Which node, and how it computes: shared by list, explain and diff.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// Compute the maps of this node instead of the snapshot's localNode.
    #[arg(long, value_name = "NODE")]
    pub(crate) node: Option<String>,
    /// The computed node's devices: a YAML/JSON device list (the snapshot `interfaces`
    /// shape), or `host` for this machine's (needed for Kubernetes dumps, which hold none).
    #[arg(long, value_name = "FILE|host")]
    pub(crate) interfaces: Option<String>,
    /// Gateway selection mode.
    #[arg(long, value_enum, default_value_t = Selection::Cilium)]
    pub(crate) selection: Selection,
    #[command(flatten)]
    pub(crate) version: VersionArg,
    /// The most map entries (both families) to compute: a snapshot that gives more — each
    /// selected pod address times its policies' CIDRs — is refused with its count before
    /// anything is built (each entry takes a few hundred bytes of memory).
    #[arg(long = "max-output-entries", value_name = "N",
          default_value_t = egress_core::entries::OUTPUT_BUDGET)]
    pub(crate) max_output_entries: usize,
}

impl NodeArgs {
    /// The selection mode on the Cilium version.
    pub(crate) fn rules(&self) -> egress_core::version::Rules {
        egress_core::version::Rules::new(self.selection.into(), self.version.cilium_version)
    }
}

/// The Cilium version whose behaviour is reproduced.
#[derive(Debug, clap::Args)]
pub(crate) struct VersionArg {
    /// The Cilium version whose behaviour is reproduced: its policy schema, gateway and
    /// egress IP rules, maps and `cilium-dbg bpf egress list` output (1.18 is the seed's).
    #[arg(long = "cilium-version", value_name = "VERSION", default_value = "1.18",
          value_parser = parse_version)]
    pub(crate) cilium_version: egress_core::version::CiliumVersion,
}

impl VersionArg {
    /// `--layout` when given, else the version's own maps.
    pub(crate) fn layout(&self, layout: Option<LayoutArg>) -> egress_core::maps::Layout {
        layout.map_or_else(|| self.cilium_version.layout(), Into::into)
    }
}

/// `1.18`, `1.19` or `1.20` (`v1.18.3` names 1.18).
/// A map capacity: a number, 0 refused by the core's rule (as every binding refuses it).
fn parse_capacity(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("{s:?}: want a number of entries, 1 to {}", u32::MAX))?;
    egress_core::maps::capacity("--max-entries", Some(n)).map_err(|e| e.reason.to_string())
}

fn parse_version(s: &str) -> Result<egress_core::version::CiliumVersion, String> {
    s.parse().map_err(|_| {
        format!(
            "{s:?}: want one of {}",
            egress_core::version::CiliumVersion::NAMES.join(", ")
        )
    })
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// Snapshot file or Kubernetes dump; repeat to add files (later objects replace earlier
    /// ones of the same kind and name); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Packet source: a pod IP, or NAMESPACE/POD (that pod's address of --dst's family).
    #[arg(long, value_name = "IP|NAMESPACE/POD")]
    pub(crate) src: String,
    /// Packet destination.
    #[arg(long, value_name = "IP")]
    pub(crate) dst: std::net::IpAddr,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TextOrJson::Text)]
    pub(crate) output: TextOrJson,
    /// Treat invalid policies as fatal.
    #[arg(long)]
    pub(crate) strict: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// OLD, then NEW (snapshots or Kubernetes dumps): give -f twice. With --drain or
    /// --without-node, one file: NEW is that file with the node drained or gone.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// NEW = the file with this node drained (weight 0): the blast radius of draining a
    /// gateway (consistent mode honours weights; Cilium's ignores them).
    #[arg(long, value_name = "NODE", conflicts_with = "without_node")]
    pub(crate) drain: Option<String>,
    /// NEW = the file without this node: the blast radius of losing a gateway.
    #[arg(long, value_name = "NODE", conflicts_with = "to_cilium_version")]
    pub(crate) without_node: Option<String>,
    /// NEW = the same file on this Cilium version (OLD: --cilium-version): the rows and
    /// endpoints whose maps change when the cluster upgrades, and the policies it refuses.
    #[arg(long = "to-cilium-version", value_name = "VERSION", value_parser = parse_version,
          conflicts_with = "drain")]
    pub(crate) to_cilium_version: Option<egress_core::version::CiliumVersion>,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Override the IPv4 maps of the plan (default: the Cilium version's).
    #[arg(long, value_enum)]
    pub(crate) layout: Option<LayoutArg>,
    /// Exit with status 1 when the plan is not empty (as `git diff --exit-code`): for
    /// scripts that gate a change on "nothing moves".
    #[arg(long)]
    pub(crate) exit_code: bool,
    /// Exit with status 1 on warnings too (an invalid policy in NEW, a conflict), after the
    /// output.
    #[arg(long)]
    pub(crate) strict: bool,
}

/// Output format of explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TextOrJson {
    /// Human-readable lines.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Snapshot file, or a Kubernetes dump (YAML or JSON) made by
    /// `kubectl get ciliumegressgatewaypolicies,ciliumnodes,ciliumendpoints,namespaces -A -o yaml`;
    /// repeat to add files (later objects replace earlier ones of the same kind and name: a
    /// dump plus a new policy); `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Override the IPv4 maps the node programs (default: the Cilium version's).
    #[arg(long, value_enum)]
    pub(crate) layout: Option<LayoutArg>,
    /// Capacity of each map; larger maps are still printed, with a warning.
    #[arg(long, value_name = "N", default_value_t = egress_core::maps::DEFAULT_MAX_ENTRIES,
          value_parser = parse_capacity)]
    pub(crate) max_entries: u32,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    /// Treat invalid policies as fatal (nothing is computed) and any other warning as an
    /// error (exit 1 after the output).
    #[arg(long)]
    pub(crate) strict: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PodsArgs {
    /// Snapshot file or Kubernetes dump; repeat to add files; `-` reads standard input.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) node: NodeArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Files to validate.
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) version: VersionArg,
    /// Exit with status 1 on warnings too.
    #[arg(long)]
    pub(crate) strict: bool,
}

/// Gateway selection mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Selection {
    /// Cilium-compatible: first node by name per entry, FNV-1a(uid) mod n.
    Cilium,
    /// Weighted rendezvous hashing over every ready node an entry matches (minimal movement).
    Consistent,
}

impl From<Selection> for egress_core::gateway::Selection {
    fn from(s: Selection) -> Self {
        match s {
            Selection::Cilium => Self::Cilium,
            Selection::Consistent => Self::Consistent,
        }
    }
}

/// The maps written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LayoutArg {
    /// cilium_egress_gw_policy_v4_v2 alone (with ifindex; Cilium after 1.20).
    V4v2,
    /// cilium_egress_gw_policy_v4 (Cilium 1.18, 1.19).
    Legacy,
    /// Both, as Cilium 1.20 writes them (read back from _v4_v2).
    Dual,
    /// Ours, not Cilium's: endpoint-block -> set hashes and (set, destination) rule tries.
    Compact,
}

impl From<LayoutArg> for egress_core::maps::Layout {
    fn from(l: LayoutArg) -> Self {
        match l {
            LayoutArg::V4v2 => Self::V4V2,
            LayoutArg::Legacy => Self::V4Legacy,
            LayoutArg::Dual => Self::V4Dual,
            LayoutArg::Compact => Self::Compact,
        }
    }
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// `cilium-dbg bpf egress list` table.
    Table,
    /// `{"ipv4": [...], "ipv6": [...]}`.
    Json,
    /// Exactly what `cilium-dbg bpf egress list -o json` prints, to diff against a node.
    CiliumJson,
    /// (`list`) The table with each entry's ifindex, policy, pod and gateway node.
    Wide,
}
