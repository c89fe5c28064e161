//! The real `containerd` binary, started with a config written for the test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running daemon; killed when dropped. Its log lines are kept for assertions and
/// echoed to the test's output (shown by the test runner when a test fails).
pub struct Daemon {
    child: Option<Child>,
    logs: Arc<Mutex<Vec<String>>>,
    /// The config file it runs with.
    pub config: PathBuf,
}

impl Daemon {
    /// Starts `containerd --config <config>`.
    pub fn start(config: &Path) -> Self {
        Self::start_with(config, &[], &[])
    }

    /// Starts `containerd --config <config> <args>` with extra environment variables.
    pub fn start_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(Command::new(Self::bin()), config, args, env)
    }

    /// Starts the daemon with an open-file limit of `nofile` (soft and hard), as a
    /// tightly configured host would run it.
    pub fn start_with_nofile(config: &Path, env: &[(&str, &str)], nofile: u32) -> Self {
        let mut wrapper = Command::new("bash");
        wrapper.args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""), &Self::bin()]);
        Self::spawn(wrapper, config, &[], env)
    }

    /// The binary under test: the release build when the benchmark names it.
    fn bin() -> String {
        std::env::var("CM_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_containerd").to_owned())
    }

    fn spawn(mut command: Command, config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = command
            .arg("--config")
            .arg(config)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", std::env::var("CM_TEST_LOG").unwrap_or_else(|_| "info,container_manager=debug".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start containerd");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>, Box::new(child.stdout.take().unwrap())] {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("[containerd] {line}");
                    logs.lock().unwrap().push(line);
                }
            });
        }
        Self { child: Some(child), logs, config: config.to_owned() }
    }

    /// Where the daemon's HTTP endpoint listens (from its config).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let line = text.lines().find(|l| l.starts_with("listen = ")).expect("the test config sets listen");
        line.trim_start_matches("listen = ").trim_matches('"').parse().unwrap()
    }

    /// The daemon's pid, for signals.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (e.g. 1 for SIGHUP).
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on a pid we own.
        unsafe { libc_kill(i32::try_from(self.pid()).unwrap(), signal) };
    }

    /// Waits for the process to exit on its own; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let c = self.child.as_mut()?;
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// `GET path` on the daemon's HTTP endpoint: (status, body).
    /// Retries while the daemon is still starting (nothing listening yet).
    pub async fn get(&self, path: &str) -> (u16, String) {
        super::eventually("the daemon's HTTP endpoint", Duration::from_secs(20), || async {
            container_manager::control::request(self.http_addr(), "GET", path, None).await.ok()
        })
        .await
    }

    /// `/status` as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let (_, body) = self.get("/status").await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
    }

    /// Sum of the `/metrics` series named `name` whose labels contain every fragment of
    /// `labels` (e.g. `group="/aws/..."`); 0 when there is none.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .filter(|(series, _)| series.split('{').next() == Some(name) && labels.iter().all(|f| series.contains(f)))
            .filter_map(|(_, v)| v.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b)
    }

    /// Waits until both loops have completed `n` more passes: the daemon has looked again,
    /// so "nothing happened" can be checked without a fixed sleep.
    pub async fn passes(&self, n: u64) {
        let iterations = |s: &serde_json::Value| (s["workers"]["tail"]["iteration"].as_u64().unwrap_or(0), s["workers"]["reconcile"]["iteration"].as_u64().unwrap_or(0));
        let (tail, reconcile) = iterations(&self.status().await);
        super::eventually(&format!("{n} more passes of both loops"), Duration::from_secs(60), || async {
            let (t, r) = iterations(&self.status().await);
            (t >= tail + n && r >= reconcile + n).then_some(())
        })
        .await;
    }

    /// Replaces the daemon's config file with `text` (made for another port: its own
    /// `listen` is kept), sends SIGHUP and waits until the reload is logged.
    pub async fn reload(&self, text: &str) {
        let listen = format!("listen = \"{}\"", self.http_addr());
        let text: Vec<String> = text.lines().map(|l| if l.starts_with("listen = ") { listen.clone() } else { l.to_owned() }).collect();
        let before = self.lines_with(&["config reloaded"]).len();
        std::fs::write(&self.config, text.join("\n")).unwrap();
        self.signal(1);
        super::eventually("the reload to be logged", Duration::from_secs(30), || async { (self.lines_with(&["config reloaded"]).len() > before).then_some(()) }).await;
    }

    /// Waits until the daemon has looked twice more (two passes of both loops) and its
    /// outbox is empty: whatever those passes decided has been published.
    pub async fn quiet(&self) {
        self.passes(2).await;
        super::eventually("an empty outbox", Duration::from_secs(60), || async {
            let status = self.status().await;
            (status["outbox"]["queued"].as_u64() == Some(0)).then_some(())
        })
        .await;
    }

    /// Runs the CLI (`containerd --config <config> <args>`): (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_containerd")).arg("--config").arg(&self.config).args(args).output().expect("run containerd");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Lines containing every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.logs().into_iter().filter(|l| needles.iter().all(|n| l.contains(n))).collect()
    }

    /// Waits for a log line containing all `needles`.
    pub async fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> String {
        super::eventually(&format!("a log line with {needles:?}"), timeout, || async { self.lines_with(needles).into_iter().next() }).await
    }

    /// Resident memory (kB) and CPU time used so far (ms), from /proc.
    pub fn usage(&self) -> (u64, u64) {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        let ticks: u64 = fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        (rss, ticks * 10) // USER_HZ is 100 on Linux
    }

    /// SIGKILL: no chance to save anything, as in a crash or OOM kill.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.stop_timed().0
    }

    /// Like [`Daemon::stop`], also saying how long the exit took.
    pub fn stop_timed(&mut self) -> (Option<i32>, Duration) {
        let started = std::time::Instant::now();
        let code = self.terminate();
        (code, started.elapsed())
    }

    fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        // SAFETY: plain kill(2) on a pid we own.
        unsafe { libc_kill(i32::try_from(c.id()).unwrap(), 15) };
        // As long as systemd would wait (TimeoutStopSec=30s), then SIGKILL as it would.
        for _ in 0..300 {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        c.wait().ok().and_then(|s| s.code())
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}
