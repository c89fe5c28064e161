//! Test harness: real AWS emulators (started by tests/run.sh), real SDK clients to
//! provision leafs, and the real `containerd` binary under test.
//!
//! Every test provisions its own leafs with unique names, so tests run in parallel
//! against the same emulators without seeing each other.

#![allow(dead_code, unused_imports, reason = "each test binary uses a different part of the harness")]

pub mod busy;
pub mod daemon;
pub mod proxy;
pub mod shapes;
pub mod world;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use daemon::Daemon;
pub use world::{LeafOptions, World};

/// A watchdog with compressed time for the tests: 5-second periods, idle after 20 s.
pub const FAST_WATCHDOG: &str = "period = \"5s\"\nidle_after = \"20s\"";

/// The period of [`FAST_WATCHDOG`].
pub const PERIOD_MS: i64 = 5_000;


/// Says that a test (or a part of it) could not run here, for the test command's
/// SKIPPED summary (`CM_SKIPPED_FILE`).
pub fn skipped(what: &str) {
    println!("SKIPPED: {what}");
    if let Ok(path) = std::env::var("CM_SKIPPED_FILE") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) {
            let _ = writeln!(f, "{what}");
        }
    }
}

/// A Minecraft client's first bytes: a handshake for `address` (protocol 765, next
/// state login), then a login start for `player`.
pub fn login_bytes(address: &str, player: &str) -> Vec<u8> {
    use container_manager::responder::codec;
    let mut hello = Vec::new();
    codec::put_varint(&mut hello, 765);
    codec::put_varint(&mut hello, i32::try_from(address.len()).unwrap());
    hello.extend_from_slice(address.as_bytes());
    hello.extend_from_slice(&25565u16.to_be_bytes());
    codec::put_varint(&mut hello, 2);
    let mut bytes = codec::frame(0, &hello);
    bytes.extend(codec::string_packet(0, player));
    bytes
}

/// A name unique to this test process and call: tests share the emulators.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() % 1_000_000;
    format!("{prefix}-{}-{t}-{n}", std::process::id() % 10_000)
}

/// Milliseconds as seconds, for printed figures.
pub fn secs(ms: i64) -> f64 {
    Duration::from_millis(ms.unsigned_abs()).as_secs_f64().copysign(if ms < 0 { -1.0 } else { 1.0 })
}

/// Polls `check` until it returns Some or `timeout` passes; the panic names `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A loopback port nobody listens on right now (each daemon gets its own).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Milliseconds since the epoch, for log event timestamps.
pub fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// A Route53 query-log line for `name` and `qtype` at `at_ms`.
pub fn query_line(at_ms: i64, zone: &str, name: &str, qtype: &str) -> String {
    let at = container_manager::clock::Timestamp(at_ms).rfc3339();
    format!("1.0 {at} {zone} {name} {qtype} NOERROR UDP FRA6 192.0.2.44 -")
}

/// Pushes one datapoint per 5 s period, `bytes_for(period_start)` bytes, until `done`
/// says stop or `limit` passes; returns what `done` returned.
pub async fn feed<T, F, Fut>(world: &World, leaf: &world::Leaf, bytes_for: impl Fn(i64) -> f64, limit: Duration, mut done: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    let mut pushed = i64::MIN;
    while started.elapsed() < limit {
        let period = now_ms().div_euclid(PERIOD_MS) * PERIOD_MS;
        if period > pushed {
            world.put_network_in(leaf, bytes_for(period), period + 1_000).await;
            pushed = period;
        }
        if let Some(v) = done().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}


/// A small xorshift generator: no dependency, and a printed seed replays a run.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A number in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_precision_loss)]
        let x = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        x
    }

    /// A number in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let k = (self.next() * n as f64) as u64;
        k.min(n.saturating_sub(1))
    }

    /// A uniformly chosen element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = self.below(u64::try_from(items.len()).unwrap());
        &items[usize::try_from(i).unwrap()]
    }
}
