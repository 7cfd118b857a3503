//! Egress IP and ifindex derivation on the local gateway node (SEMANTICS A.3, last part).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::device::{Device, Families, Family};
use crate::policy::GatewaySpec;
use crate::version::CiliumVersion;

/// What the local gateway SNATs to, and where it redirects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressAddresses {
    /// IPv4 egress IP; `0.0.0.0` = not found.
    pub ipv4: Ipv4Addr,
    /// IPv6 egress IP; `::` = not found.
    pub ipv6: Ipv6Addr,
    /// Egress interface index; 0 = none (route lookup).
    pub ifindex: u32,
    /// Why derivation failed, if it did (then both egress IPs are not-found).
    pub failure: Option<DerivationFailure>,
}

impl EgressAddresses {
    /// Nothing derived (both not-found, ifindex 0).
    pub const NOT_FOUND: Self = Self {
        ipv4: Ipv4Addr::UNSPECIFIED,
        ipv6: Ipv6Addr::UNSPECIFIED,
        ifindex: 0,
        failure: None,
    };

    /// The egress IP of a family (unspecified when not found).
    pub fn ip(&self, ipv4: bool) -> IpAddr {
        if ipv4 {
            IpAddr::V4(self.ipv4)
        } else {
            IpAddr::V6(self.ipv6)
        }
    }
}

/// Why egress addresses could not be derived.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DerivationFailure {
    /// No device has this name or alternative name.
    NoSuchInterface(String),
    /// The device has no suitable address of the family.
    NoAddress {
        /// Device name.
        device: String,
        /// `IPv4` or `IPv6`.
        family: Family,
    },
    /// No device carries the configured egress IP.
    NoDeviceWithAddress(IpAddr),
    /// No device carries the family's default route.
    NoDefaultRoute(Family),
    /// The IPv4 and IPv6 default routes use different devices.
    DefaultRoutesDiffer,
}

impl fmt::Display for DerivationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = |fam: &Family| if *fam == Family::V4 { "IPv4" } else { "IPv6" };
        match self {
            Self::NoSuchInterface(name) => write!(f, "no interface named {name}"),
            Self::NoAddress { device, family } => {
                write!(
                    f,
                    "interface {device} has no usable {} address",
                    fam(family)
                )
            }
            Self::NoDeviceWithAddress(ip) => write!(f, "no interface carries the egress IP {ip}"),
            Self::NoDefaultRoute(family) => write!(f, "no {} default route", fam(family)),
            Self::DefaultRoutesDiffer => {
                f.write_str("the IPv4 and IPv6 default routes use different interfaces")
            }
        }
    }
}

/// The families a policy needs (it has destination CIDRs of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needed {
    /// `v4Needed`.
    pub v4: bool,
    /// `v6Needed`.
    pub v6: bool,
}

impl Needed {
    /// The families `policy` needs: those of its destination CIDRs.
    pub fn of(policy: &crate::policy::Policy) -> Self {
        Self {
            v4: policy.needs_family(true),
            v6: policy.needs_family(false),
        }
    }
}

struct Found {
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
}

fn v4_of(ip: Option<IpAddr>) -> Option<Ipv4Addr> {
    ip.and_then(crate::netip::as_v4)
}

fn v6_of(ip: Option<IpAddr>) -> Option<Ipv6Addr> {
    ip.and_then(crate::netip::as_v6)
}

/// Derives the egress addresses of a gateway entry whose gateway is the local node, by the
/// rules of `version` (CILIUM-VERSIONS.md §4): 1.18 and 1.19 through netlink (IPv4 always
/// required, IPv6 only for IPv6 destinations, no IPv6 `egressIP`; 1.19 adds the ifindex),
/// 1.20 through Cilium's device table (only the families of the destinations; an `egressIP`
/// whose other needed family is missing on its device fails both, cilium#48660).
///
/// Only a complete success stores egress IPs; the ifindex keeps what was set before a
/// failure.
pub fn derive(
    gateway: &GatewaySpec,
    needed: Needed,
    devices: &[Device],
    version: CiliumVersion,
) -> EgressAddresses {
    let mut ifindex = 0;
    let result = if version.uses_device_table() {
        device_table(gateway, needed, devices, &mut ifindex)
    } else {
        netlink(
            gateway,
            needed,
            devices,
            version.derives_ifindex(),
            &mut ifindex,
        )
    };
    match result {
        Ok(found) => EgressAddresses {
            ipv4: found.v4.unwrap_or(Ipv4Addr::UNSPECIFIED),
            ipv6: found.v6.unwrap_or(Ipv6Addr::UNSPECIFIED),
            ifindex,
            failure: None,
        },
        Err(failure) => EgressAddresses {
            ifindex,
            failure: Some(failure),
            ..EgressAddresses::NOT_FOUND
        },
    }
}

fn no_address(dev: &Device, family: Family) -> DerivationFailure {
    DerivationFailure::NoAddress {
        device: dev.name.clone(),
        family,
    }
}

/// The device named `name`, else the one having it among its alternative names.
fn by_name<'a>(devices: &'a [Device], name: &str) -> Result<&'a Device, DerivationFailure> {
    devices
        .iter()
        .find(|d| d.name == name)
        .or_else(|| {
            devices
                .iter()
                .find(|d| d.alt_names.iter().any(|a| a == name))
        })
        .ok_or_else(|| DerivationFailure::NoSuchInterface(name.to_owned()))
}

/// The device with the lowest index among those carrying `ip`.
fn carrying(devices: &[Device], ip: IpAddr) -> Result<&Device, DerivationFailure> {
    devices
        .iter()
        .filter(|d| d.has_address(ip))
        .min_by_key(|d| d.index)
        .ok_or(DerivationFailure::NoDeviceWithAddress(ip))
}

/// The device carrying the family's default route.
fn route_device(devices: &[Device], family: Family) -> Result<&Device, DerivationFailure> {
    let fam = if family == Family::V4 {
        Families::IPV4
    } else {
        Families::IPV6
    };
    devices
        .iter()
        .find(|d| d.default_route.contains(fam))
        .ok_or(DerivationFailure::NoDefaultRoute(family))
}

/// Cilium 1.18 and 1.19 (`deriveFromPolicyGatewayConfig` on netlink): the IPv4 egress IP is
/// always derived, the IPv6 one only when IPv6 destinations need it (never for an
/// `egressIP`); 1.19 sets the ifindex of `interface` and of the default route.
fn netlink(
    gateway: &GatewaySpec,
    needed: Needed,
    devices: &[Device],
    with_ifindex: bool,
    ifindex: &mut u32,
) -> Result<Found, DerivationFailure> {
    let dev = if let Some(name) = &gateway.interface {
        // `LinkByName` resolves alternative names too; the index is set before the address
        // lookups and kept when they fail.
        let dev = by_name(devices, name)?;
        if with_ifindex {
            *ifindex = dev.index;
        }
        dev
    } else if let Some(ip) = gateway.egress_ip {
        // `GetIfaceWithIPv4Address`: an IPv6 egressIP is carried by no IPv4 address list.
        let IpAddr::V4(v4) = ip else {
            return Err(DerivationFailure::NoDeviceWithAddress(ip));
        };
        carrying(devices, ip)?;
        // `// TODO: add ipv6 support`: the IPv6 egress IP stays `::`.
        return Ok(Found {
            v4: Some(v4),
            v6: None,
        });
    } else {
        let dev = route_device(devices, Family::V4)?;
        if with_ifindex {
            *ifindex = dev.index;
        }
        if needed.v6 && route_device(devices, Family::V6)?.index != dev.index {
            return Err(DerivationFailure::DefaultRoutesDiffer);
        }
        dev
    };
    // The first IPv4 address in netlink order, of any scope; the first IPv6 one that is
    // not link-local.
    let v4 = v4_of(dev.first(Family::V4)).ok_or_else(|| no_address(dev, Family::V4))?;
    let v6 = if needed.v6 {
        Some(v6_of(dev.first(Family::V6)).ok_or_else(|| no_address(dev, Family::V6))?)
    } else {
        None
    };
    Ok(Found { v4: Some(v4), v6 })
}

/// Cilium 1.20 (the device table): only the families the destinations need.
fn device_table(
    gateway: &GatewaySpec,
    needed: Needed,
    devices: &[Device],
    ifindex: &mut u32,
) -> Result<Found, DerivationFailure> {
    let mut found = Found { v4: None, v6: None };
    if let Some(name) = &gateway.interface {
        // `DeviceByName` (altnames too since a0fa9ffaf9): the device's first listed address
        // of each needed family, with no link-local or loopback filter.
        let dev = by_name(devices, name)?;
        *ifindex = dev.index;
        if needed.v4 {
            found.v4 = Some(
                v4_of(dev.first_listed(Family::V4)).ok_or_else(|| no_address(dev, Family::V4))?,
            );
        }
        if needed.v6 {
            found.v6 = Some(
                v6_of(dev.first_listed(Family::V6)).ok_or_else(|| no_address(dev, Family::V6))?,
            );
        }
    } else if let Some(ip) = gateway.egress_ip {
        // `getDeviceWithAddress`; the ifindex stays 0 (PR #47010 was closed). The other
        // family, when needed, is the device's first address of it, and its absence fails
        // both families (cilium#48660).
        let dev = carrying(devices, ip)?;
        match ip {
            IpAddr::V4(a) => {
                found.v4 = needed.v4.then_some(a);
                if needed.v6 {
                    found.v6 = Some(
                        v6_of(dev.first_listed(Family::V6))
                            .ok_or_else(|| no_address(dev, Family::V6))?,
                    );
                }
            }
            IpAddr::V6(a) => {
                found.v6 = needed.v6.then_some(a);
                if needed.v4 {
                    found.v4 = Some(
                        v4_of(dev.first_listed(Family::V4))
                            .ok_or_else(|| no_address(dev, Family::V4))?,
                    );
                }
            }
        }
    } else {
        // Each needed family's default route (the same device when both are); the ifindex
        // comes from the IPv4 route only (policy.go lines 331-347 at ca88a95 set none for
        // IPv6).
        let mut v4_dev = None;
        if needed.v4 {
            let dev = route_device(devices, Family::V4)?;
            *ifindex = dev.index;
            v4_dev = Some(dev);
            found.v4 =
                Some(v4_of(dev.first(Family::V4)).ok_or_else(|| no_address(dev, Family::V4))?);
        }
        if needed.v6 {
            let dev = route_device(devices, Family::V6)?;
            if v4_dev.is_some_and(|v4| v4.index != dev.index) {
                return Err(DerivationFailure::DefaultRoutesDiffer);
            }
            found.v6 =
                Some(v6_of(dev.first(Family::V6)).ok_or_else(|| no_address(dev, Family::V6))?);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
