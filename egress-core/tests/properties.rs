//! Property tests: the lookup equals a linear-scan LPM oracle; map encoding round-trips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_core::entries::{Entry, MapEntries};
use egress_core::lookup::{LookupTable, Verdict};
use egress_core::maps::{MapKeyV4, MapKeyV6, MapValueV4, MapValueV4Legacy, MapValueV6};
use egress_core::netip::Cidr;
use proptest::prelude::*;

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);

/// Gateways including the special values and the local node.
fn gateway() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        Just(Ipv4Addr::UNSPECIFIED),
        Just(Ipv4Addr::new(0, 0, 0, 1)),
        Just(LOCAL),
        Just(Ipv4Addr::new(192, 168, 1, 2)),
    ]
}

/// Sources from a small pool so that sources carry several prefixes.
fn entry_v4() -> impl Strategy<Value = Entry> {
    (
        0u32..12,
        any::<u32>(),
        0u8..=32,
        prop_oneof![Just(0u32), any::<u32>()],
        gateway(),
        0u32..4,
    )
        .prop_map(|(s, d, len, egress, gw, ifindex)| Entry {
            source: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + s)),
            destination: Cidr {
                addr: IpAddr::V4(Ipv4Addr::from(d)),
                len,
            },
            egress_ip: IpAddr::V4(Ipv4Addr::from(egress)),
            gateway_ip: gw,
            egress_ifindex: ifindex,
        })
}

fn entry_v6() -> impl Strategy<Value = Entry> {
    (
        0u128..12,
        any::<u128>(),
        0u8..=128,
        prop_oneof![Just(0u128), any::<u128>()],
        gateway(),
        0u32..4,
    )
        .prop_map(|(s, d, len, egress, gw, ifindex)| Entry {
            source: IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) + s)),
            destination: Cidr {
                addr: IpAddr::V6(Ipv6Addr::from(d)),
                len,
            },
            egress_ip: IpAddr::V6(Ipv6Addr::from(egress)),
            gateway_ip: gw,
            egress_ifindex: ifindex,
        })
}

/// A valid map: one entry per key identity (the first one wins, as a map would keep one).
fn as_map(entries: Vec<Entry>) -> MapEntries {
    let mut seen = HashSet::new();
    MapEntries::from_entries(entries.into_iter().filter(|e| seen.insert(e.identity())))
}

/// The oracle: scan every entry, keep the longest matching destination for the exact source.
fn linear_scan(maps: &MapEntries, src: IpAddr, dst: IpAddr) -> Verdict {
    maps.iter()
        .filter(|e| e.source == src && e.destination.contains(dst))
        .max_by_key(|e| e.destination.len)
        .map_or(Verdict::NoEntry, |e| Verdict::of_entry(e, Some(LOCAL)))
}

/// Queries: mostly known sources, destinations often inside a stored prefix.
fn queries_v4(maps: &MapEntries, seeds: &[(u32, u32, bool)]) -> Vec<(IpAddr, IpAddr)> {
    seeds
        .iter()
        .map(|&(s, d, near)| {
            let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + s % 14));
            let dst = match (near, maps.ipv4.get(d as usize % maps.ipv4.len().max(1))) {
                (true, Some(e)) => {
                    let IpAddr::V4(a) = e.destination.addr else {
                        unreachable!()
                    };
                    let host = d & !egress_core::netip::mask_v4(e.destination.len);
                    IpAddr::V4(Ipv4Addr::from(
                        (u32::from(a) & egress_core::netip::mask_v4(e.destination.len)) | host,
                    ))
                }
                _ => IpAddr::V4(Ipv4Addr::from(d)),
            };
            (src, dst)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lookup_v4_equals_linear_scan(
        entries in prop::collection::vec(entry_v4(), 0..60),
        seeds in prop::collection::vec((any::<u32>(), any::<u32>(), any::<bool>()), 1..80),
    ) {
        let maps = as_map(entries);
        let table = LookupTable::new(&maps, Some(LOCAL));
        for (src, dst) in queries_v4(&maps, &seeds) {
            prop_assert_eq!(table.lookup(src, dst), linear_scan(&maps, src, dst), "src {} dst {}", src, dst);
        }
    }

    #[test]
    fn lookup_v6_equals_linear_scan(
        entries in prop::collection::vec(entry_v6(), 0..60),
        seeds in prop::collection::vec((any::<u128>(), any::<u128>(), any::<bool>()), 1..80),
    ) {
        let maps = as_map(entries);
        let table = LookupTable::new(&maps, Some(LOCAL));
        for &(s, d, near) in &seeds {
            let src = IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) + s % 14));
            let dst = match (near, maps.ipv6.get(d as usize % maps.ipv6.len().max(1))) {
                (true, Some(e)) => {
                    let IpAddr::V6(a) = e.destination.addr else { unreachable!() };
                    let m = egress_core::netip::mask_v6(e.destination.len);
                    IpAddr::V6(Ipv6Addr::from((u128::from(a) & m) | (d & !m)))
                }
                _ => IpAddr::V6(Ipv6Addr::from(d)),
            };
            prop_assert_eq!(table.lookup(src, dst), linear_scan(&maps, src, dst), "src {} dst {}", src, dst);
        }
    }

    #[test]
    fn encode_decode_is_identity(
        prefixlen_v4 in 32u32..=64, saddr in any::<[u8; 4]>(), daddr in any::<[u8; 4]>(),
        value in any::<([u8; 4], [u8; 4], [u32; 3], u32, u32)>(),
        prefixlen_v6 in 128u32..=256, saddr6 in any::<[u8; 16]>(), daddr6 in any::<[u8; 16]>(),
        egress6 in any::<[u8; 16]>(),
    ) {
        let k = MapKeyV4 { prefixlen: prefixlen_v4, saddr, daddr };
        let mut kb = [0u8; MapKeyV4::SIZE];
        k.encode(&mut kb);
        prop_assert_eq!(MapKeyV4::decode(&kb).unwrap(), k);

        let (egress, gw, reserved, ifindex, reserved2) = value;
        let v = MapValueV4 { egress_ip: egress, gateway_ip: gw, reserved, egress_ifindex: ifindex, reserved2 };
        let mut vb = [0u8; MapValueV4::SIZE];
        v.encode(&mut vb);
        prop_assert_eq!(MapValueV4::decode(&vb).unwrap(), v);

        let l = MapValueV4Legacy { egress_ip: egress, gateway_ip: gw };
        let mut lb = [0u8; MapValueV4Legacy::SIZE];
        l.encode(&mut lb);
        prop_assert_eq!(MapValueV4Legacy::decode(&lb).unwrap(), l);

        let k6 = MapKeyV6 { prefixlen: prefixlen_v6, saddr: saddr6, daddr: daddr6 };
        let mut k6b = [0u8; MapKeyV6::SIZE];
        k6.encode(&mut k6b);
        prop_assert_eq!(MapKeyV6::decode(&k6b).unwrap(), k6);

        let v6 = MapValueV6 { egress_ip: egress6, gateway_ip: gw, reserved, egress_ifindex: ifindex, reserved2 };
        let mut v6b = [0u8; MapValueV6::SIZE];
        v6.encode(&mut v6b);
        prop_assert_eq!(MapValueV6::decode(&v6b).unwrap(), v6);
        // decode∘encode too: the bytes come back unchanged.
        let mut again = [0u8; MapValueV6::SIZE];
        MapValueV6::decode(&v6b).unwrap().encode(&mut again);
        prop_assert_eq!(again, v6b);
    }

    #[test]
    fn entries_round_trip_through_the_map_layouts(e4 in entry_v4(), e6 in entry_v6()) {
        let (k, v) = e4.to_map_v4().unwrap();
        prop_assert_eq!(Entry::from_map_v4(&k, &v), e4);
        let (k, v) = e6.to_map_v6().unwrap();
        prop_assert_eq!(Entry::from_map_v6(&k, &v), e6);
    }
}
