//! systemd notification (`sd_notify`) without a C library: one datagram per message
//! to `$NOTIFY_SOCKET`. Outside systemd (no socket) every call is a no-op.

use std::os::unix::net::UnixDatagram;

/// A connection to systemd's notification socket, if the daemon runs under one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()).and_then(|path| UnixDatagram::unbound().ok().map(|s| (s, path)));
        Self { socket }
    }

    /// Sends `message` (e.g. `READY=1`); failures are logged, never fatal.
    pub fn send(&self, message: &str) {
        let Some((socket, path)) = &self.socket else { return };
        let result = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
        } else {
            socket.send_to(message.as_bytes(), path)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, message, "could not notify systemd");
        }
    }

    /// Microseconds between watchdog pings systemd expects (`$WATCHDOG_USEC`), if any.
    pub fn watchdog_usec() -> Option<u64> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        let for_us = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok()).is_none_or(|p| p == std::process::id());
        (usec > 0 && for_us).then_some(usec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("cm-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier { socket: Some((UnixDatagram::unbound().unwrap(), path.display().to_string())) };
        n.send("READY=1\nSTATUS=1 leafs: 1 asleep");
        let mut buf = [0u8; 128];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=1 leafs: 1 asleep");
    }

    #[test]
    fn without_systemd_nothing_happens() {
        Notifier { socket: None }.send("READY=1");
    }
}
