//! Byte-exact layouts of Cilium's egress gateway BPF maps (SEMANTICS A.4).
//!
//! Addresses are network byte order; `prefixlen` and `egress_ifindex` are native-endian.
//! Encoding is done field by field (no `unsafe` transmutes): `encode` writes exactly the bytes
//! the kernel map holds and `decode` reads them back.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::netip::{mask_v4, mask_v6};

/// Name of the legacy IPv4 map (8-byte value, no ifindex).
pub const MAP_V4_LEGACY: &str = "cilium_egress_gw_policy_v4";
/// Name of the current IPv4 map.
pub const MAP_V4: &str = "cilium_egress_gw_policy_v4_v2";
/// Name of the IPv6 map.
pub const MAP_V6: &str = "cilium_egress_gw_policy_v6";
/// Name of the compact layout's IPv4 endpoint hash (endpoint IPv4 -> set id).
pub const MAP_COMPACT_ENDPOINTS_V4: &str = "egress_gw_compact_endpoints_v4";
/// Name of the compact layout's IPv6 endpoint hash.
pub const MAP_COMPACT_ENDPOINTS_V6: &str = "egress_gw_compact_endpoints_v6";
/// Name of the compact layout's IPv4 rule trie ((set id, destination) -> value).
pub const MAP_COMPACT_RULES_V4: &str = "egress_gw_compact_rules_v4";
/// Name of the compact layout's IPv6 rule trie.
pub const MAP_COMPACT_RULES_V6: &str = "egress_gw_compact_rules_v6";
/// Cilium's default `max_entries`.
pub const DEFAULT_MAX_ENTRIES: u32 = 16_384;

/// A map capacity as every binding reads it (named `path` in errors): unset is Cilium's
/// default, [`DEFAULT_MAX_ENTRIES`]; 0 is refused (a map holds at least one entry).
pub fn capacity(path: &str, value: Option<u32>) -> Result<u32, crate::field::FieldError> {
    match value {
        None => Ok(DEFAULT_MAX_ENTRIES),
        Some(0) => Err(crate::field::FieldError::new(
            path,
            crate::field::Reason::Invalid {
                value: "0".into(),
                detail: format!(
                    "a map holds at least 1 entry (leave it unset for the default, {DEFAULT_MAX_ENTRIES})"
                ),
            },
        )),
        Some(n) => Ok(n),
    }
}

/// Which maps a node programs. Each Cilium version has its own
/// ([`CiliumVersion::layout`](crate::version::CiliumVersion::layout)): 1.18 and 1.19 the
/// legacy IPv4 map, 1.20 both the legacy map and `_v4_v2`. [`Layout::Compact`] is ours (issue
/// 27): never a version's, chosen by a CNI that owns its datapath.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `cilium_egress_gw_policy_v4_v2` alone (28-byte value with ifindex): Cilium after
    /// 1.20 (main, #46053).
    V4V2,
    /// `cilium_egress_gw_policy_v4` (8-byte value): Cilium 1.18 and 1.19, the default.
    #[default]
    V4Legacy,
    /// Both, with the same keys: `cilium_egress_gw_policy_v4` (no ifindex) then
    /// `cilium_egress_gw_policy_v4_v2`, as Cilium 1.20 writes them (its datapath reads
    /// `_v4_v2` first).
    V4Dual,
    /// Ours, not Cilium's ([`crate::compact`]): per family an endpoint hash (blocks of 8
    /// addresses -> their set ids) and a rule trie ((set id, destination) -> Cilium's
    /// `_v4_v2`/IPv6 value); endpoints selected alike share a set, so a new endpoint is one
    /// write.
    Compact,
}

impl Layout {
    /// Every layout, in the order of [`Layout::NAMES`].
    pub const ALL: [Layout; 4] = [
        Layout::V4V2,
        Layout::V4Legacy,
        Layout::V4Dual,
        Layout::Compact,
    ];
    /// Cilium's layouts (every one but [`Layout::Compact`]).
    pub const CILIUM: [Layout; 3] = [Layout::V4V2, Layout::V4Legacy, Layout::V4Dual];
    /// The layouts' names, as the CLI and the bindings spell them.
    pub const NAMES: &'static [&'static str] = &["v4v2", "legacy", "dual", "compact"];

    /// `v4v2`, `legacy`, `dual` or `compact`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::V4V2 => "v4v2",
            Layout::V4Legacy => "legacy",
            Layout::V4Dual => "dual",
            Layout::Compact => "compact",
        }
    }

    /// Whether this is the compact layout (endpoints and rules, not Cilium's entries).
    pub fn is_compact(self) -> bool {
        self == Layout::Compact
    }

    /// The IPv4 map this layout's entries are read back from (what `cilium-dbg bpf egress
    /// list` shows): `_v4_v2` where it is written, else the legacy map; the compact layout's
    /// IPv4 rule trie (its entries are read back by joining endpoints and rules).
    pub fn ipv4_map(self) -> MapId {
        match self {
            Layout::V4V2 | Layout::V4Dual => MapId::V4,
            Layout::V4Legacy => MapId::V4Legacy,
            Layout::Compact => MapId::CompactRulesV4,
        }
    }

    /// The IPv6 map entries are read back from: Cilium's IPv6 map, or the compact layout's
    /// IPv6 rule trie.
    pub fn ipv6_map(self) -> MapId {
        match self {
            Layout::Compact => MapId::CompactRulesV6,
            _ => MapId::V6,
        }
    }

    /// The IPv4 map's name.
    pub fn ipv4_map_name(self) -> &'static str {
        self.ipv4_map().name()
    }

    /// The IPv4 maps written, in Cilium's reconcile order (1.20: legacy, then `_v4_v2`).
    pub fn ipv4_maps(self) -> &'static [MapId] {
        match self {
            Layout::V4V2 => &[MapId::V4],
            Layout::V4Legacy => &[MapId::V4Legacy],
            Layout::V4Dual => &[MapId::V4Legacy, MapId::V4],
            Layout::Compact => &[MapId::CompactRulesV4, MapId::CompactEndpointsV4],
        }
    }

    /// Every map a node of this layout programs, in Cilium's reconcile order: its IPv4
    /// maps, then the IPv6 map (compact: per family the rule trie, then the endpoint hash).
    pub fn maps(self) -> &'static [MapId] {
        match self {
            Layout::V4V2 => &[MapId::V4, MapId::V6],
            Layout::V4Legacy => &[MapId::V4Legacy, MapId::V6],
            Layout::V4Dual => &[MapId::V4Legacy, MapId::V4, MapId::V6],
            Layout::Compact => &[
                MapId::CompactRulesV4,
                MapId::CompactEndpointsV4,
                MapId::CompactRulesV6,
                MapId::CompactEndpointsV6,
            ],
        }
    }

    /// Whether the value read back for a source of this family stores the egress ifindex
    /// (the legacy IPv4 value does not: two entries differing only there are the same
    /// kernel bytes).
    pub fn stores_ifindex(self, ipv4: bool) -> bool {
        !ipv4 || self.ipv4_map().stores_ifindex()
    }

    /// The IPv4 map's value size.
    pub fn ipv4_value_size(self) -> usize {
        self.ipv4_map().value_size()
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = crate::field::FieldError;

    /// Reads a layout's name; anything else is a field error (`Unsupported value`) naming
    /// `layout`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| crate::field::FieldError::unsupported("layout", s, Self::NAMES))
    }
}

/// One of the egress gateway maps: Cilium's three, and the compact layout's four.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum MapId {
    /// `cilium_egress_gw_policy_v4_v2`: IPv4 sources, 28-byte value with the ifindex.
    V4 = 0,
    /// `cilium_egress_gw_policy_v4`: IPv4 sources, the legacy 8-byte value.
    V4Legacy = 1,
    /// `cilium_egress_gw_policy_v6`: IPv6 sources.
    V6 = 2,
    /// `egress_gw_compact_endpoints_v4`: hash, IPv4 block of 8 endpoints -> their set ids.
    CompactEndpointsV4 = 3,
    /// `egress_gw_compact_endpoints_v6`: hash, IPv6 block of 8 endpoints -> their set ids.
    CompactEndpointsV6 = 4,
    /// `egress_gw_compact_rules_v4`: LPM trie, (set id, IPv4 destination) -> `_v4_v2` value.
    CompactRulesV4 = 5,
    /// `egress_gw_compact_rules_v6`: LPM trie, (set id, IPv6 destination) -> IPv6 value.
    CompactRulesV6 = 6,
}

/// A map's kind: Cilium's maps and the compact rule tries are LPM tries, the compact
/// endpoint maps hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapKind {
    /// `BPF_MAP_TYPE_LPM_TRIE`.
    LpmTrie,
    /// `BPF_MAP_TYPE_HASH`.
    Hash,
}

impl MapId {
    /// Every map.
    pub const ALL: [MapId; 7] = [
        MapId::V4,
        MapId::V4Legacy,
        MapId::V6,
        MapId::CompactEndpointsV4,
        MapId::CompactEndpointsV6,
        MapId::CompactRulesV4,
        MapId::CompactRulesV6,
    ];

    /// The pinned map's name.
    pub fn name(self) -> &'static str {
        match self {
            MapId::V4 => MAP_V4,
            MapId::V4Legacy => MAP_V4_LEGACY,
            MapId::V6 => MAP_V6,
            MapId::CompactEndpointsV4 => MAP_COMPACT_ENDPOINTS_V4,
            MapId::CompactEndpointsV6 => MAP_COMPACT_ENDPOINTS_V6,
            MapId::CompactRulesV4 => MAP_COMPACT_RULES_V4,
            MapId::CompactRulesV6 => MAP_COMPACT_RULES_V6,
        }
    }

    /// Whether the map is one of the compact layout's.
    pub fn is_compact(self) -> bool {
        !matches!(self, MapId::V4 | MapId::V4Legacy | MapId::V6)
    }

    /// The map's kind.
    pub fn kind(self) -> MapKind {
        match self {
            MapId::CompactEndpointsV4 | MapId::CompactEndpointsV6 => MapKind::Hash,
            _ => MapKind::LpmTrie,
        }
    }

    /// The map named `name`, if it is one of ours.
    pub fn from_name(name: &str) -> Option<MapId> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the map holds IPv4 sources.
    pub fn is_ipv4(self) -> bool {
        matches!(
            self,
            MapId::V4 | MapId::V4Legacy | MapId::CompactEndpointsV4 | MapId::CompactRulesV4
        )
    }

    /// Key size in bytes.
    pub fn key_size(self) -> usize {
        match self {
            MapId::V4 | MapId::V4Legacy => MapKeyV4::SIZE,
            MapId::V6 => MapKeyV6::SIZE,
            MapId::CompactEndpointsV4 => 4,
            MapId::CompactEndpointsV6 => 16,
            MapId::CompactRulesV4 => RuleKeyV4::SIZE,
            MapId::CompactRulesV6 => RuleKeyV6::SIZE,
        }
    }

    /// Whether the map's value holds the egress ifindex (all but the legacy IPv4 value and
    /// the compact endpoint maps, whose value is a set id).
    pub fn stores_ifindex(self) -> bool {
        !matches!(
            self,
            MapId::V4Legacy | MapId::CompactEndpointsV4 | MapId::CompactEndpointsV6
        )
    }

    /// Value size in bytes.
    pub fn value_size(self) -> usize {
        match self {
            MapId::V4 | MapId::CompactRulesV4 => MapValueV4::SIZE,
            MapId::V4Legacy => MapValueV4Legacy::SIZE,
            MapId::V6 | MapId::CompactRulesV6 => MapValueV6::SIZE,
            MapId::CompactEndpointsV4 | MapId::CompactEndpointsV6 => 32,
        }
    }
}

impl fmt::Display for MapId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The byte slice has the wrong length.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// Bytes the layout has.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The key's prefix length is not source-exact (below the address width or past both).
    #[error("prefix length {0} out of range")]
    PrefixLen(u32),
    /// The map is one of the compact layout's: its elements are endpoints and rules
    /// ([`crate::compact::CompactElement`]), not entries.
    #[error("{0} holds the compact layout's endpoints or rules, not entries")]
    NotEntries(MapId),
    /// A compact element names set 0, which is no set.
    #[error("set id 0 is no set (sets are numbered from 1)")]
    SetZero,
    /// A compact endpoint block's key is not a block's first address.
    #[error("endpoint block key {0} is not a block's first address (its low three bits set)")]
    BlockBase(std::net::IpAddr),
    /// The map is one of Cilium's: its elements are entries, not compact elements.
    #[error("{0} holds Cilium's entries, not the compact layout's elements")]
    NotCompact(MapId),
}

pub(crate) fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

pub(crate) fn check_len(bytes: &[u8], expected: usize) -> Result<(), DecodeError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(DecodeError::Length {
            expected,
            got: bytes.len(),
        })
    }
}

/// Key of the IPv4 maps: `u32 prefixlen; be32 saddr; be32 daddr` (12 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapKeyV4 {
    /// 32 + destination prefix length.
    pub prefixlen: u32,
    /// Source address, network order.
    pub saddr: [u8; 4],
    /// Destination address as written (host bits kept), network order.
    pub daddr: [u8; 4],
}

/// Value of `cilium_egress_gw_policy_v4` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapValueV4Legacy {
    /// Egress IP.
    pub egress_ip: [u8; 4],
    /// Gateway IP.
    pub gateway_ip: [u8; 4],
}

/// Value of `cilium_egress_gw_policy_v4_v2` (28 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapValueV4 {
    /// Egress IP.
    pub egress_ip: [u8; 4],
    /// Gateway IP.
    pub gateway_ip: [u8; 4],
    /// Reserved, zero.
    pub reserved: [u32; 3],
    /// Egress interface index (native endian).
    pub egress_ifindex: u32,
    /// Reserved, zero.
    pub reserved2: u32,
}

/// Key of `cilium_egress_gw_policy_v6`: `u32 prefixlen; u8 saddr[16]; u8 daddr[16]` (36 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapKeyV6 {
    /// 128 + destination prefix length.
    pub prefixlen: u32,
    /// Source address.
    pub saddr: [u8; 16],
    /// Destination address as written.
    pub daddr: [u8; 16],
}

/// Value of `cilium_egress_gw_policy_v6` (40 bytes); the gateway is an IPv4 address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapValueV6 {
    /// Egress IP.
    pub egress_ip: [u8; 16],
    /// Gateway IP (IPv4: the tunnel underlay).
    pub gateway_ip: [u8; 4],
    /// Reserved, zero.
    pub reserved: [u32; 3],
    /// Egress interface index (native endian).
    pub egress_ifindex: u32,
    /// Reserved, zero.
    pub reserved2: u32,
}

const _: () = {
    assert!(size_of::<MapKeyV4>() == 12);
    assert!(size_of::<MapValueV4Legacy>() == 8);
    assert!(size_of::<MapValueV4>() == 28);
    assert!(size_of::<MapKeyV6>() == 36);
    assert!(size_of::<MapValueV6>() == 40);
};

impl MapKeyV4 {
    /// Encoded size.
    pub const SIZE: usize = 12;

    /// A key for `src` → `dst/len` (`len` ≤ 32).
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, len: u8) -> Self {
        Self {
            prefixlen: 32 + u32::from(len.min(32)),
            saddr: src.octets(),
            daddr: dst.octets(),
        }
    }

    /// The destination prefix length.
    pub fn dest_len(&self) -> u8 {
        self.prefixlen.saturating_sub(32).min(32) as u8
    }

    /// The kernel's identity of this key: host bits of `daddr` past the prefix ignored.
    pub fn identity(&self) -> (u32, u32, u32) {
        let d = u32::from_be_bytes(self.daddr) & mask_v4(self.dest_len());
        (self.prefixlen, u32::from_be_bytes(self.saddr), d)
    }

    /// Writes the exact map bytes.
    pub fn encode(&self, out: &mut [u8; Self::SIZE]) {
        out[0..4].copy_from_slice(&self.prefixlen.to_ne_bytes());
        out[4..8].copy_from_slice(&self.saddr);
        out[8..12].copy_from_slice(&self.daddr);
    }

    /// Reads map bytes; the prefix length must be 32–64 (source-exact).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_len(bytes, Self::SIZE)?;
        let prefixlen = u32::from_ne_bytes(take(bytes, 0));
        if !(32..=64).contains(&prefixlen) {
            return Err(DecodeError::PrefixLen(prefixlen));
        }
        Ok(Self {
            prefixlen,
            saddr: take(bytes, 4),
            daddr: take(bytes, 8),
        })
    }
}

impl MapValueV4Legacy {
    /// Encoded size.
    pub const SIZE: usize = 8;

    /// Writes the exact map bytes.
    pub fn encode(&self, out: &mut [u8; Self::SIZE]) {
        out[0..4].copy_from_slice(&self.egress_ip);
        out[4..8].copy_from_slice(&self.gateway_ip);
    }

    /// Reads map bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_len(bytes, Self::SIZE)?;
        Ok(Self {
            egress_ip: take(bytes, 0),
            gateway_ip: take(bytes, 4),
        })
    }
}

impl MapValueV4 {
    /// Encoded size.
    pub const SIZE: usize = 28;

    /// A value with zeroed reserved fields.
    pub fn new(egress_ip: Ipv4Addr, gateway_ip: Ipv4Addr, egress_ifindex: u32) -> Self {
        Self {
            egress_ip: egress_ip.octets(),
            gateway_ip: gateway_ip.octets(),
            egress_ifindex,
            ..Self::default()
        }
    }

    /// Writes the exact map bytes.
    pub fn encode(&self, out: &mut [u8; Self::SIZE]) {
        out[0..4].copy_from_slice(&self.egress_ip);
        out[4..8].copy_from_slice(&self.gateway_ip);
        for (i, r) in self.reserved.iter().enumerate() {
            out[8 + 4 * i..12 + 4 * i].copy_from_slice(&r.to_ne_bytes());
        }
        out[20..24].copy_from_slice(&self.egress_ifindex.to_ne_bytes());
        out[24..28].copy_from_slice(&self.reserved2.to_ne_bytes());
    }

    /// Reads map bytes (reserved fields kept as found).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_len(bytes, Self::SIZE)?;
        let word = |at| u32::from_ne_bytes(take(bytes, at));
        Ok(Self {
            egress_ip: take(bytes, 0),
            gateway_ip: take(bytes, 4),
            reserved: [word(8), word(12), word(16)],
            egress_ifindex: word(20),
            reserved2: word(24),
        })
    }
}

impl MapKeyV6 {
    /// Encoded size.
    pub const SIZE: usize = 36;

    /// A key for `src` → `dst/len` (`len` ≤ 128).
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, len: u8) -> Self {
        Self {
            prefixlen: 128 + u32::from(len.min(128)),
            saddr: src.octets(),
            daddr: dst.octets(),
        }
    }

    /// The destination prefix length.
    pub fn dest_len(&self) -> u8 {
        self.prefixlen.saturating_sub(128).min(128) as u8
    }

    /// The kernel's identity of this key: host bits of `daddr` past the prefix ignored.
    pub fn identity(&self) -> (u32, u128, u128) {
        let d = u128::from_be_bytes(self.daddr) & mask_v6(self.dest_len());
        (self.prefixlen, u128::from_be_bytes(self.saddr), d)
    }

    /// Writes the exact map bytes.
    pub fn encode(&self, out: &mut [u8; Self::SIZE]) {
        out[0..4].copy_from_slice(&self.prefixlen.to_ne_bytes());
        out[4..20].copy_from_slice(&self.saddr);
        out[20..36].copy_from_slice(&self.daddr);
    }

    /// Reads map bytes; the prefix length must be 128–256 (source-exact).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_len(bytes, Self::SIZE)?;
        let prefixlen = u32::from_ne_bytes(take(bytes, 0));
        if !(128..=256).contains(&prefixlen) {
            return Err(DecodeError::PrefixLen(prefixlen));
        }
        Ok(Self {
            prefixlen,
            saddr: take(bytes, 4),
            daddr: take(bytes, 20),
        })
    }
}

impl MapValueV6 {
    /// Encoded size.
    pub const SIZE: usize = 40;

    /// A value with zeroed reserved fields.
    pub fn new(egress_ip: Ipv6Addr, gateway_ip: Ipv4Addr, egress_ifindex: u32) -> Self {
        Self {
            egress_ip: egress_ip.octets(),
            gateway_ip: gateway_ip.octets(),
            egress_ifindex,
            ..Self::default()
        }
    }

    /// Writes the exact map bytes.
    pub fn encode(&self, out: &mut [u8; Self::SIZE]) {
        out[0..16].copy_from_slice(&self.egress_ip);
        out[16..20].copy_from_slice(&self.gateway_ip);
        for (i, r) in self.reserved.iter().enumerate() {
            out[20 + 4 * i..24 + 4 * i].copy_from_slice(&r.to_ne_bytes());
        }
        out[32..36].copy_from_slice(&self.egress_ifindex.to_ne_bytes());
        out[36..40].copy_from_slice(&self.reserved2.to_ne_bytes());
    }

    /// Reads map bytes (reserved fields kept as found).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_len(bytes, Self::SIZE)?;
        let word = |at| u32::from_ne_bytes(take(bytes, at));
        Ok(Self {
            egress_ip: take(bytes, 0),
            gateway_ip: take(bytes, 16),
            reserved: [word(20), word(24), word(28)],
            egress_ifindex: word(32),
            reserved2: word(36),
        })
    }
}

/// A plan refused: a map's desired state does not fit its capacity, although the stale keys
/// would go first ([`Engine::take_plan`](crate::engine::Engine::take_plan)).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{map}: the plan needs {peak} entries, more than max_entries {max_entries}, even with the stale keys deleted first; nothing was written"
)]
pub struct CapacityError {
    /// The map that would overflow.
    pub map: MapId,
    /// The entries the map would hold at the least: the desired state's.
    pub peak: usize,
    /// The map's capacity.
    pub max_entries: u32,
}

/// Key of the compact layout's rule tries: `u32 prefixlen; be32 set; u8 daddr[N]` —
/// [`RuleKeyV4`] (12 bytes) and [`RuleKeyV6`] (24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleKey<const N: usize> {
    /// 32 (the set id's bits) + the destination's prefix length.
    pub prefixlen: u32,
    /// The set id (stored big-endian, so that the trie matches its bits first).
    pub set: u32,
    /// The destination as written, network order.
    pub daddr: [u8; N],
}

/// Key of `egress_gw_compact_rules_v4`.
pub type RuleKeyV4 = RuleKey<4>;
/// Key of `egress_gw_compact_rules_v6`.
pub type RuleKeyV6 = RuleKey<16>;

impl<const N: usize> RuleKey<N> {
    /// Size in bytes.
    pub const SIZE: usize = 8 + N;

    fn with(set: u32, daddr: [u8; N], len: u8) -> Self {
        Self {
            prefixlen: 32 + u32::from(len),
            set,
            daddr,
        }
    }

    /// The key's bytes, into the first [`RuleKey::SIZE`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.prefixlen.to_ne_bytes());
        out[4..8].copy_from_slice(&self.set.to_be_bytes());
        out[8..8 + N].copy_from_slice(&self.daddr);
    }

    /// Reads a key: the prefix length must cover the set id and at most the address; set
    /// 0 is no set.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        check_len(bytes, Self::SIZE)?;
        let prefixlen = u32::from_ne_bytes(take(bytes, 0));
        if !(32..=32 + 8 * N as u32).contains(&prefixlen) {
            return Err(DecodeError::PrefixLen(prefixlen));
        }
        let set = u32::from_be_bytes(take(bytes, 4));
        if set == 0 {
            return Err(DecodeError::SetZero);
        }
        Ok(Self {
            prefixlen,
            set,
            daddr: take(bytes, 8),
        })
    }
}

impl RuleKey<4> {
    /// The key of `set`'s rule for `dst`/`len`.
    pub fn new(set: u32, dst: Ipv4Addr, len: u8) -> Self {
        Self::with(set, dst.octets(), len)
    }
}

impl RuleKey<16> {
    /// The key of `set`'s rule for `dst`/`len`.
    pub fn new(set: u32, dst: Ipv6Addr, len: u8) -> Self {
        Self::with(set, dst.octets(), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bytes() {
        let key = MapKeyV4::new("10.0.0.1".parse().unwrap(), "1.1.1.0".parse().unwrap(), 24);
        let mut kb = [0u8; 12];
        key.encode(&mut kb);
        let mut want = 56u32.to_ne_bytes().to_vec();
        want.extend([10, 0, 0, 1, 1, 1, 1, 0]);
        assert_eq!(kb.to_vec(), want);
        let value = MapValueV4::new(
            "192.168.101.1".parse().unwrap(),
            "192.168.1.1".parse().unwrap(),
            7,
        );
        let mut vb = [0u8; 28];
        value.encode(&mut vb);
        let mut want = vec![192, 168, 101, 1, 192, 168, 1, 1];
        want.extend([0u8; 12]);
        want.extend(7u32.to_ne_bytes());
        want.extend([0u8; 4]);
        assert_eq!(vb.to_vec(), want);
        let v6 = MapValueV6::new(
            "2001:db8::1".parse().unwrap(),
            "192.168.1.1".parse().unwrap(),
            3,
        );
        let mut b6 = [0u8; 40];
        v6.encode(&mut b6);
        assert_eq!(&b6[0..2], &[0x20, 0x01]);
        assert_eq!(&b6[16..20], &[192, 168, 1, 1]);
        assert_eq!(&b6[32..36], &3u32.to_ne_bytes());
        let k6 = MapKeyV6::new(
            "fd00::1".parse().unwrap(),
            "2001:db8::".parse().unwrap(),
            64,
        );
        assert_eq!(k6.prefixlen, 192);
        assert_eq!(k6.dest_len(), 64);
    }

    #[test]
    fn key_identity_ignores_host_bits() {
        let a = MapKeyV4::new("10.0.0.1".parse().unwrap(), "1.1.1.1".parse().unwrap(), 24);
        let b = MapKeyV4::new("10.0.0.1".parse().unwrap(), "1.1.1.0".parse().unwrap(), 24);
        let c = MapKeyV4::new("10.0.0.1".parse().unwrap(), "1.1.1.0".parse().unwrap(), 25);
        assert_ne!(a, b);
        assert_eq!(a.identity(), b.identity());
        assert_ne!(b.identity(), c.identity());
        let x = MapKeyV6::new(
            "fd00::1".parse().unwrap(),
            "2001:db8::5".parse().unwrap(),
            64,
        );
        let y = MapKeyV6::new(
            "fd00::1".parse().unwrap(),
            "2001:db8::".parse().unwrap(),
            64,
        );
        assert_eq!(x.identity(), y.identity());
    }

    #[test]
    fn decode_rejects_bad_input() {
        assert_eq!(
            MapKeyV4::decode(&[0; 11]),
            Err(DecodeError::Length {
                expected: 12,
                got: 11
            })
        );
        assert_eq!(MapKeyV4::decode(&[0; 12]), Err(DecodeError::PrefixLen(0)));
        let mut k = [0u8; 36];
        k[0..4].copy_from_slice(&300u32.to_ne_bytes());
        assert_eq!(MapKeyV6::decode(&k), Err(DecodeError::PrefixLen(300)));
        assert!(MapValueV6::decode(&[0; 39]).is_err());
        assert!(MapValueV4Legacy::decode(&[0; 8]).is_ok());
    }
}
