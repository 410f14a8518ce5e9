//! What a child in `egress` mode may reach: host names, ports, CIDRs, and
//! the address classes that are refused whatever the name (pure).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address block of `allowCidrs` (`10.1.0.0/16`, `fd00::/8`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits cleared).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this block (an IPv4-mapped IPv6 address
    /// counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR (e.g. 10.0.0.0/8)"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        let addr = match ip {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address as IPv4; anything else as is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The class of an address the proxy never connects to (unless a CIDR of
/// `allowCidrs` holds it), as the refusal reason names it; `None` for a
/// public address.
pub fn blocked_class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(a) => {
            let [o0, o1, ..] = a.octets();
            if a == Ipv4Addr::new(169, 254, 169, 254) {
                Some("metadata_address")
            } else if a.is_loopback() {
                Some("loopback_address")
            } else if a.is_private() {
                Some("private_address")
            } else if a.is_link_local() {
                Some("link_local_address")
            } else if a.is_multicast() {
                Some("multicast_address")
            } else if o0 == 100 && (64..128).contains(&o1) {
                Some("cgnat_address")
            } else if o0 == 0 || o0 >= 240 || a.is_documentation() || (o0 == 198 && o1 & 0xfe == 18)
            {
                // 0/8, 240/4 (and broadcast), documentation, benchmarking.
                Some("reserved_address")
            } else if o0 == 192 && o1 == 0 && a.octets()[2] == 0 {
                // 192.0.0.0/24: IETF protocol assignments.
                Some("reserved_address")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            if a.is_loopback() {
                Some("loopback_address")
            } else if a.is_unspecified() {
                Some("reserved_address")
            } else if seg[0] == 0xfd00 && seg[1] == 0x0ec2 && a.segments()[7] == 0x254 {
                // AWS's IPv6 instance metadata (fd00:ec2::254).
                Some("metadata_address")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("private_address")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link_local_address")
            } else if a.is_multicast() {
                Some("multicast_address")
            } else if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4] {
                // NAT64 (64:ff9b::/96): the IPv4 address it carries.
                let v4 = Ipv4Addr::from((u32::from(seg[6]) << 16) | u32::from(seg[7]));
                blocked_class(IpAddr::V4(v4))
            } else if seg[0] == 0x2001 && seg[1] == 0x0db8 {
                Some("reserved_address")
            } else {
                None
            }
        }
    }
}

/// One child's egress rules (`sandbox.network` in mode `egress`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `allowHosts`, lowercased: exact names (or literal IPs), or `*.suffix`.
    pub hosts: Vec<String>,
    /// `allowPorts` (default `[443]`).
    pub ports: Vec<u16>,
    /// `allowCidrs`: addresses reachable even though their class is refused.
    pub cidrs: Vec<Cidr>,
    /// `publishTcp`: host addresses whose connections are forwarded to the
    /// same port on `127.0.0.1` inside the child's namespace.
    pub publish: Vec<std::net::SocketAddr>,
}

/// Why a request is refused before any address is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The host is not in `allowHosts`.
    HostNotAllowed,
    /// The port is not in `allowPorts`.
    PortNotAllowed,
    /// A literal IP address that `allowHosts` does not list.
    LiteralIp,
}

impl Refusal {
    /// The reason as audit records and counters name it.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::HostNotAllowed => "host_not_allowed",
            Refusal::PortNotAllowed => "port_not_allowed",
            Refusal::LiteralIp => "literal_ip",
        }
    }
}

/// `host` lowercased, without a trailing dot or IPv6 brackets.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    match h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) => inner.to_string(),
        None => h,
    }
}

impl Policy {
    /// Whether `host` (normalized) matches an `allowHosts` entry: exactly,
    /// or for `*.example.com` any name ending in `.example.com` (not
    /// `example.com` itself).
    pub fn host_allowed(&self, host: &str) -> bool {
        self.hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                None => pattern == host,
            })
    }

    /// The checks that need no lookup: the port, the name, a literal IP.
    pub fn check(&self, host: &str, port: u16) -> Result<(), Refusal> {
        let literal = host.parse::<IpAddr>().is_ok();
        if !self.host_allowed(host) {
            return Err(if literal {
                Refusal::LiteralIp
            } else {
                Refusal::HostNotAllowed
            });
        }
        if !self.ports.contains(&port) {
            return Err(Refusal::PortNotAllowed);
        }
        Ok(())
    }

    /// Why the proxy must not connect to `ip` (its class), or `None`.
    pub fn address_refused(&self, ip: IpAddr) -> Option<&'static str> {
        let class = blocked_class(ip)?;
        (!self.cidrs.iter().any(|c| c.contains(ip))).then_some(class)
    }
}
