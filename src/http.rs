//! HTTP on `listen` (127.0.0.1 by default): `/metrics`, `/healthz`, `/status`, and the
//! authenticated `POST /leafs/NAME/wake|sleep` behind `containerd wake|sleep`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::clock::Timeline;
use crate::config::Config;
use crate::events;
use crate::state::{Manual, StateStore};
use crate::status::Status;
use crate::worker::Activator;

/// What the handlers need.
pub struct Http {
    /// Live status.
    pub status: Arc<Status>,
    /// State, for operator commands.
    pub store: Arc<StateStore>,
    /// Wakes the reconciler after an operator command.
    pub reconcile: Activator,
    /// The control token.
    pub token: String,
    /// The daemon's time.
    pub timeline: Arc<Timeline>,
    /// The current config (leaf names).
    pub config: watch::Receiver<Arc<Config>>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder().status(status).header("content-type", content_type).body(Full::new(body.into())).expect("static response parts are valid")
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Reply {
    reply(status, "application/json", value.to_string() + "\n")
}

/// A client gets this long to send its request line and headers (slowloris).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection is closed after this long whatever it does: one request each, no
/// keep-alive, so an idle client cannot hold a slot.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `cancel` fires, holding at most `max_connections` connections. A client
/// that arrives while every slot is taken is answered `503` at once and closed, so a
/// flood of idle connections costs the daemon a slot table, never its descriptors.
pub async fn serve(listener: TcpListener, http: Arc<Http>, max_connections: usize, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut accept_errors = 0u32;
    loop {
        let (stream, _) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    accept_errors = 0;
                    a
                }
                Err(e) => {
                    // Out of descriptors (or similar): wait, longer each time, rather than spin.
                    accept_errors = accept_errors.saturating_add(1);
                    events::http_accept_failed(&e, accept_errors);
                    tokio::time::sleep(Duration::from_millis(100 << accept_errors.min(4))).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            events::http_connection_refused("busy");
            refuse_busy(&stream);
            continue; // dropped here: the descriptor is free again at once
        };
        let http = Arc::clone(&http);
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let http = Arc::clone(&http);
                async move { Ok::<_, Infallible>(http.handle(&req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            if tokio::time::timeout(CONNECTION_TIMEOUT, conn).await.is_err() {
                events::http_connection_refused("timeout");
            }
        });
    }
}

/// Tells a client that arrived while every slot was taken to come back, without reading
/// its request or waiting for it: one non-blocking write into the socket's buffer.
fn refuse_busy(stream: &tokio::net::TcpStream) {
    let answer = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 38\r\n\r\ntoo many connections; try again later\n";
    let _ = stream.try_write(answer);
}

impl Http {
    async fn handle(&self, req: &Request<Incoming>) -> Reply {
        let path = req.uri().path();
        match (req.method(), path) {
            (&Method::GET, "/") => {
                let leafs: Vec<crate::status::LeafView> = self.status.leafs().into_values().collect();
                reply(StatusCode::OK, "text/html; charset=utf-8", crate::page::render(&leafs, self.timeline.now()))
            }
            (&Method::GET, "/metrics") => reply(StatusCode::OK, "text/plain; version=0.0.4", crate::metrics::render()),
            (&Method::GET, "/healthz") => match self.status.unhealthy() {
                None => reply(StatusCode::OK, "text/plain", "ok\n"),
                Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("unhealthy: {why}\n")),
            },
            (&Method::GET, "/status") => json_reply(StatusCode::OK, &self.status_json()),
            (&Method::POST, _) if path.starts_with("/leafs/") => self.command(req, path).await,
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found: try /status, /metrics or /healthz\n"),
        }
    }

    fn status_json(&self) -> serde_json::Value {
        let leafs: Vec<_> = self.status.leafs().into_values().collect();
        let ha = self.status.authority.view();
        let expires = ha.lease_expires_ms.filter(|ms| *ms > 0).map(|ms| crate::clock::Timestamp(ms).to_string());
        json!({
            "role": ha.role,
            "ha": ha.me.as_ref().map(|me| json!({"me": me, "holder": ha.holder, "lease_expires": expires, "lease_expires_ms": ha.lease_expires_ms, "fence": ha.fence})),
            "healthy": self.status.unhealthy().is_none(),
            "problem": self.status.unhealthy(),
            "summary": self.status.summary(),
            "leafs": leafs,
            "query_log": self.status.query_log(),
            "workers": {
                "tail": *self.status.workers.tail.borrow(),
                "reconcile": *self.status.workers.reconcile.borrow(),
                "outbox": *self.status.workers.outbox.borrow(),
            },
            "outbox": self.store.read(|s| json!({
                "queued": s.outbox.len(),
                "deliveries": s.outbox.iter().map(|e| e.pending.len()).sum::<usize>(),
            })),
        })
    }

    async fn command(&self, req: &Request<Incoming>, path: &str) -> Reply {
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if !crate::control::authorized(auth, &self.token) {
            return json_reply(StatusCode::UNAUTHORIZED, &json!({"error": "missing or wrong control token"}));
        }
        let mut parts = path.trim_start_matches("/leafs/").split('/');
        let (Some(name), Some(command), None) = (parts.next(), parts.next(), parts.next()) else {
            return json_reply(StatusCode::NOT_FOUND, &json!({"error": "use POST /leafs/NAME/wake or /leafs/NAME/sleep"}));
        };
        if !self.config.borrow().leafs.iter().any(|l| l.name().as_str() == name) {
            return json_reply(StatusCode::NOT_FOUND, &json!({"error": format!("no leaf named {name:?}")}));
        }
        if !matches!(command, "wake" | "sleep") {
            return json_reply(StatusCode::NOT_FOUND, &json!({"error": "use wake or sleep"}));
        }
        if self.status.authority.check().is_err() {
            let holder = self.status.authority.view().holder.unwrap_or_else(|| "none".into());
            return json_reply(StatusCode::CONFLICT, &json!({"error": format!("this daemon is the standby: ask the holder ({holder})")}));
        }
        let now = self.timeline.now();
        self.store.update(|s| {
            let leaf = s.leafs.entry(name.to_owned()).or_default();
            // Each command gets its own time, later than the one it replaces: a tick that
            // decided on the old one clears only that one (see `Manual::at`).
            let at = leaf.manual.as_ref().map_or(now, |m| now.max(m.at().plus_ms(1)));
            leaf.manual = Some(if command == "wake" { Manual::Wake { at } } else { Manual::Sleep { at } });
        });
        if let Err(e) = self.store.save().await {
            return json_reply(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": e.to_string()}));
        }
        tracing::info!(leaf = name, command, "operator command accepted");
        self.reconcile.activate();
        json_reply(StatusCode::ACCEPTED, &json!({"leaf": name, "command": command, "accepted_at": now}))
    }
}
