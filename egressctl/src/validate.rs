//! `egressctl validate`: every error of every policy, one line each, and the warnings.

use std::collections::HashMap;
use std::path::Path;

use egress_core::Error;
use egress_core::document::{self, Value};
use egress_core::policy::{self, Policy, PolicyErrors};
use egress_core::snapshot::Snapshot;
use egress_core::version::CiliumVersion;

use crate::cli::ValidateArgs;
use crate::diagnostics::policy_label;
use crate::input::read_file;
use crate::{Failure, emit};

pub(crate) fn run(args: &ValidateArgs) -> Result<(), Failure> {
    let mut failed = false;
    let mut warnings = 0;
    // Policy names are cluster-wide: the file (and place) each name was first seen in.
    let mut names = HashMap::new();
    for file in &args.files {
        let (report, ok, warned) = validate_file(file, args.version.cilium_version, &mut names);
        emit(&report);
        failed |= !ok;
        warnings += warned;
    }
    if failed {
        Err(Failure::Reported)
    } else if args.strict && warnings > 0 {
        Err(crate::diagnostics::strict_failure(warnings))
    } else {
        Ok(())
    }
}

/// The report lines of one file, whether it is free of errors, and its warning count.
/// `names` holds the policy names of the files before, and gets this file's.
fn validate_file(
    path: &Path,
    version: CiliumVersion,
    names: &mut HashMap<String, String>,
) -> (String, bool, usize) {
    let file = path.display().to_string();
    let text = match read_file(path) {
        Ok(t) => t,
        Err(Failure::Input(msg)) => return (format!("{msg}\n"), false, 0),
        Err(_) => return (String::new(), false, 0),
    };
    let parsed = document::parse_documents(&text);
    // The objects own what they read: the text is not held beside them.
    drop(text);
    let mut docs = match parsed {
        Ok(d) if d.is_empty() => {
            return (
                format!("{file}: empty: no YAML or JSON document, so no policy to validate\n"),
                false,
                0,
            );
        }
        Ok(d) => d,
        Err(e) => return (format!("{file}: {e}\n"), false, 0),
    };
    let mut report = Report {
        file,
        lines: Vec::new(),
        errors: 0,
        warnings: 0,
    };
    let is_snapshot = matches!(docs.as_slice(), [doc] if Snapshot::is_snapshot_document(doc));
    let (policies, snapshot): (Vec<Result<Policy, PolicyErrors>>, Option<Snapshot>) =
        match docs.pop() {
            // Read consuming the document (its endpoints dropped as they are read); the
            // policies kept aside to report their own errors should the snapshot be refused.
            Some(doc) if is_snapshot => {
                let policies = doc.get("policies").cloned();
                match Snapshot::from_document_owned_for(doc, version) {
                    Ok(snap) => (snap.policies.clone(), Some(snap)),
                    Err(err) => {
                        report.snapshot_errors(&err);
                        // Still report the policies' own errors.
                        let items = policies.and_then(|p| match p {
                            Value::Seq(items) => Some(items),
                            _ => None,
                        });
                        let items = document::flatten_lists(items.unwrap_or_default());
                        (
                            items
                                .iter()
                                .filter(|d| matches!(d, Value::Map(_)))
                                .map(|d| policy::parse_policy_for(d, version))
                                .collect(),
                            None,
                        )
                    }
                }
            }
            last => {
                // A Kubernetes dump also holds the cluster's other objects: not policies.
                docs.extend(last);
                let objects = document::flatten_lists(docs);
                let policies = objects.iter().filter(|o| !is_other_dump_kind(o));
                let parse = |d: &Value| policy::parse_policy_for(d, version);
                (policies.map(parse).collect(), None)
            }
        };
    for (i, p) in policies.iter().enumerate() {
        let name = match p {
            Err(errs) => {
                let label = policy_label(i, errs);
                for e in &errs.errors {
                    report.error(format!("{label}: {e}"));
                }
                errs.name.as_deref()
            }
            Ok(p) => {
                let warnings = match &snapshot {
                    Some(snap) => snap.policy_warnings(p),
                    None => {
                        let mut out = policy::policy_warnings(p, None);
                        out.extend(policy::version_warnings(p, version, None, |_| None));
                        out
                    }
                };
                for w in warnings {
                    report.warn(&p.name, &w.to_string());
                }
                Some(p.name.as_str())
            }
        };
        let Some(name) = name else { continue };
        let here = format!("{} (#{i})", report.file);
        if let Some(first) = names.get(name) {
            let first = first.clone();
            report.warn(
                name,
                &format!(
                    "metadata.name: also the name of {first}: policy names are cluster-wide, \
                     so applying both keeps only the last one applied"
                ),
            );
        } else {
            names.insert(name.to_owned(), here);
        }
    }
    if report.errors == 0 {
        let valid = policies.len();
        report.lines.push(format!(
            "{}: ok: {valid} valid {}",
            report.file,
            if valid == 1 { "policy" } else { "policies" }
        ));
    }
    let ok = report.errors == 0;
    let mut out = report.lines.join("\n");
    out.push('\n');
    (out, ok, report.warnings)
}

fn is_other_dump_kind(object: &Value) -> bool {
    matches!(
        object.get("kind").and_then(Value::as_str),
        Some("CiliumNode" | "CiliumEndpoint" | "Namespace")
    )
}

struct Report {
    file: String,
    lines: Vec<String>,
    errors: usize,
    warnings: usize,
}

impl Report {
    fn warn(&mut self, policy: &str, what: &str) {
        self.warnings += 1;
        self.lines
            .push(format!("warning: {}: {policy}: {what}", self.file));
    }

    fn error(&mut self, line: String) {
        self.errors += 1;
        self.lines.push(format!("{}: {line}", self.file));
    }

    fn snapshot_errors(&mut self, err: &Error) {
        for line in err.to_string().lines() {
            self.error(line.to_owned());
        }
    }
}
