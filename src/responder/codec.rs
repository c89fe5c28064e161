//! The Minecraft Java edition packets the responder speaks, decoded from untrusted bytes:
//! pure functions over a buffer, so they are fuzzed like the query-log parser.
//!
//! A packet is `VarInt length, VarInt id, data`. Before a leaf's server runs, only the
//! first exchange matters: the handshake (`id 0`: protocol version, server address, port,
//! next state), then either a status request (`0`) and a ping (`1`, 8 bytes echoed back),
//! or a login start (`0`, the player's name), answered with a disconnect.

/// The largest packet the responder reads: a handshake is at most about 270 bytes (an
/// address of 255 characters), a login start about 40 (Forge adds markers to both).
pub const MAX_PACKET: usize = 1024;

/// Why bytes are not a packet the responder accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// A VarInt longer than 5 bytes or out of range.
    #[error("bad VarInt")]
    VarInt,
    /// A length above [`MAX_PACKET`] or below 1.
    #[error("packet length {0} out of range")]
    Length(i64),
    /// A string longer than its cap or not UTF-8.
    #[error("bad string")]
    Text,
    /// The packet ends before its fields do.
    #[error("truncated packet")]
    Truncated,
    /// A packet id or state the exchange does not expect.
    #[error("unexpected packet {0}")]
    Unexpected(i32),
    /// The legacy (pre-1.7) server-list ping, which starts with 0xFE.
    #[error("legacy ping")]
    Legacy,
}

/// Reads a VarInt at the start of `buf`: Ok(None) when more bytes are needed.
pub fn varint(buf: &[u8]) -> Result<Option<(i32, usize)>, Malformed> {
    let mut value: u32 = 0;
    for (i, byte) in buf.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((i32::from_ne_bytes(value.to_ne_bytes()), i + 1)));
        }
    }
    if buf.len() >= 5 { Err(Malformed::VarInt) } else { Ok(None) }
}

/// Appends `value` as a VarInt.
pub fn put_varint(out: &mut Vec<u8>, value: i32) {
    let mut v = u32::from_ne_bytes(value.to_ne_bytes());
    loop {
        let byte = u8::try_from(v & 0x7F).unwrap_or(0);
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// One decoded packet: its id, its payload, and how many bytes of the buffer it used.
pub type Packet<'a> = (i32, &'a [u8], usize);

/// One whole packet at the start of `buf`, or Ok(None) when more bytes are needed.
pub fn packet(buf: &[u8]) -> Result<Option<Packet<'_>>, Malformed> {
    let Some((len, head)) = varint(buf)? else { return Ok(None) };
    let len = usize::try_from(len).ok().filter(|l| (1..=MAX_PACKET).contains(l)).ok_or(Malformed::Length(i64::from(len)))?;
    let Some(body) = buf.get(head..head + len) else { return Ok(None) };
    let Some((id, id_len)) = varint(body)? else { return Err(Malformed::Truncated) };
    Ok(Some((id, &body[id_len..], head + len)))
}

/// A field reader over a packet's payload.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<i32, Malformed> {
        let (v, n) = varint(self.0)?.ok_or(Malformed::Truncated)?;
        self.0 = &self.0[n..];
        Ok(v)
    }

    fn string(&mut self, max_chars: usize) -> Result<&'a str, Malformed> {
        let len = usize::try_from(self.varint()?).map_err(|_| Malformed::Text)?;
        if len > max_chars * 4 {
            return Err(Malformed::Text);
        }
        let bytes = self.0.get(..len).ok_or(Malformed::Truncated)?;
        self.0 = &self.0[len..];
        let text = std::str::from_utf8(bytes).map_err(|_| Malformed::Text)?;
        if text.chars().count() > max_chars { Err(Malformed::Text) } else { Ok(text) }
    }

    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.0.get(..2).ok_or(Malformed::Truncated)?;
        self.0 = &self.0[2..];
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Whether a connection's first byte is the legacy (pre-1.7) server-list ping's: only
/// the first byte of a connection means that (a later length byte may well be 0xFE).
pub fn legacy(first: u8) -> bool {
    first == 0xFE
}

/// What the client said in its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Its protocol version (echoed in the status so the list shows it compatible).
    pub protocol: i32,
    /// The name it connected to, normalised: lower case, without a trailing dot or
    /// Forge's `\0FML...` marker. This is how one port serves many leafs.
    pub address: String,
    /// 1: status (a server-list ping), 2: login, 3: transfer (a login too).
    pub next: i32,
}

/// Parses a handshake packet's payload (packet id 0).
pub fn handshake(id: i32, payload: &[u8]) -> Result<Handshake, Malformed> {
    if id != 0 {
        return Err(Malformed::Unexpected(id));
    }
    let mut f = Fields(payload);
    let protocol = f.varint()?;
    let raw = f.string(255)?;
    let _port = f.u16()?;
    let next = f.varint()?;
    if !(1..=3).contains(&next) {
        return Err(Malformed::Unexpected(next));
    }
    let address = raw.split('\0').next().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase();
    Ok(Handshake { protocol, address, next })
}

/// The player's name from a login start packet (id 0); the rest (a UUID in newer
/// versions) is not needed.
pub fn login_name(id: i32, payload: &[u8]) -> Result<String, Malformed> {
    if id != 0 {
        return Err(Malformed::Unexpected(id));
    }
    let name = Fields(payload).string(16)?;
    // As the game allows: it goes into alerts and logs, so nothing else gets through.
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Malformed::Text);
    }
    Ok(name.to_owned())
}

/// A packet with `id` and `payload`, length-prefixed.
pub fn frame(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload.len() + 5);
    put_varint(&mut body, id);
    body.extend_from_slice(payload);
    let mut out = Vec::with_capacity(body.len() + 5);
    put_varint(&mut out, i32::try_from(body.len()).unwrap_or(i32::MAX));
    out.extend_from_slice(&body);
    out
}

/// A packet whose payload is one string (status response, login disconnect).
pub fn string_packet(id: i32, text: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(text.len() + 5);
    put_varint(&mut payload, i32::try_from(text.len()).unwrap_or(i32::MAX));
    payload.extend_from_slice(text.as_bytes());
    frame(id, &payload)
}

/// The status response: version (named after the leaf's state, with the client's own
/// protocol so the list shows no version warning), no players, the MOTD.
pub fn status_response(protocol: i32, version: &str, motd: &str) -> Vec<u8> {
    let json = serde_json::json!({
        "version": {"name": version, "protocol": protocol},
        "players": {"max": 0, "online": 0},
        "description": {"text": motd},
    });
    string_packet(0, &json.to_string())
}

/// The login disconnect: a JSON text component.
pub fn disconnect(text: &str) -> Vec<u8> {
    string_packet(0, &serde_json::json!({ "text": text }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake_bytes(address: &str, next: i32) -> Vec<u8> {
        let mut p = Vec::new();
        put_varint(&mut p, 765);
        put_varint(&mut p, i32::try_from(address.len()).unwrap());
        p.extend_from_slice(address.as_bytes());
        p.extend_from_slice(&25565u16.to_be_bytes());
        put_varint(&mut p, next);
        frame(0, &p)
    }

    #[test]
    fn varints_round_trip_including_negative_ones() {
        for v in [0, 1, 127, 128, 255, 25565, 2_097_151, i32::MAX, -1, i32::MIN] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(varint(&b), Ok(Some((v, b.len()))), "{v}");
        }
        assert_eq!(varint(&[0x80, 0x80]), Ok(None), "needs more bytes");
        assert_eq!(varint(&[0xFF; 6]), Err(Malformed::VarInt));
    }

    #[test]
    fn a_handshake_names_the_leaf_whatever_the_client_adds() {
        let bytes = handshake_bytes("MC.Example.com.\0FML3\0", 2);
        let (id, payload, used) = packet(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(handshake(id, payload), Ok(Handshake { protocol: 765, address: "mc.example.com".into(), next: 2 }));
        assert_eq!(packet(&bytes[..bytes.len() - 1]), Ok(None), "a partial packet waits for more");
    }

    #[test]
    fn hostile_packets_are_refused_not_buffered() {
        let mut huge = Vec::new();
        put_varint(&mut huge, 1_000_000);
        assert_eq!(packet(&huge), Err(Malformed::Length(1_000_000)), "no megabyte is waited for");
        assert!(legacy(0xFE));
        let mut long = Vec::new();
        put_varint(&mut long, 254);
        assert_eq!(long[0], 0xFE, "a later packet of 254 bytes starts like a legacy ping");
        assert_eq!(packet(&long), Ok(None), "and is read as a length");
        assert_eq!(login_name(0, &string_packet(0, "Alex\n[ERROR] forged")[2..]), Err(Malformed::Text), "no control characters reach alerts");
        let long = "a".repeat(300);
        let bytes = handshake_bytes(&long, 1);
        let (id, payload, _) = packet(&bytes).unwrap().unwrap();
        assert_eq!(handshake(id, payload), Err(Malformed::Text));
        let bytes = handshake_bytes("mc.example.com", 7);
        let (id, payload, _) = packet(&bytes).unwrap().unwrap();
        assert_eq!(handshake(id, payload), Err(Malformed::Unexpected(7)));
    }
}
