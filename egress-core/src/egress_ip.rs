//! Egress IP and ifindex derivation on the local gateway node (SEMANTICS A.3, last part).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::device::{Device, Families, Family};
use crate::policy::GatewaySpec;

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

/// Derives the egress addresses of a gateway entry whose gateway is the local node.
///
/// `node_ips` are the local node's own IPv4/IPv6 (preferred by *primary*). Only a complete
/// success stores egress IPs; the ifindex keeps what was set before a failure.
pub fn derive(
    gateway: &GatewaySpec,
    needed: Needed,
    devices: &[Device],
    node_ips: (Option<Ipv4Addr>, Option<Ipv6Addr>),
) -> EgressAddresses {
    let mut ifindex = 0;
    let node_v4 = node_ips.0.map(IpAddr::V4);
    let node_v6 = node_ips.1.map(IpAddr::V6);
    let result = if let Some(name) = &gateway.interface {
        by_interface(name, needed, devices, (node_v4, node_v6), &mut ifindex)
    } else if let Some(ip) = gateway.egress_ip {
        by_egress_ip(ip, needed, devices, (node_v4, node_v6))
    } else {
        by_default_route(needed, devices, &mut ifindex)
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

fn by_interface(
    name: &str,
    needed: Needed,
    devices: &[Device],
    node_ips: (Option<IpAddr>, Option<IpAddr>),
    ifindex: &mut u32,
) -> Result<Found, DerivationFailure> {
    let no_address = |dev: &Device, family| DerivationFailure::NoAddress {
        device: dev.name.clone(),
        family,
    };
    if let Some(dev) = devices.iter().find(|d| d.name == name) {
        *ifindex = dev.index;
        let mut found = Found { v4: None, v6: None };
        if needed.v4 {
            found.v4 = Some(
                v4_of(dev.primary(Family::V4, node_ips.0))
                    .ok_or_else(|| no_address(dev, Family::V4))?,
            );
        }
        if needed.v6 {
            found.v6 = Some(
                v6_of(dev.primary(Family::V6, node_ips.1))
                    .ok_or_else(|| no_address(dev, Family::V6))?,
            );
        }
        return Ok(found);
    }
    // Cilium's device table is indexed by name; an altname resolves through netlink, whose
    // address list is taken as is.
    if let Some(dev) = devices
        .iter()
        .find(|d| d.alt_names.iter().any(|a| a == name))
    {
        *ifindex = dev.index;
        let mut found = Found { v4: None, v6: None };
        if needed.v4 {
            found.v4 =
                Some(v4_of(dev.first(Family::V4)).ok_or_else(|| no_address(dev, Family::V4))?);
        }
        if needed.v6 {
            found.v6 =
                Some(v6_of(dev.first(Family::V6)).ok_or_else(|| no_address(dev, Family::V6))?);
        }
        return Ok(found);
    }
    Err(DerivationFailure::NoSuchInterface(name.to_owned()))
}

fn by_egress_ip(
    ip: IpAddr,
    needed: Needed,
    devices: &[Device],
    node_ips: (Option<IpAddr>, Option<IpAddr>),
) -> Result<Found, DerivationFailure> {
    let dev = devices
        .iter()
        .filter(|d| d.has_address(ip))
        .min_by_key(|d| d.index)
        .ok_or(DerivationFailure::NoDeviceWithAddress(ip))?;
    let mut found = Found { v4: None, v6: None };
    match ip {
        IpAddr::V4(a) => {
            found.v4 = needed.v4.then_some(a);
            if needed.v6 {
                found.v6 = v6_of(dev.primary(Family::V6, node_ips.1));
            }
        }
        IpAddr::V6(a) => {
            found.v6 = needed.v6.then_some(a);
            if needed.v4 {
                found.v4 = v4_of(dev.primary(Family::V4, node_ips.0));
            }
        }
    }
    Ok(found)
}

fn by_default_route(
    needed: Needed,
    devices: &[Device],
    ifindex: &mut u32,
) -> Result<Found, DerivationFailure> {
    let route_dev = |fam: Families| devices.iter().find(|d| d.default_route.contains(fam));
    let mut found = Found { v4: None, v6: None };
    let mut v4_dev = None;
    if needed.v4 {
        let dev = route_dev(Families::IPV4).ok_or(DerivationFailure::NoDefaultRoute(Family::V4))?;
        *ifindex = dev.index;
        v4_dev = Some(dev);
        found.v4 =
            Some(
                v4_of(dev.first(Family::V4)).ok_or_else(|| DerivationFailure::NoAddress {
                    device: dev.name.clone(),
                    family: Family::V4,
                })?,
            );
    }
    if needed.v6 {
        let dev = route_dev(Families::IPV6).ok_or(DerivationFailure::NoDefaultRoute(Family::V6))?;
        match v4_dev {
            Some(v4) if v4.index != dev.index => {
                return Err(DerivationFailure::DefaultRoutesDiffer);
            }
            Some(_) => {}
            None => *ifindex = dev.index,
        }
        found.v6 =
            Some(
                v6_of(dev.first(Family::V6)).ok_or_else(|| DerivationFailure::NoAddress {
                    device: dev.name.clone(),
                    family: Family::V6,
                })?,
            );
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
