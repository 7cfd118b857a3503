//! The Cilium version whose behaviour the engine reproduces (CILIUM-VERSIONS.md, normative
//! from contract v3): `1.18` — the seed's cluster runs v1.18.3, the default —, `1.19` or
//! `1.20`. Every rule that differs between versions asks the version here, by name, so that
//! one place says what each version does; `docs/cilium-versions.md` lists the rows with the
//! Cilium source each reproduces.

use std::fmt;
use std::str::FromStr;

use crate::maps::Layout;

mod detect;

pub use detect::{DetectedVersion, detect, detect_in_helm_values};

/// A Cilium minor version (its latest patch release as far as backports are known; `1.18`
/// is v1.18.3, the seed's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum CiliumVersion {
    /// Cilium 1.18 (v1.18.3): the seed's cluster, and the default.
    #[default]
    V1_18 = 0,
    /// Cilium 1.19.
    V1_19 = 1,
    /// Cilium 1.20.
    V1_20 = 2,
}

impl CiliumVersion {
    /// Every version, oldest first, in the order of [`CiliumVersion::NAMES`].
    pub const ALL: [CiliumVersion; 3] = [
        CiliumVersion::V1_18,
        CiliumVersion::V1_19,
        CiliumVersion::V1_20,
    ];
    /// The versions' names, as the CLI and the bindings spell them.
    pub const NAMES: &'static [&'static str] = &["1.18", "1.19", "1.20"];

    /// `1.18`, `1.19` or `1.20`.
    pub fn name(self) -> &'static str {
        match self {
            CiliumVersion::V1_18 => "1.18",
            CiliumVersion::V1_19 => "1.19",
            CiliumVersion::V1_20 => "1.20",
        }
    }

    /// The version numbered `n` in the C ABI (`EGRESS_CILIUM_1_18` = 0, ...).
    pub fn from_number(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|v| *v as u32 == n)
    }

    /// The minor version a `major.minor[.patch][-suffix]` version text names (`v1.18.3`,
    /// `1.20.0-pre.4`, `quay.io/cilium/cilium:v1.19.2@sha256:...` tags are read by
    /// [`CiliumVersion::from_image`]); `None` for another minor version.
    pub fn from_release(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches('v');
        let mut parts = text.split(['.', '-', '+']);
        let (major, minor) = (parts.next()?, parts.next()?);
        if major != "1" {
            return None;
        }
        Self::ALL
            .into_iter()
            .find(|v| v.name().strip_prefix("1.") == Some(minor))
    }

    /// The version of a Cilium agent image reference (`quay.io/cilium/cilium:v1.18.3`,
    /// `...cilium:v1.18.3@sha256:…`); `None` without a tag naming one of ours.
    pub fn from_image(image: &str) -> Option<Self> {
        let without_digest = image.split('@').next()?;
        let (name, tag) = without_digest.rsplit_once(':')?;
        // A registry port (`host:5000/cilium`) is not a tag.
        if tag.contains('/') || !name.rsplit('/').next()?.starts_with("cilium") {
            return None;
        }
        Self::from_release(tag)
    }

    /// The IPv4 map layout this version programs (§5): 1.18 and 1.19 the legacy
    /// `cilium_egress_gw_policy_v4`; 1.20 the legacy map **and** `_v4_v2`.
    pub fn layout(self) -> Layout {
        match self {
            CiliumVersion::V1_18 | CiliumVersion::V1_19 => Layout::V4Legacy,
            CiliumVersion::V1_20 => Layout::V4Dual,
        }
    }

    /// Whether the API server accepts only IPv4 `egressIP`s (the CRD's `format: ipv4`,
    /// 1.18 and 1.19), rather than the CEL rule `isIP` with `maxLength: 39` (1.20, §1).
    pub fn egress_ip_ipv4_only(self) -> bool {
        self < CiliumVersion::V1_20
    }

    /// The most `egressGateways` items the CRD accepts: none before 1.20 (§1).
    pub fn max_gateways(self) -> Option<usize> {
        (self >= CiliumVersion::V1_20).then_some(MAX_GATEWAYS)
    }

    /// Whether `egressGateways` entries that match no node are kept as gateway `0.0.0.0`
    /// (sorted first, counted in `hash mod n`: v1.18.3) rather than dropped (PR #44705:
    /// 1.20, and 1.19 from its backport in v1.19.4, commit 1744f0a6bd; 1.18 only from
    /// v1.18.10, after the seed's v1.18.3) — §3.
    pub fn keeps_unmatched_gateways(self) -> bool {
        self == CiliumVersion::V1_18
    }

    /// Whether derivation needs only the families of the destinations (`v4Needed`, 1.20)
    /// rather than IPv4 always (1.18, 1.19) — §4.
    pub fn derives_needed_families_only(self) -> bool {
        self >= CiliumVersion::V1_20
    }

    /// Whether `interface` is looked up in Cilium's device table (1.20: the device's first
    /// listed address, altnames too) rather than through netlink's `LinkByName` (1.18,
    /// 1.19: the first IPv4 of any scope, the first IPv6 that is not `fe80::/10`) — §4.
    pub fn uses_device_table(self) -> bool {
        self >= CiliumVersion::V1_20
    }

    /// Whether `interface` and default-route derivation set the egress ifindex (1.19 on;
    /// 1.18 derives none) — §4.
    pub fn derives_ifindex(self) -> bool {
        self >= CiliumVersion::V1_19
    }

    /// Whether an IPv6 `egressIP` is derived at all (1.20); 1.18 and 1.19 leave the IPv6
    /// egress IP `::` (`// TODO: add ipv6 support`) — §4.
    pub fn derives_ipv6_egress_ip(self) -> bool {
        self >= CiliumVersion::V1_20
    }

    /// Whether, with an `egressIP`, a needed other family missing on its device fails both
    /// families (1.20: cilium#48660) — §4. Before 1.20 the other family is IPv6, never
    /// derived, and nothing fails.
    pub fn egress_ip_other_family_fails(self) -> bool {
        self >= CiliumVersion::V1_20
    }

    /// Whether the maps of a source of the family store the egress ifindex (§5): IPv4 only
    /// from 1.20 (`_v4_v2`); IPv6 from 1.19 (1.18 builds its IPv6 value without one).
    pub fn stores_ifindex(self, ipv4: bool) -> bool {
        if ipv4 {
            self >= CiliumVersion::V1_20
        } else {
            self >= CiliumVersion::V1_19
        }
    }

    /// Whether `cilium-dbg bpf egress list` prints the fifth column `Egress Ifindex` and the
    /// JSON key `Ifindex` (1.20) — §6.
    pub fn lists_ifindex(self) -> bool {
        self >= CiliumVersion::V1_20
    }
}

impl fmt::Display for CiliumVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CiliumVersion {
    type Err = crate::field::FieldError;

    /// Reads `1.18`, `1.19` or `1.20` (a leading `v` and a patch number are accepted:
    /// `v1.18.3`); anything else is a field error (`Unsupported value`) naming
    /// `cilium_version`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.strip_prefix('v').unwrap_or(s);
        let mut parts = trimmed.splitn(3, '.');
        let minor = match (parts.next(), parts.next(), parts.next()) {
            (Some("1"), Some(minor), patch)
                if patch.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                minor
            }
            _ => "",
        };
        Self::ALL
            .into_iter()
            .find(|v| v.name().strip_prefix("1.") == Some(minor))
            .ok_or_else(|| crate::field::FieldError::unsupported("cilium_version", s, Self::NAMES))
    }
}

/// The most `egressGateways` items the CRD accepts (from 1.20: [`CiliumVersion::max_gateways`]).
pub const MAX_GATEWAYS: usize = 64;

/// How each endpoint's gateway is chosen (`gateway` reads it; part of a computation's
/// [`Rules`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Selection {
    /// Cilium's: first node by name per entry, `FNV-1a-32(uid) mod n` over resolved entries.
    #[default]
    Cilium,
    /// Weighted rendezvous hashing over the distinct eligible (node, entry key) pairs (B.2).
    Consistent,
}

impl Selection {
    /// Every mode, in the order of [`Selection::NAMES`].
    pub const ALL: [Selection; 2] = [Selection::Cilium, Selection::Consistent];
    /// The modes' names, as the CLI and the bindings spell them.
    pub const NAMES: &'static [&'static str] = &["cilium", "consistent"];

    /// `cilium` or `consistent`.
    pub fn name(self) -> &'static str {
        match self {
            Selection::Cilium => "cilium",
            Selection::Consistent => "consistent",
        }
    }
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Selection {
    type Err = crate::field::FieldError;

    /// Reads a mode's name; anything else is a field error (`Unsupported value`) naming
    /// `selection`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| crate::field::FieldError::unsupported("selection", s, Self::NAMES))
    }
}

/// How entries are computed: the gateway selection mode and the Cilium version whose rules
/// apply. A [`Selection`] alone means that mode on the default version (1.18).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rules {
    /// Gateway selection mode.
    pub selection: Selection,
    /// The Cilium version reproduced.
    pub version: CiliumVersion,
}

impl Rules {
    /// `selection` on `version`.
    pub fn new(selection: Selection, version: CiliumVersion) -> Self {
        Self { selection, version }
    }
}

impl From<Selection> for Rules {
    fn from(selection: Selection) -> Self {
        Self {
            selection,
            version: CiliumVersion::default(),
        }
    }
}

impl From<CiliumVersion> for Rules {
    fn from(version: CiliumVersion) -> Self {
        Self {
            selection: Selection::default(),
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_others_are_refused_naming_the_argument() {
        for v in CiliumVersion::ALL {
            assert_eq!(v.name().parse::<CiliumVersion>().ok(), Some(v));
            assert_eq!(CiliumVersion::from_number(v as u32), Some(v));
        }
        assert_eq!(
            "v1.18.3".parse::<CiliumVersion>().ok(),
            Some(CiliumVersion::V1_18)
        );
        assert_eq!(
            "1.20.1".parse::<CiliumVersion>().ok(),
            Some(CiliumVersion::V1_20)
        );
        for bad in [
            "1.17", "1.21", "2.18", "", "1.18.", "1.18.x", "118", "1.180",
        ] {
            let e = bad.parse::<CiliumVersion>().unwrap_err();
            let text = e.to_string();
            assert!(text.contains("cilium_version"), "{bad}: {text}");
            assert!(text.contains("\"1.18\""), "{bad}: {text}");
        }
        assert_eq!(CiliumVersion::from_number(3), None);
        assert_eq!(CiliumVersion::default(), CiliumVersion::V1_18);
    }

    #[test]
    fn images_and_release_texts_name_their_minor_version() {
        let cases = [
            ("quay.io/cilium/cilium:v1.18.3", Some(CiliumVersion::V1_18)),
            (
                "quay.io/cilium/cilium:v1.19.2@sha256:abcd",
                Some(CiliumVersion::V1_19),
            ),
            (
                "ccr.ccs.tencentyun.com/tkeimages/cilium:v1.20.0-pre.4",
                Some(CiliumVersion::V1_20),
            ),
            ("registry:5000/cilium/cilium", None),
            ("quay.io/cilium/operator-generic:v1.18.3", None),
            ("quay.io/cilium/cilium:v1.16.1", None),
            ("quay.io/cilium/cilium:latest", None),
        ];
        for (image, want) in cases {
            assert_eq!(CiliumVersion::from_image(image), want, "{image}");
        }
        assert_eq!(
            CiliumVersion::from_release("1.19.7"),
            Some(CiliumVersion::V1_19)
        );
        assert_eq!(CiliumVersion::from_release("v2.18.0"), None);
    }

    #[test]
    fn each_version_programs_its_own_maps() {
        assert_eq!(CiliumVersion::V1_18.layout(), Layout::V4Legacy);
        assert_eq!(CiliumVersion::V1_19.layout(), Layout::V4Legacy);
        assert_eq!(CiliumVersion::V1_20.layout(), Layout::V4Dual);
        // What each version's maps hold of the ifindex (CILIUM-VERSIONS.md, "Corrections").
        let stores: Vec<(bool, bool)> = CiliumVersion::ALL
            .iter()
            .map(|v| (v.stores_ifindex(true), v.stores_ifindex(false)))
            .collect();
        assert_eq!(stores, [(false, false), (false, true), (true, true)]);
    }
}
