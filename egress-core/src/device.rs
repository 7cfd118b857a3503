//! The local node's network devices and Cilium's two ways of picking an address on one
//! (SEMANTICS A.3: *primary* and *first*).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bitflags::bitflags;

use crate::netip::Cidr;

bitflags! {
    /// A set of address families.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Families: u8 {
        /// IPv4.
        const IPV4 = 1;
        /// IPv6.
        const IPV6 = 2;
    }
}

impl Families {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() {
            Self::IPV4
        } else {
            Self::IPV6
        }
    }
}

/// An address assigned to a device, with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceAddress {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
}

/// A network device of the local node, as netlink reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Device {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Alternative names.
    pub alt_names: Vec<String>,
    /// Addresses, in netlink order.
    pub addresses: Vec<DeviceAddress>,
    /// Families whose default route goes through this device.
    pub default_route: Families,
}

/// Either address family, for the pickers below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    fn has(self, addr: IpAddr) -> bool {
        addr.is_ipv4() == (self == Family::V4)
    }
}

/// Ranges Cilium (Go's netip-based classification in its address picker) treats as private.
const PRIVATE: &[(IpAddr, u8)] = &[
    (IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)), 10),
    (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
    (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),
    (IpAddr::V4(Ipv4Addr::new(192, 0, 0, 0)), 24),
    (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)), 24),
    (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),
    (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)), 15),
    (IpAddr::V4(Ipv4Addr::new(198, 51, 100, 0)), 24),
    (IpAddr::V4(Ipv4Addr::new(203, 0, 113, 0)), 24),
    (IpAddr::V4(Ipv4Addr::new(224, 0, 0, 0)), 4),
    (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128),
    (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
    (IpAddr::V6(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0)), 64),
    (IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0)), 48),
    (
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
        48,
    ),
    (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),
    (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
    (IpAddr::V6(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0)), 8),
];

/// Whether an address is in one of the private ranges of SEMANTICS A.3.
pub fn is_private(addr: IpAddr) -> bool {
    PRIVATE
        .iter()
        .any(|&(net, len)| Cidr { addr: net, len }.contains(addr))
}

fn is_link_local_v6(addr: IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

fn is_loopback(addr: IpAddr) -> bool {
    addr.is_loopback()
}

fn numeric(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

impl Device {
    /// *primary(dev, fam)*: the node's own address when it is a candidate, else the first
    /// public candidate ordered by (non-secondary first, public first, numerically), else the
    /// first candidate. Candidates exclude loopback and IPv6 link-local addresses.
    pub fn primary(&self, family: Family, node_ip: Option<IpAddr>) -> Option<IpAddr> {
        let mut candidates: Vec<(bool, bool, u128, IpAddr)> = Vec::new();
        for (i, a) in self.addresses.iter().enumerate() {
            let ip = a.addr;
            if !family.has(ip) || is_loopback(ip) || is_link_local_v6(ip) {
                continue;
            }
            if Some(ip) == node_ip {
                return Some(ip);
            }
            let secondary = ip.is_ipv4()
                && self.addresses[..i].iter().any(|earlier| {
                    earlier.addr.is_ipv4()
                        && earlier.prefix_len == a.prefix_len
                        && Cidr {
                            addr: earlier.addr,
                            len: a.prefix_len,
                        }
                        .network()
                            == Cidr {
                                addr: ip,
                                len: a.prefix_len,
                            }
                            .network()
                });
            candidates.push((secondary, is_private(ip), numeric(ip), ip));
        }
        candidates.sort();
        candidates
            .iter()
            .find(|(_, private, _, _)| !private)
            .or(candidates.first())
            .map(|&(_, _, _, ip)| ip)
    }

    /// *first(dev, fam)*: the first listed address of the family (IPv6 skips link-local).
    pub fn first(&self, family: Family) -> Option<IpAddr> {
        self.addresses
            .iter()
            .map(|a| a.addr)
            .find(|&ip| family.has(ip) && !is_link_local_v6(ip))
    }

    /// The first listed address of the family, with no filter at all (Cilium 1.20's device
    /// table: `deviceGetFirstAdresses`).
    pub fn first_listed(&self, family: Family) -> Option<IpAddr> {
        self.addresses
            .iter()
            .map(|a| a.addr)
            .find(|&ip| family.has(ip))
    }

    /// Whether the device carries exactly this address (any prefix length, any scope).
    pub fn has_address(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|a| a.addr == ip)
    }
}

/// Builds the device list from iproute2's JSON output: `ip -j addr show` and the default
/// routes of `ip -j route show default` / `ip -6 -j route show default`.
pub fn from_iproute2(
    addrs: &str,
    routes_v4: &str,
    routes_v6: &str,
) -> Result<Vec<Device>, crate::document::ParseError> {
    from_iproute2_text(addrs, routes_v4, routes_v6).map_err(crate::document::ParseError)
}

fn from_iproute2_text(
    addrs: &str,
    routes_v4: &str,
    routes_v6: &str,
) -> Result<Vec<Device>, String> {
    use serde_json::Value;
    let parse = |what: &str, text: &str| -> Result<Vec<Value>, String> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(_) => Err(format!("{what}: expected a JSON array")),
            Err(e) => Err(format!("{what}: {e}")),
        }
    };
    let route_devs = |what: &str, text: &str| -> Result<Vec<String>, String> {
        Ok(parse(what, text)?
            .iter()
            .filter(|r| r.get("dst").and_then(Value::as_str) == Some("default"))
            .filter_map(|r| r.get("dev").and_then(Value::as_str).map(str::to_owned))
            .collect())
    };
    let v4_routes = route_devs("ip -j route show default", routes_v4)?;
    let v6_routes = route_devs("ip -6 -j route show default", routes_v6)?;
    let mut devices = Vec::new();
    for link in parse("ip -j addr show", addrs)? {
        let name = link
            .get("ifname")
            .and_then(Value::as_str)
            .ok_or("ip -j addr show: a link without ifname")?;
        let index = link
            .get("ifindex")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| format!("ip -j addr show: {name}: no ifindex"))?;
        let alt_names = link
            .get("altnames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut addresses = Vec::new();
        for info in link
            .get("addr_info")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let local = info
                .get("local")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<IpAddr>().ok());
            let len = info
                .get("prefixlen")
                .and_then(Value::as_u64)
                .and_then(|l| u8::try_from(l).ok());
            if let (Some(addr), Some(prefix_len)) = (local, len) {
                addresses.push(DeviceAddress { addr, prefix_len });
            }
        }
        let mut default_route = Families::empty();
        default_route.set(Families::IPV4, v4_routes.iter().any(|d| d == name));
        default_route.set(Families::IPV6, v6_routes.iter().any(|d| d == name));
        devices.push(Device {
            name: name.to_owned(),
            index,
            alt_names,
            addresses,
            default_route,
        });
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(addrs: &[&str]) -> Device {
        Device {
            name: "eth0".into(),
            index: 2,
            alt_names: vec![],
            addresses: addrs
                .iter()
                .map(|s| {
                    let (a, l) = crate::netip::parse_interface_address(s).unwrap();
                    DeviceAddress {
                        addr: a,
                        prefix_len: l,
                    }
                })
                .collect(),
            default_route: Families::empty(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_ranges() {
        for p in [
            "10.1.2.3",
            "172.22.49.119",
            "192.168.0.1",
            "100.64.0.1",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
            "::1",
            "224.0.0.1",
            "198.19.0.1",
        ] {
            assert!(is_private(ip(p)), "{p}");
        }
        for p in [
            "43.134.181.245",
            "8.8.8.8",
            "2402:4e00:1::3",
            "172.32.0.1",
            "2001:db9::1",
        ] {
            assert!(!is_private(ip(p)), "{p}");
        }
    }

    #[test]
    fn primary_prefers_public_then_non_secondary_and_the_node_ip() {
        // Public before private.
        let d = dev(&["10.0.0.5/24", "43.0.0.9/24", "43.0.0.1/28"]);
        assert_eq!(d.primary(Family::V4, None), Some(ip("43.0.0.1")));
        // Secondary (same network and length as an earlier address) last.
        let d = dev(&["43.0.0.9/24", "43.0.0.1/24", "10.0.0.5/24"]);
        assert_eq!(d.primary(Family::V4, None), Some(ip("43.0.0.9")));
        let d = dev(&["10.0.0.5/24", "43.0.0.9/24", "43.0.0.1/24"]);
        assert_eq!(d.primary(Family::V4, None), Some(ip("43.0.0.9")));
        // Only secondaries are public: the first public one still wins over private primaries.
        // (100.64/10 is private, 100.1.0.1 public; both in 100.0.0.0/9.)
        let d = dev(&["100.64.0.1/9", "100.1.0.1/9"]);
        assert_eq!(d.primary(Family::V4, None), Some(ip("100.1.0.1")));
        let d = dev(&["10.0.0.9/24", "10.0.0.5/24", "192.168.1.1/24"]);
        assert_eq!(
            d.primary(Family::V4, None),
            Some(ip("10.0.0.9")),
            "non-secondary first, then numeric"
        );
        // The node's own address wins when it is a candidate.
        let d = dev(&["43.0.0.1/24", "10.0.0.5/24"]);
        assert_eq!(
            d.primary(Family::V4, Some(ip("10.0.0.5"))),
            Some(ip("10.0.0.5"))
        );
        assert_eq!(
            d.primary(Family::V4, Some(ip("10.9.9.9"))),
            Some(ip("43.0.0.1"))
        );
        // Loopback and link-local are never candidates; ULA is.
        let d = dev(&["127.0.0.1/8", "fe80::1/64", "::1/128", "fd00::7/64"]);
        assert_eq!(d.primary(Family::V4, None), None);
        assert_eq!(d.primary(Family::V6, None), Some(ip("fd00::7")));
        let d = dev(&["fd00::7/64", "2402:4e00::1/64"]);
        assert_eq!(d.primary(Family::V6, None), Some(ip("2402:4e00::1")));
    }

    #[test]
    fn iproute2_json() {
        let addrs = r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
            {"ifindex":2,"ifname":"eth0","altnames":["enp0s3"],"addr_info":[{"family":"inet","local":"10.0.0.5","prefixlen":24},{"family":"inet6","local":"fe80::1","prefixlen":64}]}]"#;
        let devices = from_iproute2(
            addrs,
            r#"[{"dst":"default","gateway":"10.0.0.1","dev":"eth0"}]"#,
            "[]",
        )
        .unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[1].name, "eth0");
        assert_eq!(devices[1].alt_names, ["enp0s3"]);
        assert_eq!(
            devices[1].addresses[0],
            DeviceAddress {
                addr: ip("10.0.0.5"),
                prefix_len: 24
            }
        );
        assert_eq!(devices[1].default_route, Families::IPV4);
        assert_eq!(devices[0].default_route, Families::empty());
        assert!(from_iproute2("{}", "[]", "[]").is_err());
        assert!(
            from_iproute2("[{\"ifname\": \"x\"}]", "[]", "[]")
                .unwrap_err()
                .0
                .contains("no ifindex")
        );
    }

    #[test]
    fn first_is_the_first_listed() {
        let d = dev(&[
            "fe80::1/64",
            "10.0.0.5/24",
            "43.0.0.1/24",
            "fd00::1/64",
            "2402::1/64",
        ]);
        assert_eq!(d.first(Family::V4), Some(ip("10.0.0.5")));
        assert_eq!(d.first(Family::V6), Some(ip("fd00::1")));
        assert!(d.has_address(ip("fe80::1")));
        assert_eq!(dev(&[]).first(Family::V4), None);
    }
}
