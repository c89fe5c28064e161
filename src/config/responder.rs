//! The responder's keys: `[daemon.responder]` (where the daemon answers for sleeping
//! leafs) and `[leaf.responder]` (how it answers for one leaf).

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Deserializer, Serialize};

use super::At;

/// `[daemon.responder]`: while a leaf sleeps its A record points here and the daemon
/// answers: a server-list ping sees "asleep", a login (or a connection) wakes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResponderConfig {
    /// Address the listeners bind (`"0.0.0.0"` for every interface).
    pub listen: At<IpAddr>,
    /// The daemon host's public address: the default `idle_ip` of leafs with a responder.
    pub public_ip: Option<Ipv4Addr>,
    /// Connections held at once, all listeners together.
    #[serde(default = "default_max_connections")]
    pub max_connections: At<i64>,
    /// New connections (and datagrams) one source address may open per minute.
    #[serde(default = "default_per_source")]
    pub per_source_per_minute: At<i64>,
}

fn default_max_connections() -> At<i64> {
    At::new(256)
}

fn default_per_source() -> At<i64> {
    At::new(20)
}

impl ResponderConfig {
    /// Connections held at once (validated 1..=65536).
    pub fn max_connections(&self) -> usize {
        usize::try_from(*self.max_connections).unwrap_or(256)
    }

    /// Connections per source per minute (validated 1..=100000).
    pub fn per_source_per_minute(&self) -> u32 {
        u32::try_from(*self.per_source_per_minute).unwrap_or(20)
    }
}

/// What the responder speaks on a leaf's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Minecraft Java edition: one port for many leafs, routed by the handshake's address.
    Minecraft,
    /// Any TCP service: the first connection wakes the leaf.
    Tcp,
    /// Any UDP service: the first datagram wakes the leaf; nothing is ever sent back.
    Udp,
}

/// What wakes a leaf through the responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeOn {
    /// A Minecraft login (a server-list ping never wakes).
    Login,
    /// Any connection or datagram.
    Connect,
}

/// `[leaf.responder]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeafResponder {
    /// `minecraft`, `tcp` or `udp`.
    pub protocol: At<Protocol>,
    /// The port players use (default 25565 for minecraft; required otherwise).
    pub port: Option<At<i64>>,
    /// `login` (minecraft's default) or `connect`.
    pub wake_on: Option<At<WakeOn>>,
    /// Only these sources are answered (and may wake the leaf); empty: everyone.
    #[serde(default)]
    pub allow: Vec<Cidr>,
    /// The server-list text while the leaf sleeps.
    pub motd_asleep: Option<String>,
    /// The server-list text while it starts (an estimate of when follows).
    pub motd_starting: Option<String>,
}

impl LeafResponder {
    /// The port (validated).
    pub fn port(&self) -> u16 {
        self.port.as_ref().and_then(|p| u16::try_from(**p).ok()).unwrap_or(25565)
    }

    /// What wakes the leaf.
    pub fn wake_on(&self) -> WakeOn {
        match (self.wake_on.as_deref(), *self.protocol) {
            (Some(w), _) => *w,
            (None, Protocol::Minecraft) => WakeOn::Login,
            (None, _) => WakeOn::Connect,
        }
    }

    /// Whether `ip` may be answered.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// An address block, `203.0.113.0/24` or `2001:db8::/32` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid address block {text:?}: expected 203.0.113.0/24 or 2001:db8::/32");
        let (addr, bits) = text.split_once('/').map_or((text, None), |(a, b)| (a, Some(b)));
        let net: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.trim().parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { net, bits })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    a[..whole] == b[..whole] && (rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0)
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> Self {
        format!("{}/{}", c.net, c.bits)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cidr::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_blocks_contain_what_they_should() {
        let lan = Cidr::parse("192.168.1.0/24").unwrap();
        assert!(lan.contains("192.168.1.77".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        assert!(lan.contains("::ffff:192.168.1.9".parse().unwrap()), "an IPv4 client on a dual-stack socket");
        assert!(Cidr::parse("10.0.0.0/12").unwrap().contains("10.15.255.255".parse().unwrap()));
        assert!(!Cidr::parse("10.0.0.0/12").unwrap().contains("10.16.0.0".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains("2001:db8:1::5".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "hello", "10.0.0/8", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
