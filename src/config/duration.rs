//! Human durations ("7m", "1s", "1h30m") as the config file writes them.
//!
//! Operators copy these from the original stack's parameters (minutes, hours), so the
//! format is a sum of `<number><unit>` terms with units ms, s, m, h, d. A bare number is
//! rejected: "7" could mean seconds or minutes, and guessing wrong costs money.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A config duration; keeps the text the operator wrote for messages and `/status`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Builds one from whole seconds (used for defaults).
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    /// The duration in milliseconds, the unit every timestamp in the daemon uses.
    pub fn as_millis(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for HumanDuration {
    /// Prints the shortest exact form ("7m", "1h30m", "1500ms").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let mut secs = ms / 1000;
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

/// Why a duration string was refused; the message is shown to the operator as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {why} (write it like \"30s\", \"7m\", \"8h\" or \"1h30m\")")]
pub struct DurationError {
    text: String,
    why: &'static str,
}

/// Parses `"1h30m"`-style text. Pure and total: any input gives Ok or a DurationError.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError { text: text.to_owned(), why };
    let s = text.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let size: u128 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" if tail.is_empty() => return Err(err("a number needs a unit (ms, s, m, h or d)")),
            "" => return Err(err("unexpected character after a number")),
            _ => return Err(err("unknown unit (use ms, s, m, h or d)")),
        };
        let n: u128 = num.parse().map_err(|_| err("number too large"))?;
        total_ms = n
            .checked_mul(size)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| err("number too large"))?;
        rest = tail;
    }
    let ms = u64::try_from(total_ms).map_err(|_| err("number too large"))?;
    // A year is already absurd for any interval here; refusing more keeps every
    // millisecond timestamp computation far from overflow.
    if ms > 366 * 86_400_000 {
        return Err(err("longer than a year"));
    }
    Ok(Duration::from_millis(ms))
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map(Self).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_operators_write() {
        let cases = [("1s", 1_000), ("7m", 420_000), ("8h", 28_800_000), ("1h30m", 5_400_000), ("250ms", 250), ("2d", 172_800_000)];
        for (text, ms) in cases {
            assert_eq!(parse_duration(text).unwrap(), Duration::from_millis(ms), "{text}");
        }
    }

    #[test]
    fn refuses_ambiguous_or_broken_text() {
        for text in ["", "7", "7x", "m", "1.5m", "-1s", "1s2", "99999999999999999999999d", "400d"] {
            assert!(parse_duration(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn prints_back_what_was_written() {
        for text in ["1s", "7m", "8h", "1h30m", "1500ms", "0s"] {
            assert_eq!(HumanDuration(parse_duration(text).unwrap()).to_string(), text);
        }
    }
}
