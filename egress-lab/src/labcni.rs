//! `egress-lab-datapath`, the lab's own chained CNI plugin: what Cilium's agent does for a new
//! endpoint's datapath, done for the lab's tc programs — on ADD it registers the pod's address
//! with its node's datapath and attaches `from_pod` to the pod's host interface (both taken
//! from the previous plugin's result), so that the pod's first packet already meets the
//! egress maps; on DEL it forgets the address. It is this very binary, run through a symlink
//! of that name (CNI plugins are found by file name); the network list names the node's
//! namespace and pin directory:
//!
//! `{"type": "egress-lab-datapath", "nodeNamespace": "egl-node0", "pinDir": "/run/egress-lab/bpffs/…"}`

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cluster::RUN_DIR;
use crate::datapath;

/// The plugin's file name.
pub(crate) const PLUGIN: &str = "egress-lab-datapath";

/// The directory holding the plugin (a symlink to this binary), made if missing.
pub(crate) fn install() -> Result<PathBuf, String> {
    let dir = Path::new(RUN_DIR).join("cni-bin");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let link = dir.join(PLUGIN);
    let exe = std::env::current_exe().map_err(|e| format!("the lab's own path: {e}"))?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&exe, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    Ok(dir)
}

/// Whether this process was started as the plugin.
pub(crate) fn invoked() -> bool {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            Path::new(&arg0)
                .file_name()
                .map(|name| name == std::ffi::OsStr::new(PLUGIN))
        })
        .unwrap_or(false)
}

/// Runs the plugin (CNI_COMMAND, the configuration on stdin); a CNI error on stdout when it
/// fails.
pub(crate) fn main() -> ExitCode {
    let mut config = String::new();
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let result = std::io::stdin()
        .read_to_string(&mut config)
        .map_err(|e| format!("reading the configuration: {e}"))
        .and_then(|_| run(&command, &config));
    match result {
        Ok(Some(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(msg) => {
            let version = serde_json::from_str::<Value>(&config)
                .ok()
                .and_then(|c| c["cniVersion"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "1.0.0".to_owned());
            // 999: the plugin's own failure (CNI spec: codes above 100 are the plugin's).
            println!(
                "{}",
                json!({"cniVersion": version, "code": 999, "msg": format!("{PLUGIN}: {msg}")})
            );
            ExitCode::FAILURE
        }
    }
}

/// The pod's host interface and IPv4 address in a CNI result.
fn host_side(result: &Value) -> Result<(String, Ipv4Addr), String> {
    let host = result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["sandbox"].as_str().unwrap_or("").is_empty())
        .and_then(|i| i["name"].as_str())
        .ok_or(
            "prevResult: no host interface (a plugin making a veth pair, e.g. ptp, comes first)",
        )?;
    let ip = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|cidr| cidr.split('/').next()?.parse::<Ipv4Addr>().ok())
        .next()
        .ok_or("prevResult: no IPv4 address")?;
    Ok((host.to_owned(), ip))
}

fn run(command: &str, config: &str) -> Result<Option<String>, String> {
    if command == "VERSION" {
        return Ok(Some(
            json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}).to_string(),
        ));
    }
    let config: Value =
        serde_json::from_str(config).map_err(|e| format!("the configuration: {e}"))?;
    let text = |field: &str| {
        config[field]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{field}: Required value"))
    };
    match command {
        "ADD" => {
            let (ns, dir) = (text("nodeNamespace")?, text("pinDir")?);
            let (veth, ip) = host_side(&config["prevResult"])?;
            datapath::attach_pod(ns, Path::new(dir), ip, &veth)?;
            let mut result = config["prevResult"].clone();
            result["cniVersion"] = config["cniVersion"].clone();
            Ok(Some(result.to_string()))
        }
        "DEL" => {
            // DEL never fails: the pod may be half made, or gone already.
            if let (Ok(dir), Ok((_, ip))) = (text("pinDir"), host_side(&config["prevResult"])) {
                let _ = datapath::forget_pod(Path::new(dir), ip);
            }
            Ok(None)
        }
        "CHECK" => Ok(None),
        other => Err(format!("CNI_COMMAND: Unsupported value: {other:?}")),
    }
}
