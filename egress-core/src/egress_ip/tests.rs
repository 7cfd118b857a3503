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
const NO_NODE_IPS: (Option<Ipv4Addr>, Option<Ipv6Addr>) = (None, None);

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

#[test]
fn interface_by_name_uses_primary() {
    let d = devices();
    assert_eq!(
        derive(&gw_interface("eth1"), BOTH, &d, NO_NODE_IPS),
        ok("43.0.0.1", "2402::7", 3)
    );
    assert_eq!(
        derive(&gw_interface("eth1"), V4, &d, NO_NODE_IPS),
        ok("43.0.0.1", "::", 3)
    );
    // The node IP is preferred by primary.
    let node = (Some("10.1.0.7".parse().unwrap()), None);
    assert_eq!(
        derive(&gw_interface("eth1"), V4, &d, node),
        ok("10.1.0.7", "::", 3)
    );
    // No family needed: success with only the ifindex.
    assert_eq!(
        derive(&gw_interface("eth2"), NONE, &d, NO_NODE_IPS),
        ok("0.0.0.0", "::", 4)
    );
}

#[test]
fn interface_failures_keep_the_ifindex() {
    let d = devices();
    let no_v6 = DerivationFailure::NoAddress {
        device: "eth2".into(),
        family: Family::V6,
    };
    assert_eq!(
        derive(&gw_interface("eth2"), BOTH, &d, NO_NODE_IPS),
        failed(4, no_v6)
    );
    let no_v4 = DerivationFailure::NoAddress {
        device: "eth3".into(),
        family: Family::V4,
    };
    assert_eq!(
        derive(&gw_interface("eth3"), V4, &d, NO_NODE_IPS),
        failed(5, no_v4)
    );
    assert_eq!(
        derive(&gw_interface("wg0"), V4, &d, NO_NODE_IPS),
        failed(0, DerivationFailure::NoSuchInterface("wg0".into()))
    );
}

#[test]
fn interface_by_altname_uses_first() {
    let d = devices();
    // first(), not primary(): the private 10.1.0.7 is listed first.
    assert_eq!(
        derive(&gw_interface("enp1s0"), BOTH, &d, NO_NODE_IPS),
        ok("10.1.0.7", "2402::7", 3)
    );
    let no_v4 = DerivationFailure::NoAddress {
        device: "eth3".into(),
        family: Family::V4,
    };
    assert_eq!(
        derive(&gw_interface("v6only"), BOTH, &d, NO_NODE_IPS),
        failed(5, no_v4)
    );
    assert_eq!(
        derive(&gw_interface("v6only"), V6, &d, NO_NODE_IPS),
        ok("0.0.0.0", "2402::9", 5)
    );
}

#[test]
fn egress_ip_uses_the_lowest_index_device_and_ifindex_zero() {
    let d = devices();
    // 10.2.0.1 is on eth2 (index 4) and dummy (index 1): dummy wins, and has no IPv6.
    assert_eq!(
        derive(&gw_ip("10.2.0.1"), BOTH, &d, NO_NODE_IPS),
        ok("10.2.0.1", "::", 0)
    );
    // The other family comes from primary() of that device.
    assert_eq!(
        derive(&gw_ip("43.0.0.1"), BOTH, &d, NO_NODE_IPS),
        ok("43.0.0.1", "2402::7", 0)
    );
    assert_eq!(
        derive(&gw_ip("2402::7"), BOTH, &d, NO_NODE_IPS),
        ok("43.0.0.1", "2402::7", 0)
    );
    // The given address only for a needed family.
    assert_eq!(
        derive(&gw_ip("43.0.0.1"), V6, &d, NO_NODE_IPS),
        ok("0.0.0.0", "2402::7", 0)
    );
    // Any scope counts, link-local included.
    assert_eq!(
        derive(&gw_ip("fe80::1"), V6, &d, NO_NODE_IPS),
        ok("0.0.0.0", "fe80::1", 0)
    );
    assert_eq!(
        derive(&gw_ip("192.0.2.1"), V4, &d, NO_NODE_IPS),
        failed(
            0,
            DerivationFailure::NoDeviceWithAddress("192.0.2.1".parse().unwrap())
        )
    );
}

#[test]
fn default_route_per_family() {
    let d = devices();
    assert_eq!(
        derive(&GatewaySpec::default(), BOTH, &d, NO_NODE_IPS),
        ok("10.0.0.5", "fd00::5", 2)
    );
    assert_eq!(
        derive(&GatewaySpec::default(), NONE, &d, NO_NODE_IPS),
        ok("0.0.0.0", "::", 0)
    );
    // IPv6 route on another device than IPv4: failure, ifindex of the v4 device kept.
    let mut split = devices();
    split[0].default_route = Families::IPV4;
    split[1].default_route = Families::IPV6;
    assert_eq!(
        derive(&GatewaySpec::default(), BOTH, &split, NO_NODE_IPS),
        failed(2, DerivationFailure::DefaultRoutesDiffer)
    );
    // v4 not needed: the v6 route's device gives the ifindex.
    assert_eq!(
        derive(&GatewaySpec::default(), V6, &split, NO_NODE_IPS),
        ok("0.0.0.0", "2402::7", 3)
    );
    // Missing routes.
    let mut none = devices();
    none[0].default_route = Families::IPV6;
    assert_eq!(
        derive(&GatewaySpec::default(), V4, &none, NO_NODE_IPS),
        failed(0, DerivationFailure::NoDefaultRoute(Family::V4))
    );
    none[0].default_route = Families::IPV4;
    assert_eq!(
        derive(&GatewaySpec::default(), BOTH, &none, NO_NODE_IPS),
        failed(2, DerivationFailure::NoDefaultRoute(Family::V6))
    );
    // Route device without an address of the family.
    let mut bare = devices();
    bare[0].default_route = Families::empty();
    bare[2].default_route = Families::all();
    let no_v6 = DerivationFailure::NoAddress {
        device: "eth2".into(),
        family: Family::V6,
    };
    assert_eq!(
        derive(&GatewaySpec::default(), BOTH, &bare, NO_NODE_IPS),
        failed(4, no_v6)
    );
}
