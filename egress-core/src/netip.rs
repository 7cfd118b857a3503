//! Address and prefix parsing with the exact strictness of Go's `net/netip`, which is what
//! Cilium's agent uses (`netip.ParsePrefix` for CIDRs, `netip.ParseAddr` for `egressIP`),
//! and the [`Cidr`] type that keeps a prefix exactly as written (host bits included).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A destination or excluded CIDR exactly as written: the address keeps its host bits
/// (`1.1.1.1/24` stays `1.1.1.1/24`, as Cilium stores it in `daddr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The address as written.
    pub addr: IpAddr,
    /// The prefix length (≤ 32 for IPv4, ≤ 128 for IPv6).
    pub len: u8,
}

impl Cidr {
    /// Builds a prefix; `None` when `len` exceeds the family's width.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        (len <= family_bits(addr)).then_some(Self { addr, len })
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The address with host bits cleared.
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(self.len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(self.len))),
        }
    }

    /// Whether `ip` lies inside this prefix (family must match).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let m = mask_v4(self.len);
                u32::from(a) & m == u32::from(b) & m
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let m = mask_v6(self.len);
                u128::from(a) & m == u128::from(b) & m
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An address given as a value (a lookup's, a typed endpoint's), as every binding reads it
/// (SEMANTICS B.6): an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address, as
/// Go's `netip.Addr.Unmap` and Python's `ipv4_mapped` read it. Text documents keep Cilium's
/// reading instead (Part A: it stays IPv6).
pub fn address_value(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The IPv4 address, if `ip` is one.
pub fn as_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// The IPv6 address, if `ip` is one.
pub fn as_v6(ip: IpAddr) -> Option<Ipv6Addr> {
    match ip {
        IpAddr::V6(a) => Some(a),
        IpAddr::V4(_) => None,
    }
}

/// Bits of the address family (32 or 128).
pub fn family_bits(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// The IPv4 netmask of a prefix length (`len` ≤ 32).
pub fn mask_v4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// The IPv6 netmask of a prefix length (`len` ≤ 128).
pub fn mask_v6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

/// An address as Go's `netip.ParseAddr` returns it: a zone is kept apart, and an
/// IPv4-mapped IPv6 address stays IPv6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAddr {
    /// The address.
    pub addr: IpAddr,
    /// The IPv6 zone after `%`, if any.
    pub zone: Option<String>,
}

/// Why text is not an address or prefix: the message Go's `net/netip` gives.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AddrError {
    /// The text given.
    pub input: String,
    /// Go's message.
    pub message: String,
}

impl From<AddrError> for String {
    fn from(e: AddrError) -> Self {
        e.message
    }
}

/// `netip.ParseAddr`: the address, or the error message Go would give.
pub fn parse_addr(s: &str) -> Result<ParsedAddr, AddrError> {
    parse_addr_text(s).map_err(|message| AddrError {
        input: s.to_owned(),
        message,
    })
}

/// `netip.ParsePrefix`: the prefix, or Go's message (without its `netip.ParsePrefix(...)`
/// wrapper) — e.g. `no '/'`, `bad bits after slash: "024"`, `prefix length out of range`.
pub fn parse_prefix(s: &str) -> Result<Cidr, AddrError> {
    parse_prefix_text(s).map_err(|message| AddrError {
        input: s.to_owned(),
        message,
    })
}

fn parse_addr_text(s: &str) -> Result<ParsedAddr, String> {
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'.' => {
                return parse_ipv4(s, 0, s.len()).map(|a| ParsedAddr {
                    addr: a.into(),
                    zone: None,
                });
            }
            b':' => return parse_ipv6(s),
            b'%' => {
                let _ = i;
                return Err(addr_error(s, "missing IPv6 address", None));
            }
            _ => {}
        }
    }
    Err(addr_error(s, "unable to parse IP", None))
}

fn addr_error(input: &str, msg: &str, at: Option<&str>) -> String {
    let q = crate::field::quote;
    match at {
        Some(at) if !at.is_empty() => {
            format!("ParseAddr({}): {msg} (at {})", q(input), q(at))
        }
        _ => format!("ParseAddr({}): {msg}", q(input)),
    }
}

/// Parses the dotted-quad in `input[start..end]`; errors quote the whole `input` as Go does.
fn parse_ipv4(input: &str, start: usize, end: usize) -> Result<Ipv4Addr, String> {
    let s = &input.as_bytes()[start..end];
    let mut fields = [0u8; 4];
    let (mut val, mut pos, mut digits) = (0u32, 0usize, 0usize);
    for (i, &c) in s.iter().enumerate() {
        if c.is_ascii_digit() {
            if digits == 1 && val == 0 {
                return Err(addr_error(
                    input,
                    "IPv4 field has octet with leading zero",
                    None,
                ));
            }
            val = val * 10 + u32::from(c - b'0');
            digits += 1;
            if val > 255 {
                return Err(addr_error(input, "IPv4 field has value >255", None));
            }
        } else if c == b'.' {
            if i == 0 || i == s.len() - 1 || s[i - 1] == b'.' {
                let at = &input[start + i..end];
                return Err(addr_error(
                    input,
                    "IPv4 field must have at least one digit",
                    Some(at),
                ));
            }
            if pos == 3 {
                return Err(addr_error(input, "IPv4 address too long", None));
            }
            fields[pos] = val as u8;
            pos += 1;
            val = 0;
            digits = 0;
        } else {
            let at = char_boundary_tail(input, start + i, end);
            return Err(addr_error(input, "unexpected character", Some(at)));
        }
    }
    if pos < 3 {
        return Err(addr_error(input, "IPv4 address too short", None));
    }
    fields[3] = val as u8;
    Ok(Ipv4Addr::from(fields))
}

/// `input[from..end]`, moved back to a char boundary (Go slices bytes; we cannot).
fn char_boundary_tail(input: &str, mut from: usize, end: usize) -> &str {
    while from > 0 && !input.is_char_boundary(from) {
        from -= 1;
    }
    &input[from..end]
}

fn parse_ipv6(input: &str) -> Result<ParsedAddr, String> {
    let (body, zone) = match input.find('%') {
        Some(i) => {
            let zone = &input[i + 1..];
            if zone.is_empty() {
                return Err(addr_error(input, "zone must be a non-empty string", None));
            }
            (&input[..i], Some(zone.to_owned()))
        }
        None => (input, None),
    };
    let body_end = body.len();
    let bytes = body.as_bytes();
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    let mut s = 0usize; // cursor into body: the unparsed rest is body[s..]
    if bytes.len() >= 2 && bytes[0] == b':' && bytes[1] == b':' {
        ellipsis = Some(0);
        s = 2;
        if s == bytes.len() {
            return Ok(ParsedAddr {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                zone,
            });
        }
    }
    let rest = |from: usize| char_boundary_tail(body, from, body_end);
    let mut i = 0usize;
    while i < 16 {
        let mut off = 0usize;
        let mut acc = 0u32;
        while s + off < bytes.len() {
            let c = bytes[s + off];
            let digit = match c {
                b'0'..=b'9' => u32::from(c - b'0'),
                b'a'..=b'f' => u32::from(c - b'a' + 10),
                b'A'..=b'F' => u32::from(c - b'A' + 10),
                _ => break,
            };
            acc = (acc << 4) + digit;
            if off > 3 {
                return Err(addr_error(
                    input,
                    "each group must have 4 or less digits",
                    Some(rest(s)),
                ));
            }
            if acc > u32::from(u16::MAX) {
                return Err(addr_error(
                    input,
                    "IPv6 field has value >=2^16",
                    Some(rest(s)),
                ));
            }
            off += 1;
        }
        if off == 0 {
            return Err(addr_error(
                input,
                "each colon-separated field must have at least one digit",
                Some(rest(s)),
            ));
        }
        if s + off < bytes.len() && bytes[s + off] == b'.' {
            if ellipsis.is_none() && i != 12 {
                return Err(addr_error(
                    input,
                    "embedded IPv4 address must replace the final 2 fields of the address",
                    Some(rest(s)),
                ));
            }
            if i + 4 > 16 {
                return Err(addr_error(
                    input,
                    "too many hex fields to fit an embedded IPv4 at the end of the address",
                    Some(rest(s)),
                ));
            }
            let v4 = parse_ipv4(input, s, body_end)?;
            ip[i..i + 4].copy_from_slice(&v4.octets());
            s = bytes.len();
            i += 4;
            break;
        }
        ip[i] = (acc >> 8) as u8;
        ip[i + 1] = acc as u8;
        i += 2;
        s += off;
        if s == bytes.len() {
            break;
        }
        if bytes[s] != b':' {
            return Err(addr_error(
                input,
                "unexpected character, want colon",
                Some(rest(s)),
            ));
        } else if s + 1 == bytes.len() {
            return Err(addr_error(
                input,
                "colon must be followed by more characters",
                Some(rest(s)),
            ));
        }
        s += 1;
        if bytes[s] == b':' {
            if ellipsis.is_some() {
                return Err(addr_error(input, "multiple :: in address", Some(rest(s))));
            }
            ellipsis = Some(i);
            s += 1;
            if s == bytes.len() {
                break;
            }
        }
    }
    if s != bytes.len() {
        return Err(addr_error(
            input,
            "trailing garbage after address",
            Some(rest(s)),
        ));
    }
    if i < 16 {
        let Some(e) = ellipsis else {
            return Err(addr_error(input, "address string too short", None));
        };
        let n = 16 - i;
        for j in (e..i).rev() {
            ip[j + n] = ip[j];
        }
        ip[e..e + n].fill(0);
    } else if ellipsis.is_some() {
        return Err(addr_error(
            input,
            "the :: must expand to at least one field of zeros",
            Some(rest(s)),
        ));
    }
    Ok(ParsedAddr {
        addr: IpAddr::V6(Ipv6Addr::from(ip)),
        zone,
    })
}

fn parse_prefix_text(s: &str) -> Result<Cidr, String> {
    let Some(slash) = s.rfind('/') else {
        return Err("no '/'".to_owned());
    };
    let addr = parse_addr_text(&s[..slash])?;
    if addr.addr.is_ipv6() && addr.zone.is_some() {
        return Err("IPv6 zones cannot be present in a prefix".to_owned());
    }
    let bits = &s[slash + 1..];
    let bad_bits = || format!("bad bits after slash: {}", crate::field::quote(bits));
    let first = bits.as_bytes().first().copied();
    if bits.len() > 1 && !matches!(first, Some(b'1'..=b'9')) {
        return Err(bad_bits());
    }
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_bits());
    }
    // Atoi accepts any in-range decimal; anything that long is out of range anyway.
    let len: u64 = if bits.len() > 4 {
        u64::MAX
    } else {
        bits.parse().map_err(|_| bad_bits())?
    };
    if len > u64::from(family_bits(addr.addr)) {
        return Err("prefix length out of range".to_owned());
    }
    Ok(Cidr {
        addr: addr.addr,
        len: len as u8,
    })
}

/// Whether the CRD's `format: ipv4` accepts `s` (Cilium 1.18 and 1.19): kube-openapi's
/// `isIPv4`, `netutils.ParseIPSloppy(s) != nil && strings.Contains(s, ".")` — Go's
/// `net.ParseIP` that also allows leading zeros in IPv4 fields, so `10.0.0.01` and
/// `::ffff:10.0.0.1` pass and `2001:db8::1` does not.
pub fn is_format_ipv4(s: &str) -> bool {
    fn sloppy_v4(s: &str) -> bool {
        let fields: Vec<&str> = s.split('.').collect();
        fields.len() == 4
            && fields.iter().all(|f| {
                !f.is_empty()
                    && f.bytes().all(|b| b.is_ascii_digit())
                    && f.trim_start_matches('0').len() <= 3
                    && f.parse::<u32>().is_ok_and(|v| v <= 255)
            })
    }
    if !s.contains('.') {
        return false;
    }
    match s.rsplit_once(':') {
        None => sloppy_v4(s),
        // IPv6 with a trailing dotted IPv4 (`::ffff:a.b.c.d`): the IPv6 part as Go parses
        // it, the IPv4 part sloppily.
        Some((head, tail)) => {
            sloppy_v4(tail) && !s.contains('%') && format!("{head}:0:0").parse::<Ipv6Addr>().is_ok()
        }
    }
}

/// Whether the CRD's CEL `isIP` accepts `s`: parsable by `netip.ParseAddr`, at most 39
/// characters, no zone, not IPv4-mapped. Returns the address.
pub fn parse_is_ip(s: &str) -> Option<IpAddr> {
    if s.len() > 39 {
        return None;
    }
    let addr = parse_addr(s).ok()?;
    if addr.zone.is_some() {
        return None;
    }
    match addr.addr {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => None,
        a => Some(a),
    }
}

/// Parses `addr/len` leniently as netlink reports device addresses (canonical text; host
/// bits kept). Returns the address and prefix length.
pub fn parse_interface_address(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 3 {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    (len <= family_bits(addr)).then_some((addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> String {
        parse_prefix(s).unwrap_err().message
    }

    #[test]
    fn prefixes_parse_like_go() {
        assert_eq!(
            parse_prefix("1.1.1.1/24").unwrap().to_string(),
            "1.1.1.1/24"
        );
        assert_eq!(parse_prefix("::/0").unwrap().to_string(), "::/0");
        assert_eq!(parse_prefix("0.0.0.0/0").unwrap().len, 0);
        let mapped = parse_prefix("::ffff:1.2.3.4/120").unwrap();
        assert!(mapped.addr.is_ipv6(), "an IPv4-mapped prefix is IPv6");
        assert_eq!(
            parse_prefix("2001:DB8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
    }

    #[test]
    fn prefix_errors_are_gos() {
        assert_eq!(err("1.2.3.4"), "no '/'");
        assert_eq!(err("1.2.3.4/024"), "bad bits after slash: \"024\"");
        assert_eq!(err("1.2.3.4/+4"), "bad bits after slash: \"+4\"");
        assert_eq!(err("1.2.3.4/-1"), "bad bits after slash: \"-1\"");
        assert_eq!(err("1.2.3.4/"), "bad bits after slash: \"\"");
        assert_eq!(err("1.2.3.4/ 8"), "bad bits after slash: \" 8\"");
        assert_eq!(err("1.2.3.4/a"), "bad bits after slash: \"a\"");
        assert_eq!(err("1.2.3.4/33"), "prefix length out of range");
        assert_eq!(err("::/129"), "prefix length out of range");
        assert_eq!(
            err("1.2.3.4/99999999999999999999"),
            "prefix length out of range"
        );
        assert_eq!(
            err("fe80::1%eth0/64"),
            "IPv6 zones cannot be present in a prefix"
        );
        assert_eq!(
            err("01.2.3.4/8"),
            "ParseAddr(\"01.2.3.4\"): IPv4 field has octet with leading zero"
        );
        assert_eq!(
            err("1.2.3/8"),
            "ParseAddr(\"1.2.3\"): IPv4 address too short"
        );
        assert_eq!(
            err("1.2.3.4.5/8"),
            "ParseAddr(\"1.2.3.4.5\"): IPv4 address too long"
        );
        assert_eq!(
            err("1.2.3.256/8"),
            "ParseAddr(\"1.2.3.256\"): IPv4 field has value >255"
        );
        assert_eq!(
            err("1..3.4/8"),
            "ParseAddr(\"1..3.4\"): IPv4 field must have at least one digit (at \".3.4\")"
        );
        assert_eq!(
            err(" 1.2.3.4/8"),
            "ParseAddr(\" 1.2.3.4\"): unexpected character (at \" 1.2.3.4\")"
        );
        assert_eq!(err("/8"), "ParseAddr(\"\"): unable to parse IP");
        assert_eq!(err("abc/8"), "ParseAddr(\"abc\"): unable to parse IP");
        assert_eq!(err("%x/8"), "ParseAddr(\"%x\"): missing IPv6 address");
        assert_eq!(
            err("1:2:3:4:5:6:7:8:9/64"),
            "ParseAddr(\"1:2:3:4:5:6:7:8:9\"): trailing garbage after address (at \"9\")"
        );
        assert_eq!(
            err("1::2::3/64"),
            "ParseAddr(\"1::2::3\"): multiple :: in address (at \":3\")"
        );
        assert_eq!(
            err("1:2/64"),
            "ParseAddr(\"1:2\"): address string too short"
        );
        assert_eq!(
            err("12345::/64"),
            "ParseAddr(\"12345::\"): each group must have 4 or less digits (at \"12345::\")"
        );
        assert_eq!(
            err("1:2:3:4:5:6:7::8/64"),
            "ParseAddr(\"1:2:3:4:5:6:7::8\"): the :: must expand to at least one field of zeros"
        );
        assert_eq!(
            err("1:/64"),
            "ParseAddr(\"1:\"): colon must be followed by more characters (at \":\")"
        );
        assert_eq!(
            err("1:2:3.4.5.6::/64"),
            "ParseAddr(\"1:2:3.4.5.6::\"): embedded IPv4 address must replace the final 2 fields of the address (at \"3.4.5.6::\")"
        );
    }

    #[test]
    fn embedded_ipv4_and_ellipsis() {
        assert_eq!(
            parse_addr("::ffff:10.0.0.1").unwrap().addr,
            "::ffff:10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            parse_addr("1:2:3:4:5:6:1.2.3.4").unwrap().addr.to_string(),
            "1:2:3:4:5:6:102:304"
        );
        assert_eq!(
            parse_addr("fe80::1%eth0").unwrap().zone.as_deref(),
            Some("eth0")
        );
        assert!(parse_addr("fe80::1%").is_err());
        assert_eq!(
            parse_addr("::").unwrap().addr,
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn is_ip_follows_the_cel_rule() {
        assert!(parse_is_ip("172.22.49.119").is_some());
        assert!(parse_is_ip("2402:4e00:1::3").is_some());
        assert!(
            parse_is_ip("::ffff:1.2.3.4").is_none(),
            "IPv4-mapped refused"
        );
        assert!(parse_is_ip("fe80::1%eth0").is_none(), "zone refused");
        assert!(parse_is_ip("1.2.3.04").is_none());
        assert!(parse_is_ip("").is_none());
    }

    #[test]
    fn is_ip_refuses_more_than_39_characters() {
        // 40 characters of valid IPv6 text (zero-padded groups, embedded IPv4): Go's
        // ParseAddr accepts it, without a zone and not IPv4-mapped, so only the length rule
        // can refuse it.
        let long = "2001:0db8:0000:0000:0000:0000:1.20.30.40";
        assert_eq!(long.len(), 40);
        let parsed = parse_addr(long).unwrap();
        assert_eq!(parsed.zone, None);
        let want: IpAddr = "2001:db8::114:1e28".parse().unwrap();
        assert_eq!(parsed.addr, want);
        assert!(matches!(parsed.addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none()));
        // The same address in shorter spellings passes every rule, up to 39 characters.
        assert_eq!(parse_is_ip("2001:db8::1.20.30.40"), Some(want));
        assert_eq!(parse_is_ip("2001:db8::114:1e28"), Some(want));
        let at_limit = "2001:0db8:0000:0000:0000:0000:0114:1e28";
        assert_eq!(at_limit.len(), 39);
        assert_eq!(parse_is_ip(at_limit), Some(want));
        assert_eq!(parse_is_ip(long), None, "40 characters are one too many");
    }

    #[test]
    fn cidr_helpers() {
        let c = parse_prefix("10.1.2.3/8").unwrap();
        assert_eq!(c.network().to_string(), "10.0.0.0");
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v6(128), u128::MAX);
        assert_eq!(
            parse_interface_address("172.22.49.119/20"),
            Some(("172.22.49.119".parse().unwrap(), 20))
        );
        assert_eq!(parse_interface_address("172.22.49.119"), None);
        assert_eq!(parse_interface_address("fe80::1/129"), None);
    }

    /// kube-openapi's `isIPv4`: Go's `net.ParseIP` with leading zeros allowed, and a dot.
    #[test]
    fn format_ipv4_is_kube_openapis() {
        for ok in [
            "10.0.0.1",
            "10.0.0.01",
            "010.000.000.001",
            "0.0.0.0",
            "255.255.255.255",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "1:2:3:4:5:6:10.0.0.1",
        ] {
            assert!(is_format_ipv4(ok), "{ok}");
        }
        for bad in [
            "",
            "10.0.0",
            "10.0.0.256",
            "10.0.0.1.",
            "1.2.3.4.5",
            "2001:db8::1",
            "::1",
            "eth0",
            " 10.0.0.1",
            "10.0.0.-1",
            "fe80::1%eth0",
            "::ffff:10.0.0.1%eth0",
            "1:2:3:4:5:6:7:10.0.0.1",
        ] {
            assert!(!is_format_ipv4(bad), "{bad}");
        }
    }
}
