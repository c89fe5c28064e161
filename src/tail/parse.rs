//! Strict parser for one Route53 query-log line.
//!
//! `1.0 2017-12-13T08:15:50.235Z Z123412341234 example.com A NOERROR UDP FRA6 192.168.1.1 -`
//! (version, timestamp, zone id, query name, type, response code, protocol, edge
//! location, resolver IP, EDNS client subnet). Anything else is an error, counted and
//! skipped by the tail: a lenient parser is how a stray log line would wake a leaf.

use std::net::IpAddr;

use crate::clock::{days_from_civil, Timestamp};

/// One parsed query. Borrowed from the line: the tail only keeps what it acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    /// When the edge location answered (the line's own time, not delivery time).
    pub at: Timestamp,
    /// Hosted zone that logged it.
    pub zone_id: &'a str,
    /// Query name, lower-cased by [`Query::name`]; resolvers randomise case (0x20).
    pub raw_name: &'a str,
    /// Record type asked for (`A`, `AAAA`, `SRV`, ...).
    pub qtype: &'a str,
    /// Edge location, kept for logs.
    pub edge: &'a str,
}

impl Query<'_> {
    /// The query name lower-cased and without a trailing dot, comparable with a leaf's domain.
    pub fn name(&self) -> String {
        self.raw_name.strip_suffix('.').unwrap_or(self.raw_name).to_ascii_lowercase()
    }
}

/// Why a line is not a Route53 query-log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not the ten space-separated fields of the format.
    #[error("expected 10 space-separated fields, found {0}")]
    FieldCount(usize),
    /// Only format version 1.0 exists; another version may mean other fields.
    #[error("unknown log format version {0:?}")]
    Version(String),
    /// The timestamp is not `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
    #[error("bad timestamp {0:?}")]
    Timestamp(String),
    /// A field has characters the format never writes there.
    #[error("bad {field} {value:?}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Its text.
        value: String,
    },
}

/// Parses one line (a trailing newline is allowed).
pub fn parse(line: &str) -> Result<Query<'_>, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.len() != 10 || fields.iter().any(|f| f.is_empty()) {
        return Err(ParseError::FieldCount(line.split_whitespace().count()));
    }
    let [version, ts, zone_id, name, qtype, rcode, protocol, edge, resolver, subnet] = fields[..] else {
        return Err(ParseError::FieldCount(fields.len()));
    };
    if version != "1.0" {
        return Err(ParseError::Version(version.to_owned()));
    }
    let at = parse_timestamp(ts).ok_or_else(|| ParseError::Timestamp(ts.to_owned()))?;
    let bad = |field, value: &str| ParseError::Field { field, value: value.to_owned() };
    if !zone_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad("zone id", zone_id));
    }
    if name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("query name", name));
    }
    if qtype.len() > 16 || !qtype.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return Err(bad("query type", qtype));
    }
    if !rcode.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return Err(bad("response code", rcode));
    }
    if protocol != "UDP" && protocol != "TCP" {
        return Err(bad("protocol", protocol));
    }
    if !edge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(bad("edge location", edge));
    }
    if resolver.parse::<IpAddr>().is_err() {
        return Err(bad("resolver ip", resolver));
    }
    if subnet != "-" && !is_subnet(subnet) {
        return Err(bad("edns client subnet", subnet));
    }
    Ok(Query { at, zone_id, raw_name: name, qtype, edge })
}

fn is_subnet(text: &str) -> bool {
    let Some((ip, len)) = text.split_once('/') else { return false };
    ip.parse::<IpAddr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 128)
}

/// Parses `2017-12-13T08:15:50.235Z` (fraction optional, up to 9 digits) strictly.
pub fn parse_timestamp(ts: &str) -> Option<Timestamp> {
    let b = ts.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = ts.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    let (y, mo, d, h, mi, s) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = &ts[19..ts.len() - 1];
    let ms = match frac.strip_prefix('.') {
        None if frac.is_empty() => 0,
        Some(digits) if (1..=9).contains(&digits.len()) && digits.bytes().all(|c| c.is_ascii_digit()) => {
            let padded = format!("{digits:0<3}");
            padded[..3].parse::<i64>().ok()?
        }
        _ => return None,
    };
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > days_in_month || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    Some(Timestamp(secs * 1000 + ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "1.0 2017-12-13T08:15:50.235Z Z123412341234 example.com A NOERROR UDP FRA6 192.168.1.1 -";

    #[test]
    fn parses_the_documented_example() {
        let q = parse(LINE).unwrap();
        assert_eq!(q.at.rfc3339(), "2017-12-13T08:15:50.235Z");
        assert_eq!((q.zone_id, q.name().as_str(), q.qtype, q.edge), ("Z123412341234", "example.com", "A", "FRA6"));
    }

    #[test]
    fn accepts_ipv6_resolvers_subnets_and_mixed_case_names() {
        let q = parse("1.0 2024-02-29T23:59:59Z Z1 MiNeCrAfT.Example.COM. AAAA NXDOMAIN TCP IAD89-C1 2001:db8::1 203.0.113.0/24").unwrap();
        assert_eq!(q.name(), "minecraft.example.com");
        assert_eq!(q.qtype, "AAAA");
    }

    #[test]
    fn refuses_lines_that_are_not_query_logs() {
        let bad = [
            "",
            "hello world",
            "1.0 2017-12-13T08:15:50.235Z Z1 example.com A NOERROR UDP FRA6 192.168.1.1",
            "1.0 2017-12-13T08:15:50.235Z Z1 example.com A NOERROR UDP FRA6 192.168.1.1 - extra",
            "1.0  2017-12-13T08:15:50.235Z Z1 example.com A NOERROR UDP FRA6 192.168.1.1 -",
            "2.0 2017-12-13T08:15:50.235Z Z1 example.com A NOERROR UDP FRA6 192.168.1.1 -",
            "1.0 2017-13-13T08:15:50.235Z Z1 example.com A NOERROR UDP FRA6 192.168.1.1 -",
            "1.0 2017-02-30T08:15:50Z Z1 example.com A NOERROR UDP FRA6 192.168.1.1 -",
            "1.0 2017-12-13 08:15:50Z Z1 example.com A NOERROR UDP FRA6 192.168.1.1 -",
            "1.0 2017-12-13T08:15:50.235Z Z1 example.com a NOERROR UDP FRA6 192.168.1.1 -",
            "1.0 2017-12-13T08:15:50.235Z Z1 example.com A NOERROR SCTP FRA6 192.168.1.1 -",
            "1.0 2017-12-13T08:15:50.235Z Z1 example.com A NOERROR UDP FRA6 not-an-ip -",
            "1.0 2017-12-13T08:15:50.235Z Z1 example.com A NOERROR UDP FRA6 192.168.1.1 10.0.0.0/999",
            "1.0 2017-12-13T08:15:50.235Z Z-1 example.com A NOERROR UDP FRA6 192.168.1.1 -",
            "1.0\t2017-12-13T08:15:50.235Z Z1 example.com A NOERROR UDP FRA6 192.168.1.1 -",
        ];
        for line in bad {
            assert!(parse(line).is_err(), "{line:?} should be refused");
        }
    }

    #[test]
    fn timestamps_keep_millisecond_precision() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.5Z"), Some(Timestamp(1500)));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.123456789Z"), Some(Timestamp(1123)));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01.Z"), None);
        assert_eq!(parse_timestamp("1970-01-01T00:00:01+00:00"), None);
    }
}
