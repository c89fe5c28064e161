//! Steering the running daemon: the control token and the CLI's HTTP client.
//!
//! `containerd wake|sleep LEAF` go through the daemon (not straight to AWS) so that its
//! state, alerts and quarantine stay right. They are authenticated with a random token
//! the daemon writes next to its state file, readable only by the daemon's user and
//! root (mode 0600): whoever can read it could also edit the state file.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::config::DaemonConfig;

/// Where the control token lives: beside the state file.
pub fn token_path(daemon: &DaemonConfig) -> PathBuf {
    daemon.state_file.with_file_name("control.token")
}

/// Reads the token, creating it (0600, 256 random bits) if there is none. A token file
/// that another user owns, that others may read or write, or that this daemon did not
/// write (64 hex digits) is never used: whoever planted or read it could steer the
/// daemon. It is moved aside (never deleted) and a fresh private one is written.
pub fn ensure_token(path: &Path) -> std::io::Result<String> {
    match trusted_token(path) {
        Ok(Some(token)) => return Ok(token),
        Ok(None) => {}
        Err(why) => {
            let stamp = crate::clock::now().0;
            let aside = (0..1_000).map(|n| path.with_extension(format!("token.refused-{stamp}-{n}"))).find(|p| !p.exists()).unwrap_or_else(|| path.with_extension(format!("token.refused-{stamp}")));
            std::fs::rename(path, &aside)?;
            tracing::error!(path = %path.display(), moved_to = %aside.display(), why, "control token refused; writing a new one (the CLI reads it from the same place)");
        }
    }
    let mut random = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut random)?;
    let token: String = random.iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(token)
}

/// The token at `path` if it is one the daemon may use; `Ok(None)` if there is none.
fn trusted_token(path: &Path) -> Result<Option<String>, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.file_type().is_file() {
        return Err("it is not a regular file".into());
    }
    if meta.uid() != crate::host::euid() {
        return Err(format!("it is owned by uid {}, not by the daemon's user (uid {})", meta.uid(), crate::host::euid()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!("its mode {:04o} lets other users read or change it (it must be 0600)", meta.mode() & 0o7777));
    }
    let token = std::fs::read_to_string(path).map_err(|e| e.to_string())?.trim().to_owned();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("it does not hold a token this daemon wrote (64 hex digits)".into());
    }
    Ok(Some(token))
}

/// Reads an existing token.
pub fn read_token(path: &Path) -> std::io::Result<String> {
    let token = std::fs::read_to_string(path)?.trim().to_owned();
    if token.len() < 32 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "control token too short"));
    }
    Ok(token)
}

/// True when `header` is `Bearer <token>`; compares in constant time.
pub fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The address the CLI connects to: `listen`, with an unspecified IP replaced by loopback.
pub fn connect_addr(listen: SocketAddr) -> SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// Why a request to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there: the daemon is not running (or listens elsewhere).
    #[error("cannot reach the daemon at {addr}: {source} (is it running? `listen` in the config says where)")]
    Connect {
        /// Where we tried.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP error talking to the daemon: {0}")]
    Http(#[from] hyper::Error),
}

/// One HTTP/1.1 request to the daemon; returns status and body.
pub async fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Result<(u16, String), ClientError> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|source| ClientError::Connect { addr, source })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(path).header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::new())).expect("static request parts are valid");
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_token_is_created_once_private_and_checked_exactly() {
        let dir = std::env::temp_dir().join(format!("cm-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.token");
        let _ = std::fs::remove_file(&path);
        let token = ensure_token(&path).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(ensure_token(&path).unwrap(), token, "kept across restarts");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(authorized(Some(&format!("Bearer {token}")), &token));
        assert!(!authorized(Some(&format!("Bearer {}x", &token[..63])), &token));
        assert!(!authorized(Some(&token), &token));
        assert!(!authorized(None, &token));
    }

    #[test]
    fn regression_a_world_readable_or_planted_token_is_refused_and_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cm-token-planted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("control.token");
        for (text, mode) in [("a".repeat(32), 0o644), ("hunter2".to_owned(), 0o600), ("f".repeat(64), 0o640)] {
            std::fs::write(&path, &text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let token = ensure_token(&path).unwrap();
            assert_ne!(token, text, "{text:?} at {mode:o} must not be used");
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let kept = std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("refused")).count();
        assert_eq!(kept, 3, "refused tokens are moved aside, not deleted");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
