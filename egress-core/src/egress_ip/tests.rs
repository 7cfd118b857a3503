use super::*;
use crate::device::DeviceAddress;

fn dev(name: &str, index: u32, alt: &[&str], addrs: &[&str], routes: Families) -> Device {
    Device {
        name: name.into(),
        index,
        alt_names: alt.iter().map(|s| s.to_string()).collect(),
        addresses: addrs
            .iter()
            .map(|s| {
                let (addr, prefix_len) = crate::netip::parse_interface_address(s).unwrap();
                DeviceAddress { addr, prefix_len }
            })
            .collect(),
        default_route: routes,
    }
}

fn devices() -> Vec<Device> {
    vec![
        dev(
            "eth0",
            2,
            &[],
            &["10.0.0.5/24", "fe80::1/64", "fd00::5/64"],
            Families::all(),
        ),
        dev(
            "eth1",
            3,
            &["enp1s0"],
            &["10.1.0.7/24", "43.0.0.1/24", "2402::7/64"],
            Families::empty(),
        ),
        dev("eth2", 4, &[], &["10.2.0.1/24"], Families::empty()),
        dev("eth3", 5, &["v6only"], &["2402::9/64"], Families::empty()),
        dev("dummy", 1, &[], &["10.2.0.1/32"], Families::empty()),
    ]
}

fn gw_interface(name: &str) -> GatewaySpec {
    GatewaySpec {
        interface: Some(name.into()),
        ..Default::default()
    }
}

fn gw_ip(ip: &str) -> GatewaySpec {
    GatewaySpec {
        egress_ip: Some(ip.parse().unwrap()),
        ..Default::default()
    }
}

const BOTH: Needed = Needed { v4: true, v6: true };
const V4: Needed = Needed {
    v4: true,
    v6: false,
};
const V6: Needed = Needed {
    v4: false,
    v6: true,
};
const NONE: Needed = Needed {
    v4: false,
    v6: false,
};

fn ok(ipv4: &str, ipv6: &str, ifindex: u32) -> EgressAddresses {
    EgressAddresses {
        ipv4: ipv4.parse().unwrap(),
        ipv6: ipv6.parse().unwrap(),
        ifindex,
        failure: None,
    }
}

fn failed(ifindex: u32, failure: DerivationFailure) -> EgressAddresses {
    EgressAddresses {
        ifindex,
        failure: Some(failure),
        ..EgressAddresses::NOT_FOUND
    }
}

fn no_address(device: &str, family: Family) -> DerivationFailure {
    DerivationFailure::NoAddress {
        device: device.into(),
        family,
    }
}

/// Checks one case on each version: `want` is [1.18, 1.19, 1.20], each derived by hand from
/// the rule of CILIUM-VERSIONS.md §4 (not printed by the engine).
fn check(case: &str, gw: &GatewaySpec, needed: Needed, d: &[Device], want: [EgressAddresses; 3]) {
    for (version, want) in CiliumVersion::ALL.into_iter().zip(want) {
        assert_eq!(derive(gw, needed, d, version), want, "{case} on {version}");
    }
}

/// `interface`: 1.18 and 1.19 go through netlink `LinkByName` (pkg/egressgateway/policy.go,
/// `deriveFromPolicyGatewayConfig` at the v1.18 and v1.19 branch points): the first IPv4 in
/// netlink order is required even for IPv6-only policies, the first IPv6 that is not
/// fe80::/10 only when IPv6 destinations need it; 1.18 sets no ifindex, 1.19 the link's
/// (before the address lookups, kept on failure). 1.20 reads the device table
/// (`deviceGetFirstAdresses` at ca88a95): the first listed address of each needed family,
/// no filter.
#[test]
fn interface_by_version() {
    let d = devices();
    let eth1 = |i| ok("10.1.0.7", "2402::7", i);
    check(
        "eth1, both",
        &gw_interface("eth1"),
        BOTH,
        &d,
        [eth1(0), eth1(3), eth1(3)],
    );
    check(
        "eth1, IPv6 only: IPv4 still derived before 1.20",
        &gw_interface("eth1"),
        V6,
        &d,
        [eth1(0), eth1(3), ok("0.0.0.0", "2402::7", 3)],
    );
    check(
        "eth0, IPv6: fe80::1 is listed first; netlink skips it, the device table does not",
        &gw_interface("eth0"),
        V6,
        &d,
        [
            ok("10.0.0.5", "fd00::5", 0),
            ok("10.0.0.5", "fd00::5", 2),
            ok("0.0.0.0", "fe80::1", 2),
        ],
    );
    check(
        "an IPv6-only device for an IPv6-only policy: IPv4 required before 1.20",
        &gw_interface("eth3"),
        V6,
        &d,
        [
            failed(0, no_address("eth3", Family::V4)),
            failed(5, no_address("eth3", Family::V4)),
            ok("0.0.0.0", "2402::9", 5),
        ],
    );
    check(
        "no destination of either family",
        &gw_interface("eth2"),
        NONE,
        &d,
        [
            ok("10.2.0.1", "::", 0),
            ok("10.2.0.1", "::", 4),
            ok("0.0.0.0", "::", 4),
        ],
    );
    check(
        "IPv6 needed on a device without one: the ifindex stays",
        &gw_interface("eth2"),
        BOTH,
        &d,
        [
            failed(0, no_address("eth2", Family::V6)),
            failed(4, no_address("eth2", Family::V6)),
            failed(4, no_address("eth2", Family::V6)),
        ],
    );
    let missing = DerivationFailure::NoSuchInterface("wg0".into());
    check(
        "no such interface",
        &gw_interface("wg0"),
        V4,
        &d,
        [
            failed(0, missing.clone()),
            failed(0, missing.clone()),
            failed(0, missing),
        ],
    );
    // An altname resolves through LinkByName (1.18, 1.19) and the device table (1.20, since
    // a0fa9ffaf9): the same first addresses.
    check(
        "altname",
        &gw_interface("enp1s0"),
        BOTH,
        &d,
        [eth1(0), eth1(3), eth1(3)],
    );
}

/// `egressIP`: 1.18 and 1.19 take it for IPv4 only (`GetIfaceWithIPv4Address`, the lowest
/// index link holding it; `// TODO: add ipv6 support`: IPv6 stays `::`, an IPv6 egressIP is
/// carried by no IPv4 address list); 1.20 takes either family from the device table, and a
/// needed other family missing on that device fails both (cilium#48660). The ifindex is 0
/// in every version.
#[test]
fn egress_ip_by_version() {
    let d = devices();
    // 10.2.0.1 is on eth2 (index 4) and dummy (index 1): dummy, which has no IPv6.
    check(
        "a dual-stack policy whose device has no IPv6 (cilium#48660 from 1.20)",
        &gw_ip("10.2.0.1"),
        BOTH,
        &d,
        [
            ok("10.2.0.1", "::", 0),
            ok("10.2.0.1", "::", 0),
            failed(0, no_address("dummy", Family::V6)),
        ],
    );
    check(
        "the other family from the device (1.20 only)",
        &gw_ip("43.0.0.1"),
        BOTH,
        &d,
        [
            ok("43.0.0.1", "::", 0),
            ok("43.0.0.1", "::", 0),
            ok("43.0.0.1", "2402::7", 0),
        ],
    );
    check(
        "IPv6 destinations only: the IPv4 egress IP is stored anyway before 1.20",
        &gw_ip("43.0.0.1"),
        V6,
        &d,
        [
            ok("43.0.0.1", "::", 0),
            ok("43.0.0.1", "::", 0),
            ok("0.0.0.0", "2402::7", 0),
        ],
    );
    let v6_ip = DerivationFailure::NoDeviceWithAddress("2402::7".parse().unwrap());
    check(
        "an IPv6 egressIP: derived from 1.20, its IPv4 the device's first",
        &gw_ip("2402::7"),
        BOTH,
        &d,
        [
            failed(0, v6_ip.clone()),
            failed(0, v6_ip),
            ok("10.1.0.7", "2402::7", 0),
        ],
    );
    let absent = DerivationFailure::NoDeviceWithAddress("192.0.2.1".parse().unwrap());
    check(
        "no device holds it",
        &gw_ip("192.0.2.1"),
        V4,
        &d,
        [
            failed(0, absent.clone()),
            failed(0, absent.clone()),
            failed(0, absent),
        ],
    );
}

/// Neither: 1.18 and 1.19 always need the IPv4 default route (its device's first IPv4;
/// IPv6, when needed, from the IPv6 default route, which must be the same device); 1.19
/// sets the ifindex of the IPv4 route's device. 1.20 looks up only the needed families'
/// routes, and only the IPv4 route sets the ifindex (policy.go lines 331-347 at ca88a95).
#[test]
fn default_route_by_version() {
    let d = devices();
    let route = GatewaySpec::default();
    let eth0 = |i| ok("10.0.0.5", "fd00::5", i);
    check(
        "both families",
        &route,
        BOTH,
        &d,
        [eth0(0), eth0(2), eth0(2)],
    );
    check(
        "no family needed",
        &route,
        NONE,
        &d,
        [
            ok("10.0.0.5", "::", 0),
            ok("10.0.0.5", "::", 2),
            ok("0.0.0.0", "::", 0),
        ],
    );
    let mut split = devices();
    split[0].default_route = Families::IPV4;
    split[1].default_route = Families::IPV6;
    check(
        "IPv6 only, the IPv6 route on another device",
        &route,
        V6,
        &split,
        [
            failed(0, DerivationFailure::DefaultRoutesDiffer),
            failed(2, DerivationFailure::DefaultRoutesDiffer),
            ok("0.0.0.0", "2402::7", 0),
        ],
    );
    check(
        "both, routes on two devices",
        &route,
        BOTH,
        &split,
        [
            failed(0, DerivationFailure::DefaultRoutesDiffer),
            failed(2, DerivationFailure::DefaultRoutesDiffer),
            failed(2, DerivationFailure::DefaultRoutesDiffer),
        ],
    );
    let mut v6_route_only = devices();
    v6_route_only[0].default_route = Families::IPV6;
    let no_v4_route = DerivationFailure::NoDefaultRoute(Family::V4);
    check(
        "no IPv4 default route, IPv6 destinations only",
        &route,
        V6,
        &v6_route_only,
        [
            failed(0, no_v4_route.clone()),
            failed(0, no_v4_route.clone()),
            ok("0.0.0.0", "fd00::5", 0),
        ],
    );
    check(
        "no IPv4 default route, IPv4 destinations",
        &route,
        V4,
        &v6_route_only,
        [
            failed(0, no_v4_route.clone()),
            failed(0, no_v4_route.clone()),
            failed(0, no_v4_route),
        ],
    );
    let mut bare = devices();
    bare[0].default_route = Families::empty();
    bare[2].default_route = Families::all();
    check(
        "the route's device has no IPv6",
        &route,
        BOTH,
        &bare,
        [
            failed(0, no_address("eth2", Family::V6)),
            failed(4, no_address("eth2", Family::V6)),
            failed(4, no_address("eth2", Family::V6)),
        ],
    );
}
