//! The C-visible types and their conversions. Enum values arrive from C as `uint32_t` and are
//! converted fallibly: an out-of-range value is `EGRESS_RESULT_INVALID_ENUM`, never UB.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_core::compact::CompactElement;
use egress_core::engine::{Action, PlanOp};
use egress_core::entries::Entry;
use egress_core::gateway::Selection;
use egress_core::lookup::{Verdict, VerdictKind, VerdictRecord};
use egress_core::maps::{Layout, MapId, MapKeyV6, MapValueV6};
use egress_core::version::CiliumVersion;

use crate::error::Failure;

/// Gateway selection mode (`uint32_t` in structs and arguments).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum egress_selection {
    /// Cilium's: first node by name per entry, FNV-1a-32(uid) mod n.
    Cilium = 0,
    /// Weighted rendezvous hashing over the eligible (node, entry) pairs: minimal movement.
    Consistent = 1,
}

/// The IPv4 maps written (`uint32_t` in structs and arguments).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum egress_layout {
    /// The Cilium version's own: 1.18 and 1.19 `LEGACY`, 1.20 `DUAL` (an engine's config
    /// only: `egress_maps_open` needs the maps named).
    Version = 0,
    /// `cilium_egress_gw_policy_v4_v2` alone (28-byte value with the egress ifindex).
    V4v2 = 1,
    /// `cilium_egress_gw_policy_v4` (legacy 8-byte value): Cilium 1.18 and 1.19.
    Legacy = 2,
    /// Both, legacy first, as Cilium 1.20 writes them (read back from `_v4_v2`).
    Dual = 3,
    /// Ours, not Cilium's: per family an endpoint hash (blocks of 8 addresses -> their set
    /// ids) and a rule trie ((set id, destination) -> value); a new endpoint is one write.
    Compact = 4,
}

/// Cilium 1.18 (v1.18.3, the seed's; the default): `egress_engine_config.cilium_version`.
pub const EGRESS_CILIUM_1_18: u32 = 0;
/// Cilium 1.19.
pub const EGRESS_CILIUM_1_19: u32 = 1;
/// Cilium 1.20.
pub const EGRESS_CILIUM_1_20: u32 = 2;

/// One of the maps (`uint32_t` in structs): Cilium's three, the compact layout's four.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum egress_map {
    /// `cilium_egress_gw_policy_v4_v2`: key 12 bytes, value 28.
    V4 = 0,
    /// `cilium_egress_gw_policy_v4`: key 12 bytes, value 8.
    V4Legacy = 1,
    /// `cilium_egress_gw_policy_v6`: key 36 bytes, value 40.
    V6 = 2,
    /// `egress_gw_compact_endpoints_v4` (hash): key 4 bytes (a block's first address, the
    /// low three bits zero), value 32 (its 8 addresses' set ids, 0: no endpoint).
    CompactEndpointsV4 = 3,
    /// `egress_gw_compact_endpoints_v6` (hash): key 16 bytes, value 32.
    CompactEndpointsV6 = 4,
    /// `egress_gw_compact_rules_v4` (LPM trie): key 12 bytes (prefixlen, be32 set, daddr),
    /// value 28.
    CompactRulesV4 = 5,
    /// `egress_gw_compact_rules_v6` (LPM trie): key 24 bytes, value 40.
    CompactRulesV6 = 6,
}

/// What a plan operation does (`uint32_t` in `egress_plan_op`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum egress_action {
    /// Create or overwrite the key with the value.
    Upsert = 0,
    /// Delete the key (no value).
    Delete = 1,
}

/// Address family of an `egress_ip_addr` (`uint32_t`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum egress_family {
    /// IPv4: the first 4 bytes of `bytes`.
    Ipv4 = 4,
    /// IPv6: all 16 bytes.
    Ipv6 = 6,
}

/// What the datapath does with a packet (`egress_verdict.kind`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum egress_verdict_kind {
    /// No entry: the normal path.
    NoEntry = 0,
    /// Dropped: the policy has no gateway.
    DropNoGateway = 1,
    /// Dropped: this node is the gateway but has no egress IP of the family.
    DropNoEgressIp = 2,
    /// Excluded destination: the normal path, no SNAT.
    Excluded = 3,
    /// Tunnelled to the gateway node `gateway_ip`.
    Forward = 4,
    /// SNATed here to `egress_ip`, out of `ifindex` (0: route lookup).
    Masquerade = 5,
}

/// The largest key of the three maps (the IPv6 key).
pub const EGRESS_MAX_KEY_SIZE: usize = 36;
/// The largest value of the three maps (the IPv6 value).
pub const EGRESS_MAX_VALUE_SIZE: usize = 40;
const _: () = assert!(EGRESS_MAX_KEY_SIZE == MapKeyV6::SIZE);
const _: () = assert!(EGRESS_MAX_VALUE_SIZE == MapValueV6::SIZE);

/// An IP address: `family` is `EGRESS_FAMILY_IPV4` (the first 4 bytes, network order) or
/// `EGRESS_FAMILY_IPV6` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct egress_ip_addr {
    /// `egress_family`.
    pub family: u32,
    /// The address, network byte order.
    pub bytes: [u8; 16],
}

/// The answer of a lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct egress_verdict {
    /// `egress_verdict_kind`: 0 no entry, 1 drop: no gateway, 2 drop: no egress IP,
    /// 3 excluded, 4 forward, 5 masquerade.
    pub kind: u32,
    /// Forward: the gateway node's IPv4 (zero otherwise).
    pub gateway_ip: [u8; 4],
    /// Masquerade: the egress IP; the first 4 bytes for an IPv4 source (zero otherwise).
    pub egress_ip: [u8; 16],
    /// Masquerade: the egress interface (0: route lookup).
    pub ifindex: u32,
}

/// One IPv4 query of a batch lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct egress_query_v4 {
    /// Source address, network order.
    pub src: [u8; 4],
    /// Destination address, network order.
    pub dst: [u8; 4],
}

/// One IPv6 query of a batch lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct egress_query_v6 {
    /// Source address, network order.
    pub src: [u8; 16],
    /// Destination address, network order.
    pub dst: [u8; 16],
}

/// One map operation of a plan, with the kernel's exact bytes: write `key[0..key_len]` and,
/// for an upsert, `value[0..value_len]` to the pinned map `map`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct egress_plan_op {
    /// `egress_map`.
    pub map: u32,
    /// `egress_action`.
    pub action: u32,
    /// Bytes of `key` used: the map's key size.
    pub key_len: u32,
    /// Bytes of `value` used: the map's value size for an upsert, 0 for a delete.
    pub value_len: u32,
    /// The key.
    pub key: [u8; EGRESS_MAX_KEY_SIZE],
    /// The value (upserts).
    pub value: [u8; EGRESS_MAX_VALUE_SIZE],
}

/// One element of a live map, as an agent that dumps the maps itself reads it: for
/// `egress_engine_adopt`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct egress_map_element {
    /// `egress_map`.
    pub map: u32,
    /// Bytes of `key` used: must be the map's key size.
    pub key_len: u32,
    /// Bytes of `value` used: must be the map's value size.
    pub value_len: u32,
    /// The key, as the kernel holds it.
    pub key: [u8; EGRESS_MAX_KEY_SIZE],
    /// The value, as the kernel holds it.
    pub value: [u8; EGRESS_MAX_VALUE_SIZE],
}

impl Default for egress_plan_op {
    /// All zero: a buffer slot for `egress_engine_take_plan` to fill.
    fn default() -> Self {
        Self {
            map: 0,
            action: 0,
            key_len: 0,
            value_len: 0,
            key: [0; EGRESS_MAX_KEY_SIZE],
            value: [0; EGRESS_MAX_VALUE_SIZE],
        }
    }
}

impl Default for egress_map_element {
    /// All zero.
    fn default() -> Self {
        Self {
            map: 0,
            key_len: 0,
            value_len: 0,
            key: [0; EGRESS_MAX_KEY_SIZE],
            value: [0; EGRESS_MAX_VALUE_SIZE],
        }
    }
}

/// One map entry, decoded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct egress_entry {
    /// The endpoint IP (the key's exact source).
    pub source: egress_ip_addr,
    /// The destination prefix's address as stored (host bits kept).
    pub destination: egress_ip_addr,
    /// The destination prefix length.
    pub destination_len: u32,
    /// The egress IP, of the source's family (all zero: none).
    pub egress_ip: egress_ip_addr,
    /// The gateway IPv4: 0.0.0.0 no gateway (drop), 0.0.0.1 excluded.
    pub gateway_ip: [u8; 4],
    /// The egress interface index (0: route lookup).
    pub egress_ifindex: u32,
}

/// One label: key and value as UTF-8 `(pointer, length)` pairs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct egress_label {
    /// The key's bytes.
    pub key: *const u8,
    /// The key's length.
    pub key_len: usize,
    /// The value's bytes (may be NULL when `value_len` is 0).
    pub value: *const u8,
    /// The value's length.
    pub value_len: usize,
}

pub(crate) fn selection(value: u32, name: &str) -> Result<Selection, Failure> {
    match value {
        0 => Ok(Selection::Cilium),
        1 => Ok(Selection::Consistent),
        other => Err(Failure::invalid_enum(
            name,
            other,
            "EGRESS_SELECTION_CILIUM (0), EGRESS_SELECTION_CONSISTENT (1)",
        )),
    }
}

/// An engine's layout: `None` for `EGRESS_LAYOUT_VERSION` (the Cilium version's own).
pub(crate) fn layout_or_version(value: u32, name: &str) -> Result<Option<Layout>, Failure> {
    match value {
        0 => Ok(None),
        1 => Ok(Some(Layout::V4V2)),
        2 => Ok(Some(Layout::V4Legacy)),
        3 => Ok(Some(Layout::V4Dual)),
        4 => Ok(Some(Layout::Compact)),
        other => Err(Failure::invalid_enum(
            name,
            other,
            "EGRESS_LAYOUT_VERSION (0), EGRESS_LAYOUT_V4V2 (1), EGRESS_LAYOUT_LEGACY (2), \
             EGRESS_LAYOUT_DUAL (3), EGRESS_LAYOUT_COMPACT (4)",
        )),
    }
}

/// The layout of maps to open: named, not `EGRESS_LAYOUT_VERSION`.
#[cfg(feature = "bpf")]
pub(crate) fn layout(value: u32, name: &str) -> Result<Layout, Failure> {
    match value {
        1 => Ok(Layout::V4V2),
        2 => Ok(Layout::V4Legacy),
        3 => Ok(Layout::V4Dual),
        4 => Ok(Layout::Compact),
        other => Err(Failure::invalid_enum(
            name,
            other,
            "EGRESS_LAYOUT_V4V2 (1), EGRESS_LAYOUT_LEGACY (2), EGRESS_LAYOUT_DUAL (3), \
             EGRESS_LAYOUT_COMPACT (4)",
        )),
    }
}

/// A named layout's `EGRESS_LAYOUT_*` number.
pub(crate) fn layout_number(layout: Layout) -> u32 {
    match layout {
        Layout::V4V2 => egress_layout::V4v2 as u32,
        Layout::V4Legacy => egress_layout::Legacy as u32,
        Layout::V4Dual => egress_layout::Dual as u32,
        Layout::Compact => egress_layout::Compact as u32,
    }
}

pub(crate) fn cilium_version(value: u32, name: &str) -> Result<CiliumVersion, Failure> {
    CiliumVersion::from_number(value).ok_or_else(|| {
        Failure::invalid_enum(
            name,
            value,
            "EGRESS_CILIUM_1_18 (0), EGRESS_CILIUM_1_19 (1), EGRESS_CILIUM_1_20 (2)",
        )
    })
}

pub(crate) fn map_id(value: u32, name: &str) -> Result<MapId, Failure> {
    match value {
        0 => Ok(MapId::V4),
        1 => Ok(MapId::V4Legacy),
        2 => Ok(MapId::V6),
        3 => Ok(MapId::CompactEndpointsV4),
        4 => Ok(MapId::CompactEndpointsV6),
        5 => Ok(MapId::CompactRulesV4),
        6 => Ok(MapId::CompactRulesV6),
        other => Err(Failure::invalid_enum(
            name,
            other,
            "EGRESS_MAP_V4 (0), EGRESS_MAP_V4_LEGACY (1), EGRESS_MAP_V6 (2), \
             EGRESS_MAP_COMPACT_ENDPOINTS_V4 (3), EGRESS_MAP_COMPACT_ENDPOINTS_V6 (4), \
             EGRESS_MAP_COMPACT_RULES_V4 (5), EGRESS_MAP_COMPACT_RULES_V6 (6)",
        )),
    }
}

fn map_number(map: MapId) -> u32 {
    match map {
        MapId::V4 => egress_map::V4 as u32,
        MapId::V4Legacy => egress_map::V4Legacy as u32,
        MapId::V6 => egress_map::V6 as u32,
        MapId::CompactEndpointsV4 => egress_map::CompactEndpointsV4 as u32,
        MapId::CompactEndpointsV6 => egress_map::CompactEndpointsV6 as u32,
        MapId::CompactRulesV4 => egress_map::CompactRulesV4 as u32,
        MapId::CompactRulesV6 => egress_map::CompactRulesV6 as u32,
    }
}

impl egress_ip_addr {
    pub(crate) fn to_ip(self, name: &str) -> Result<IpAddr, Failure> {
        match self.family {
            4 => {
                let [a, b, c, d, ..] = self.bytes;
                Ok(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            }
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.bytes))),
            other => Err(Failure::invalid_enum(
                &format!("{name}.family"),
                other,
                "EGRESS_FAMILY_IPV4 (4), EGRESS_FAMILY_IPV6 (6)",
            )),
        }
    }
}

impl From<IpAddr> for egress_ip_addr {
    fn from(ip: IpAddr) -> Self {
        let mut bytes = [0; 16];
        let family = match ip {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                egress_family::Ipv4
            }
            IpAddr::V6(v6) => {
                bytes = v6.octets();
                egress_family::Ipv6
            }
        };
        Self {
            family: family as u32,
            bytes,
        }
    }
}

impl From<VerdictRecord> for egress_verdict {
    /// Field by field, without branches (the record is already flat).
    #[inline]
    fn from(record: VerdictRecord) -> Self {
        egress_verdict {
            kind: record.kind as u32,
            gateway_ip: record.gateway_ip,
            egress_ip: record.egress_ip,
            ifindex: record.ifindex,
        }
    }
}

impl From<Verdict> for egress_verdict {
    fn from(verdict: Verdict) -> Self {
        VerdictRecord::from(verdict).into()
    }
}

// The C kinds are the core's numbering.
const _: () = {
    assert!(egress_verdict_kind::NoEntry as u32 == VerdictKind::NoEntry as u32);
    assert!(egress_verdict_kind::DropNoGateway as u32 == VerdictKind::DropNoGateway as u32);
    assert!(egress_verdict_kind::DropNoEgressIp as u32 == VerdictKind::DropNoEgressIp as u32);
    assert!(egress_verdict_kind::Excluded as u32 == VerdictKind::Excluded as u32);
    assert!(egress_verdict_kind::Forward as u32 == VerdictKind::Forward as u32);
    assert!(egress_verdict_kind::Masquerade as u32 == VerdictKind::Masquerade as u32);
};

impl From<&PlanOp> for egress_plan_op {
    fn from(op: &PlanOp) -> Self {
        let mut out = egress_plan_op {
            map: map_number(op.map()),
            action: match op.action() {
                Action::Upsert => egress_action::Upsert as u32,
                Action::Delete => egress_action::Delete as u32,
            },
            key_len: op.key().len() as u32,
            value_len: op.value().len() as u32,
            key: [0; EGRESS_MAX_KEY_SIZE],
            value: [0; EGRESS_MAX_VALUE_SIZE],
        };
        out.key[..op.key().len()].copy_from_slice(op.key());
        out.value[..op.value().len()].copy_from_slice(op.value());
        out
    }
}

impl From<&Entry> for egress_entry {
    fn from(entry: &Entry) -> Self {
        egress_entry {
            source: entry.source.into(),
            destination: entry.destination.addr.into(),
            destination_len: u32::from(entry.destination.len),
            egress_ip: entry.egress_ip.into(),
            gateway_ip: entry.gateway_ip.octets(),
            egress_ifindex: entry.egress_ifindex,
        }
    }
}

/// A map element decoded ([`egress_map_element::decode`]).
pub(crate) enum Decoded {
    /// An entry of one of Cilium's maps.
    Entry(MapId, Entry),
    /// An element of the compact layout's maps.
    Compact(CompactElement),
}

impl egress_map_element {
    /// What this element holds, for a map of `layout`: an entry of Cilium's maps with its
    /// map, or an element of the compact layout's.
    pub(crate) fn decode(&self, layout: Layout, name: &str) -> Result<Decoded, Failure> {
        let map = map_id(self.map, &format!("{name}.map"))?;
        if !layout.maps().contains(&map) {
            return Err(Failure::invalid_argument(
                &format!("{name}.map"),
                format!("{map} is not a map of the engine's layout {layout}"),
            ));
        }
        let (key_len, value_len) = (self.key_len as usize, self.value_len as usize);
        if key_len != map.key_size() || value_len != map.value_size() {
            return Err(Failure::invalid_argument(
                name,
                format!(
                    "key_len {key_len} and value_len {value_len}: {map} has {} and {}",
                    map.key_size(),
                    map.value_size()
                ),
            ));
        }
        let (key, value) = (&self.key[..key_len], &self.value[..value_len]);
        let decoded = if map.is_compact() {
            CompactElement::decode(map, key, value).map(Decoded::Compact)
        } else {
            Entry::decode(map, key, value).map(|entry| Decoded::Entry(map, entry))
        };
        decoded.map_err(|e| egress_core::Error::from(e).into())
    }
}
