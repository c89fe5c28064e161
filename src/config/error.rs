//! Config errors that point at the line and key to fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why the config was refused. Displays as `FILE:LINE: KEY: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, as the operator named it.
    pub path: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Dotted key such as `leaf[0].watchdog.threshold`, when one is known.
    pub key: Option<String>,
    /// What is wrong and, where it helps, how to fix it.
    pub message: String,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl ConfigError {
    /// The file could not be read at all.
    pub fn unreadable(path: &Path, err: &std::io::Error) -> Self {
        Self { path: path.to_owned(), line: None, key: None, message: format!("cannot read config: {err}") }
    }

    /// A parse or type error from the TOML deserializer.
    pub fn from_toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let message = err.message().trim().to_owned();
        let (line, key) = match err.span() {
            Some(span) => (Some(line_of(text, span.start)), key_at(text, span.start, &message)),
            None => (None, None),
        };
        Self { path: path.to_owned(), line, key, message }
    }

    /// A cross-field error found after parsing; an empty span means "no place in the file".
    pub fn at(path: &Path, text: &str, span: Range<usize>, key: String, message: String) -> Self {
        let line = (span != (0..0)).then(|| line_of(text, span.start));
        Self { path: path.to_owned(), line, key: Some(key), message }
    }
}

/// 1-based line number of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Names the key at `offset` as a dotted path (`leaf[1].watchdog.period`), from the
/// table headers above it and the `key =` on its line. Serde's messages name unknown
/// and missing keys already; this adds the key for type and value errors.
fn key_at(text: &str, offset: usize, message: &str) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        let table = table_at(&text[..line_start + line.len()]);
        // Missing keys are reported at the table; the header is the best place we have.
        return match (table, missing_key(message)) {
            (Some(t), Some(k)) => Some(format!("{t}.{k}")),
            (t, k) => t.or(k),
        };
    }
    let table = table_at(&text[..line_start]);
    let local = trimmed
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned())
        .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace));
    match (table, local) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (t, None) => t,
    }
}

/// The table that the line after `before` belongs to, with `[[leaf]]` entries numbered.
fn table_at(before: &str) -> Option<String> {
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    let mut last_array: Option<(String, usize)> = None;
    for line in before.lines() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = counts.entry(name.clone()).or_insert(0);
            current = Some(format!("{name}[{n}]"));
            last_array = Some((name, *n));
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            let name = name.trim();
            current = Some(match &last_array {
                Some((array, n)) if name.starts_with(&format!("{array}.")) => format!("{array}[{n}]{}", &name[array.len()..]),
                _ => name.to_owned(),
            });
        }
    }
    current
}

/// Pulls the key out of serde's "missing field `x`" message.
fn missing_key(message: &str) -> Option<String> {
    let rest = message.split("missing field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}
