//! What every load reports (SEMANTICS B.7): the facts `egressctl list` prints on stderr —
//! invalid policies with all their field errors, warnings and lints, what a dump's
//! conversion skipped, and conflicts — as data, kept by the engine.

use crate::field::FieldError;
use crate::policy::PolicyErrors;
use crate::snapshot::Snapshot;

/// An invalid policy, left out of the maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPolicy {
    /// Its `metadata.name`, or `#<index>` (its place in the input) when it has none.
    pub policy: String,
    /// Every error, in document order.
    pub errors: Vec<FieldError>,
}

impl InvalidPolicy {
    /// The policy at `index` of its input with these errors.
    pub fn new(index: usize, errors: &PolicyErrors) -> Self {
        Self {
            policy: errors.name.clone().unwrap_or_else(|| format!("#{index}")),
            errors: errors.errors.clone(),
        }
    }
}

impl std::fmt::Display for InvalidPolicy {
    /// `policy <name> is invalid and is not programmed: <path>: <reason>; ...`: the line
    /// `egressctl` prints (after `warning: `), as the Cilium agent logs a policy it refuses.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "policy {} is invalid and is not programmed: ",
            self.policy
        )?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// What the loads of an engine reported (its conflicts are the engine's, live).
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    /// Invalid policies, each with every error: left out (an update keeps the previous
    /// version).
    pub invalid_policies: Vec<InvalidPolicy>,
    /// Warnings and lints of valid policies (`<policy>: <path>: <message>`), and a Cilium
    /// release the input names that is not the version computed.
    pub warnings: Vec<String>,
    /// What a Kubernetes dump's conversion skipped: objects of other kinds, endpoints
    /// without identity or networking, unparsable addresses.
    pub skipped: Vec<String>,
    /// `skipped`'s notes, to say each once without a scan per note.
    seen: std::collections::HashSet<String>,
}

impl PartialEq for Diagnostics {
    fn eq(&self, other: &Self) -> bool {
        (&self.invalid_policies, &self.warnings, &self.skipped)
            == (&other.invalid_policies, &other.warnings, &other.skipped)
    }
}

impl Eq for Diagnostics {}

impl Diagnostics {
    /// The diagnostics of a loaded snapshot, with its conversion's notes (`skipped`): those
    /// of its policies ([`Diagnostics::of_policies`]), then a warning for each Cilium release
    /// the input names that is not the version computed.
    pub fn of_snapshot(snapshot: &Snapshot, skipped: Vec<String>) -> Self {
        let mut out = Self {
            skipped,
            ..Self::of_policies(snapshot)
        };
        out.warnings.extend(Self::version_warnings(snapshot));
        out
    }

    /// A snapshot's invalid policies, each with every error, and the warnings and lints of
    /// its valid ones (`<policy>: <path>: <message>`), in file order.
    pub fn of_policies(snapshot: &Snapshot) -> Self {
        let mut out = Self::default();
        for (index, policy) in snapshot.policies.iter().enumerate() {
            match policy {
                Err(errors) => out.invalid_policies.push(InvalidPolicy::new(index, errors)),
                Ok(p) => out.warnings.extend(
                    snapshot
                        .policy_warnings(p)
                        .iter()
                        .map(|w| format!("{}: {w}", p.name)),
                ),
            }
        }
        out
    }

    /// For each Cilium release the input names (its agent DaemonSet, `cilium-config`) that
    /// is not the version computed, a warning saying so.
    fn version_warnings(snapshot: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        let computed = snapshot.cilium_version;
        for found in &snapshot.detected_versions {
            match found.version {
                Some(v) if v == computed => {}
                Some(v) => out.push(format!(
                    "{found}, but the maps are computed as Cilium {computed} (compute as {v} to reproduce that cluster)"
                )),
                None => out.push(format!(
                    "{found}, a release this library does not reproduce: computed as Cilium {computed}"
                )),
            }
        }
        out
    }

    /// Records an invalid policy of an update: it replaces what was said of the same
    /// policy before (a long-running engine's diagnostics say what is wrong now, bounded by
    /// the policies, not by the updates).
    pub(super) fn record_invalid(&mut self, policy: InvalidPolicy) {
        self.forget_invalid(&policy.policy);
        self.invalid_policies.push(policy);
    }

    /// Forgets what was said of the policy `name` (upserted valid, or deleted).
    pub(super) fn forget_invalid(&mut self, name: &str) {
        self.invalid_policies.retain(|p| p.policy != name);
    }

    /// Records what an update's conversion skipped, once per distinct note.
    pub(super) fn record_skipped(&mut self, note: &str) {
        if self.seen.len() < self.skipped.len() {
            self.seen = self.skipped.iter().cloned().collect();
        }
        if self.seen.insert(note.to_owned()) {
            self.skipped.push(note.to_owned());
        }
    }

    /// Forgets the notes `stale` says are no longer so (a slice entry's identity arrived).
    pub(super) fn forget_skipped(&mut self, stale: impl Fn(&str) -> bool) {
        if self.skipped.iter().any(|s| stale(s)) {
            self.skipped.retain(|s| !stale(s));
            self.seen = self.skipped.iter().cloned().collect();
        }
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.invalid_policies.is_empty() && self.warnings.is_empty() && self.skipped.is_empty()
    }
}
