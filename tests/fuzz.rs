//! Property-based fuzzing of the parsers that read outside input: the Route53 query-log
//! line parser, the config loader, and the responder's Minecraft packet decoder (bytes
//! from anyone on the internet). cargo-fuzz needs a nightly toolchain,
//! which these machines cannot fetch, so proptest mutates the committed seed corpus
//! (tests/corpus/) and also feeds arbitrary text. The test command runs a bounded number
//! of cases; `CM_FUZZ_CASES=200000 cargo test --test fuzz` runs longer.

use std::path::Path;

use container_manager::config::Config;
use container_manager::responder::codec;
use container_manager::tail::parse::parse;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("CM_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000)
}

fn lines() -> Vec<&'static str> {
    include_str!("corpus/query-log.txt").lines().collect()
}

fn configs() -> Vec<&'static str> {
    vec![include_str!("corpus/config/minimal.toml"), include_str!("corpus/config/several.toml"), include_str!("../config/leafs.toml")]
}

/// A real client's first bytes: a handshake for `mc.example.com` (next state 2), then a
/// login start for `Alex`.
fn minecraft_seed() -> Vec<u8> {
    let mut hello = Vec::new();
    codec::put_varint(&mut hello, 765);
    codec::put_varint(&mut hello, 14);
    hello.extend_from_slice(b"mc.example.com");
    hello.extend_from_slice(&25565u16.to_be_bytes());
    codec::put_varint(&mut hello, 2);
    let mut bytes = codec::frame(0, &hello);
    bytes.extend(codec::string_packet(0, "Alex"));
    bytes
}

/// Decodes every packet of `bytes` as the responder would, however broken.
fn decode_all(bytes: &[u8]) {
    let mut rest = bytes;
    while let Ok(Some((id, payload, used))) = codec::packet(rest) {
        assert!(used > 0 && used <= rest.len() && payload.len() <= codec::MAX_PACKET);
        let _ = codec::handshake(id, payload);
        let _ = codec::login_name(id, payload);
        rest = &rest[used..];
    }
}

/// Applies byte edits (replace, insert, delete, duplicate a span) to a seed.
fn mutate(seed: &str, edits: &[(u8, usize, u8)]) -> String {
    String::from_utf8_lossy(&mutate_bytes(seed.as_bytes(), edits)).into_owned()
}

fn mutate_bytes(seed: &[u8], edits: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for &(op, at, byte) in edits {
        let at = if bytes.is_empty() { 0 } else { at % bytes.len() };
        match op % 4 {
            0 if !bytes.is_empty() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            2 if !bytes.is_empty() => {
                bytes.remove(at);
            }
            _ => {
                let end = (at + usize::from(byte % 16)).min(bytes.len());
                let span = bytes[at..end].to_vec();
                bytes.splice(at..at, span);
            }
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_line_parser_survives_mutated_lines(seed in 0usize..8, edits in edits()) {
        let seeds = lines();
        let line = mutate(seeds[seed % seeds.len()], &edits);
        if let Ok(q) = parse(&line) {
            // Whatever parses is a full, well-formed line.
            let fields: Vec<&str> = line.trim_end_matches(['\r', '\n']).split(' ').collect();
            prop_assert_eq!(fields.len(), 10);
            // Each field is the line's own, in its place: zone, name, type, edge.
            prop_assert_eq!((q.zone_id, q.raw_name, q.qtype, q.edge), (fields[2], fields[3], fields[4], fields[7]));
            prop_assert!(!q.name().bytes().any(|b| b.is_ascii_uppercase()), "compared lower-cased: {}", q.name());
        }
    }

    #[test]
    fn the_line_parser_survives_any_text(line in any::<String>()) {
        let _ = parse(&line);
    }

    #[test]
    fn the_config_loader_survives_mutated_files(seed in 0usize..3, edits in edits()) {
        let seeds = configs();
        let text = mutate(seeds[seed % seeds.len()], &edits);
        if let Err(e) = Config::parse(Path::new("fuzz.toml"), &text) {
            // Every refusal names a place an operator can find.
            let message = e.to_string();
            prop_assert!(message.starts_with("fuzz.toml"), "{}", message);
            if let Some(line) = e.line {
                prop_assert!(line >= 1 && line <= text.lines().count() + 1, "line {} of {}", line, text.lines().count());
            }
        }
    }

    #[test]
    fn the_config_loader_survives_any_text(text in any::<String>()) {
        let _ = Config::parse(Path::new("fuzz.toml"), &text);
    }

    #[test]
    fn the_minecraft_decoder_survives_mutated_packets(edits in edits()) {
        decode_all(&mutate_bytes(&minecraft_seed(), &edits));
    }

    #[test]
    fn the_minecraft_decoder_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_all(&bytes);
    }
}

#[test]
fn the_minecraft_seed_decodes_as_a_login() {
    let bytes = minecraft_seed();
    let (id, payload, used) = codec::packet(&bytes).unwrap().unwrap();
    assert_eq!(codec::handshake(id, payload).unwrap().address, "mc.example.com");
    let (id, payload, _) = codec::packet(&bytes[used..]).unwrap().unwrap();
    assert_eq!(codec::login_name(id, payload).unwrap(), "Alex");
}

#[test]
fn every_seed_line_parses_and_every_seed_config_loads() {
    for line in lines() {
        parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    for text in configs() {
        Config::parse(Path::new("seed.toml"), text).unwrap();
    }
}
