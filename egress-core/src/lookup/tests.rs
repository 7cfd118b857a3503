use super::*;
use crate::netip::parse_prefix;

fn entry(src: &str, dst: &str, egress: &str, gw: &str, ifindex: u32) -> Entry {
    Entry {
        source: src.parse().unwrap(),
        destination: parse_prefix(dst).unwrap(),
        egress_ip: egress.parse().unwrap(),
        gateway_ip: gw.parse().unwrap(),
        egress_ifindex: ifindex,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const LOCAL: &str = "192.168.1.1";

fn table() -> LookupTable {
    let maps = MapEntries::from_entries([
        entry("10.0.0.1", "0.0.0.0/0", "43.0.0.1", LOCAL, 3),
        entry("10.0.0.1", "10.0.0.0/8", "43.0.0.1", "0.0.0.1", 3),
        entry("10.0.0.1", "10.1.0.0/16", "43.0.0.1", LOCAL, 3),
        entry("10.0.0.2", "0.0.0.0/0", "0.0.0.0", "192.168.1.2", 0),
        entry("10.0.0.3", "8.8.8.8/32", "0.0.0.0", "0.0.0.0", 0),
        entry("10.0.0.4", "0.0.0.0/0", "0.0.0.0", LOCAL, 0),
        entry("fd00::1", "::/0", "2402::1", LOCAL, 3),
        entry("fd00::1", "2402::/16", "2402::1", "0.0.0.1", 3),
        entry("fd00::2", "2000::/3", "::", "192.168.1.2", 0),
        entry("fd00::3", "::/0", "::", LOCAL, 0),
    ]);
    LookupTable::new(&maps, Some(LOCAL.parse().unwrap()))
}

#[test]
fn every_verdict() {
    let t = table();
    let masq = Verdict::Masquerade {
        egress_ip: ip("43.0.0.1"),
        ifindex: 3,
    };
    assert_eq!(t.lookup(ip("10.0.0.1"), ip("8.8.8.8")), masq);
    assert_eq!(t.lookup(ip("10.0.0.1"), ip("10.2.0.1")), Verdict::Excluded);
    assert_eq!(
        t.lookup(ip("10.0.0.1"), ip("10.1.2.3")),
        masq,
        "the longest prefix wins"
    );
    assert_eq!(
        t.lookup(ip("10.0.0.2"), ip("1.1.1.1")),
        Verdict::Forward {
            gateway: "192.168.1.2".parse().unwrap()
        }
    );
    assert_eq!(
        t.lookup(ip("10.0.0.3"), ip("8.8.8.8")),
        Verdict::Drop(DropReason::NoGateway)
    );
    assert_eq!(
        t.lookup(ip("10.0.0.3"), ip("8.8.4.4")),
        Verdict::NoEntry,
        "known source, no prefix"
    );
    assert_eq!(
        t.lookup(ip("10.0.0.4"), ip("8.8.4.4")),
        Verdict::Drop(DropReason::NoEgressIp)
    );
    assert_eq!(
        t.lookup(ip("10.9.9.9"), ip("8.8.8.8")),
        Verdict::NoEntry,
        "unknown source"
    );
    assert_eq!(
        t.lookup(ip("fd00::1"), ip("2001:db8::1")),
        Verdict::Masquerade {
            egress_ip: ip("2402::1"),
            ifindex: 3
        }
    );
    assert_eq!(t.lookup(ip("fd00::1"), ip("2402:1::1")), Verdict::Excluded);
    assert_eq!(
        t.lookup(ip("fd00::2"), ip("2402::1")),
        Verdict::Forward {
            gateway: "192.168.1.2".parse().unwrap()
        }
    );
    assert_eq!(t.lookup(ip("fd00::2"), ip("fd00::9")), Verdict::NoEntry);
    assert_eq!(
        t.lookup(ip("fd00::3"), ip("2402::1")),
        Verdict::Drop(DropReason::NoEgressIp)
    );
    assert_eq!(
        t.lookup(ip("10.0.0.1"), ip("2402::1")),
        Verdict::NoEntry,
        "mixed families"
    );
    assert_eq!(
        t.lookup(ip("::ffff:10.0.0.1"), ip("::ffff:8.8.8.8")),
        Verdict::NoEntry,
        "IPv4-mapped is IPv6"
    );
}

#[test]
fn the_local_ipv4_decides_masquerade_or_forward() {
    let maps = MapEntries::from_entries([entry("10.0.0.1", "0.0.0.0/0", "0.0.0.0", LOCAL, 0)]);
    let elsewhere = LookupTable::new(&maps, Some("192.168.1.9".parse().unwrap()));
    assert_eq!(
        elsewhere.lookup(ip("10.0.0.1"), ip("1.1.1.1")),
        Verdict::Forward {
            gateway: LOCAL.parse().unwrap()
        }
    );
    let v6_only_node = LookupTable::new(&maps, None);
    assert_eq!(
        v6_only_node.lookup(ip("10.0.0.1"), ip("1.1.1.1")),
        Verdict::Forward {
            gateway: LOCAL.parse().unwrap()
        }
    );
}

#[test]
fn identical_prefix_lists_are_shared() {
    let maps = MapEntries::from_entries((1..=100u8).flat_map(|i| {
        let src = format!("10.0.1.{i}");
        [
            entry(&src, "0.0.0.0/0", "0.0.0.0", "192.168.1.2", 0),
            entry(&src, "10.0.0.0/8", "0.0.0.0", "0.0.0.1", 0),
        ]
    }));
    let t = LookupTable::new(&maps, None);
    assert_eq!(t.stored_prefixes(), (2, 0));
    assert_eq!(t.lookup(ip("10.0.1.77"), ip("10.3.3.3")), Verdict::Excluded);
}

#[test]
fn verdict_records_and_kinds() {
    let v4: IpAddr = "192.0.2.7".parse().unwrap();
    let v6: IpAddr = "2001:db8::7".parse().unwrap();
    let cases = [
        (Verdict::NoEntry, 0, "no_entry"),
        (Verdict::Drop(DropReason::NoGateway), 1, "drop_no_gateway"),
        (
            Verdict::Drop(DropReason::NoEgressIp),
            2,
            "drop_no_egress_ip",
        ),
        (Verdict::Excluded, 3, "excluded"),
        (
            Verdict::Forward {
                gateway: "10.0.0.9".parse().unwrap(),
            },
            4,
            "forward",
        ),
        (
            Verdict::Masquerade {
                egress_ip: v4,
                ifindex: 3,
            },
            5,
            "masquerade",
        ),
    ];
    for (verdict, number, name) in cases {
        assert_eq!(
            (verdict.kind() as u32, verdict.kind().name()),
            (number, name)
        );
    }
    let fwd = VerdictRecord::from(cases[4].0);
    assert_eq!(
        (fwd.gateway_ip, fwd.egress_ip, fwd.ifindex),
        ([10, 0, 0, 9], [0; 16], 0)
    );
    let masq = VerdictRecord::from(cases[5].0);
    assert_eq!(masq.gateway_ip, [0; 4]);
    assert_eq!(
        (&masq.egress_ip[..4], &masq.egress_ip[4..], masq.ifindex),
        (&[192, 0, 2, 7][..], &[0u8; 12][..], 3)
    );
    let masq6 = VerdictRecord::from(Verdict::Masquerade {
        egress_ip: v6,
        ifindex: 0,
    });
    assert_eq!(
        masq6.egress_ip,
        "2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    assert_eq!(
        VerdictRecord::from(Verdict::NoEntry),
        VerdictRecord::NO_ENTRY
    );
}
