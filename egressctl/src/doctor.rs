//! `egressctl doctor`: whether a cluster's Cilium configuration runs the egress gateway.

use std::path::Path;

use egress_core::cilium_config::{self, CiliumConfig, Status};
use egress_core::document::{self, Value};

use crate::cli::DoctorArgs;
use crate::input::{read_input, snapshot_error};
use crate::{Failure, emit};

pub(crate) fn run(args: &DoctorArgs) -> Result<(), Failure> {
    let path = args.file.as_path();
    let text = read_input(path)?;
    let docs = document::parse_documents(&text)
        .map_err(|e| snapshot_error(path, &egress_core::Error::from(e)))?;
    let doc = pick(path, document::flatten_lists(docs))?;
    let config = CiliumConfig::from_document(&doc).map_err(|e| snapshot_error(path, &e))?;
    let detected = config.detected_version();
    let version = args
        .cilium_version
        .or(detected.and_then(|d| d.version))
        .unwrap_or_default();
    let mut version_warnings = 0;
    let mut out = match detected {
        Some(d) => format!("Checked against Cilium {version} ({d}).\n"),
        None => format!("Checked against Cilium {version} (the input names no release).\n"),
    };
    match detected {
        Some(d) if d.version.is_some_and(|v| v != version) => {
            version_warnings += 1;
            crate::note!(
                "warning: {d}, but --cilium-version is {version}: the checks are {version}'s"
            );
        }
        Some(d) if d.version.is_none() => {
            version_warnings += 1;
            crate::note!(
                "warning: {d}, a release egressctl does not reproduce: checked as Cilium {version}"
            );
        }
        _ => {}
    }
    let findings = config.check_for(version);
    for f in &findings {
        out.push_str(&format!(
            "{:<5} {}: {}\n",
            f.status.to_string(),
            f.check,
            f.detail
        ));
        for set in &f.fix {
            out.push_str(&format!("      fix: --set {set}\n"));
        }
    }
    let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
    let warned = findings.iter().filter(|f| f.status == Status::Warn).count() + version_warnings;
    if let Some(command) = cilium_config::fix_command(&findings) {
        out.push_str("\nTo fix it all, then restart the agents:\n");
        out.push_str(&command);
    }
    emit(&out);
    if failed > 0 {
        return Err(Failure::Input(format!(
            "{failed} of {} checks failed: the egress gateway does not work with this configuration",
            findings.len()
        )));
    }
    if args.strict && warned > 0 {
        return Err(crate::diagnostics::strict_failure(warned));
    }
    Ok(())
}

/// The one document to check: the only one, or the ConfigMap named `cilium-config` among
/// several (`kubectl get configmaps -n kube-system -o yaml`).
fn pick(path: &Path, docs: Vec<Value>) -> Result<Value, Failure> {
    if docs.len() == 1 {
        return Ok(docs.into_iter().next().unwrap_or(Value::Null));
    }
    let count = docs.len();
    docs.into_iter()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some("ConfigMap")
                && d.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    == Some("cilium-config")
        })
        .ok_or_else(|| {
            Failure::Input(format!(
                "{}: {count} documents and no ConfigMap named cilium-config among them: give \
                 the cilium-config ConfigMap or Cilium's Helm values",
                path.display()
            ))
        })
}
