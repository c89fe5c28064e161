//! The filter pattern that makes the head read independent of the zone's other traffic.
//!
//! Route53 logs every query that reaches a hosted zone, and a busy zone's other names can
//! outnumber a leaf's queries a thousand to one. A filter pattern lets CloudWatch Logs
//! return only lines that may concern a leaf. Filter patterns match case-sensitively
//! while resolvers randomise the case of query names (DNS 0x20), so a plain term
//! `mc.example.com` would miss `mC.ExAmple.com`: each letter becomes a class (`[mM]`),
//! in CloudWatch's regex syntax (`%...%`, classes, `\.`, top-level `|`).
//!
//! The pattern only narrows what is read: every line that comes back is still parsed
//! and matched exactly by the daemon, and the unfiltered sweep (see `window`) reads every
//! line once more, so a pattern that matched less than intended delays a wake but never
//! loses it.

/// FilterLogEvents refuses longer patterns.
pub const MAX_PATTERN_LEN: usize = 1024;

/// The case-insensitive regex for one domain: letters as classes, dots escaped.
fn domain_regex(domain: &str) -> String {
    let mut out = String::with_capacity(domain.len() * 4);
    for c in domain.chars() {
        match c {
            'a'..='z' | 'A'..='Z' => {
                out.push('[');
                out.push(c.to_ascii_lowercase());
                out.push(c.to_ascii_uppercase());
                out.push(']');
            }
            '.' => out.push_str("\\."),
            // Digits and '-' stand for themselves (validated domains hold nothing else).
            other => out.push(other),
        }
    }
    out
}

/// A pattern matching a line that contains any of `domains` in any letter case, or None
/// when there are none or they do not fit in one pattern (the head then reads unfiltered).
pub fn pattern<'a>(domains: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut parts: Vec<String> = domains.into_iter().map(domain_regex).collect();
    if parts.is_empty() {
        return None;
    }
    parts.sort();
    parts.dedup();
    let text = format!("%{}%", parts.join("|"));
    (text.len() <= MAX_PATTERN_LEN).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matcher for the subset of CloudWatch's regex the pattern uses (classes, `\.`,
    /// literals, top-level `|`, unanchored), written independently of the builder.
    fn matches(pattern: &str, line: &str) -> bool {
        let inner = pattern.strip_prefix('%').and_then(|p| p.strip_suffix('%')).expect("a regex pattern");
        inner.split('|').any(|alt| {
            let mut atoms: Vec<Vec<char>> = Vec::new();
            let mut chars = alt.chars();
            while let Some(c) = chars.next() {
                match c {
                    '[' => atoms.push(chars.by_ref().take_while(|&c| c != ']').collect()),
                    '\\' => atoms.push(vec![chars.next().expect("escaped char")]),
                    c => atoms.push(vec![c]),
                }
            }
            let line: Vec<char> = line.chars().collect();
            (0..=line.len().saturating_sub(atoms.len())).any(|start| atoms.iter().enumerate().all(|(i, set)| line.get(start + i).is_some_and(|c| set.contains(c))))
        })
    }

    #[test]
    fn randomised_case_still_matches_and_other_names_do_not() {
        let p = pattern(["mc.example.com", "valheim-2.example.com"]).unwrap();
        assert!(p.starts_with('%') && p.ends_with('%'));
        for line in ["1.0 T Z1 mC.ExAMple.COM A NOERROR UDP FRA6 1.2.3.4 -", "1.0 T Z1 VALHEIM-2.example.com. A NOERROR UDP FRA6 1.2.3.4 -"] {
            assert!(matches(&p, line), "{p} should match {line}");
        }
        for line in ["1.0 T Z1 www.example.com A NOERROR UDP FRA6 1.2.3.4 -", "1.0 T Z1 mcxexample.com A NOERROR UDP FRA6 1.2.3.4 -"] {
            assert!(!matches(&p, line), "{p} should not match {line}");
        }
    }

    #[test]
    fn only_characters_cloudwatch_accepts_in_a_regex_are_used() {
        let p = pattern(["a-1.b2.example.com"]).unwrap();
        let allowed = |c: char| c.is_ascii_alphanumeric() || ":_#=@/;,-%^$?[]{}|\\*+.".contains(c);
        assert!(p.chars().all(allowed), "{p}");
    }

    #[test]
    fn too_many_names_for_one_pattern_means_no_filter() {
        assert_eq!(pattern(std::iter::empty()), None);
        let many: Vec<String> = (0..200).map(|i| format!("leaf-{i}.example.com")).collect();
        assert_eq!(pattern(many.iter().map(String::as_str)), None);
        let few: Vec<String> = (0..5).map(|i| format!("leaf-{i}.example.com")).collect();
        assert!(pattern(few.iter().map(String::as_str)).is_some_and(|p| p.len() <= MAX_PATTERN_LEN));
    }
}
