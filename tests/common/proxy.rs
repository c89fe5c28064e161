//! A fault-injecting HTTP proxy between the daemon and an emulator.
//!
//! The daemon is pointed at the proxy with the standard `AWS_ENDPOINT_URL_<SERVICE>`
//! variables; the proxy forwards each request to the emulator unless the current
//! [`Faults`] say otherwise: answer 500, throttle the way AWS throttles (code, status
//! and body in each service's protocol), deny access, delay, cut the connection in the
//! middle of the response, or refuse everything (an outage). The emulator processes are
//! not restarted for an outage: moto keeps its state in memory, so a restart would
//! delete the leafs under test; to the daemon a refused connection is the same thing.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::Rng;

/// What to do to requests, chosen at random per request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share answered 500.
    pub server_error: f64,
    /// Share throttled.
    pub throttle: f64,
    /// Share cut mid-response.
    pub cut: f64,
    /// Share delayed, and by how much.
    pub delay: (f64, Duration),
    /// Refuse every connection.
    pub outage: bool,
    /// A brown-out: accept every request and never answer it (while this is set).
    pub blackhole: bool,
    /// Requests whose service, operation and body or path match are denied.
    pub deny: Vec<Deny>,
    /// Operations that are always throttled (`FilterLogEvents`, say).
    pub throttle_operations: Vec<String>,
    /// Requests matching one of these are always throttled (one SNS topic, say).
    pub throttle_matching: Vec<Deny>,
}

impl Faults {
    /// `share` of all requests fail, spread over 500s, throttling, cuts and delays.
    pub fn random(share: f64) -> Self {
        Self { server_error: share * 0.4, throttle: share * 0.3, cut: share * 0.2, delay: (share * 0.1, Duration::from_secs(2)), ..Self::default() }
    }
}

/// An AccessDenied rule.
#[derive(Debug, Clone)]
pub struct Deny {
    /// Signing name of the service (`autoscaling`, `route53`, ...).
    pub service: String,
    /// Texts the request's path or body must all contain (an action, a resource name).
    pub contains: Vec<String>,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests seen.
    pub requests: AtomicU64,
    /// Answered 500.
    pub server_errors: AtomicU64,
    /// Throttled.
    pub throttled: AtomicU64,
    /// Denied.
    pub denied: AtomicU64,
    /// Cut mid-response.
    pub cut: AtomicU64,
    /// Delayed.
    pub delayed: AtomicU64,
    /// Refused (outage).
    pub refused: AtomicU64,
    /// Held without an answer (brown-out).
    pub blackholed: AtomicU64,
}

impl Stats {
    /// Faults injected so far, all kinds.
    pub fn injected(&self) -> u64 {
        [&self.server_errors, &self.throttled, &self.denied, &self.cut, &self.delayed, &self.refused, &self.blackholed].iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One request that went through the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    /// Arrival, epoch ms.
    pub at_ms: i64,
    /// Signing service (`autoscaling`, `logs`, `monitoring`, ...).
    pub service: String,
    /// API operation.
    pub operation: String,
    /// The request's path and body, for matching resources.
    pub text: String,
    /// Bytes of the response body the daemon got (0 for injected faults).
    pub response_bytes: usize,
}

/// A running proxy.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    faults: Arc<Mutex<Faults>>,
    /// What it did.
    pub stats: Arc<Stats>,
    /// Every request, in arrival order (the counting side of the proxy).
    pub calls: Arc<Mutex<Vec<Call>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`) with no faults.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let faults = Arc::new(Mutex::new(Faults::default()));
        let stats = Arc::new(Stats::default());
        let seed = std::env::var("CM_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| super::now_ms().unsigned_abs() | 1);
        println!("fault proxy {url} -> {upstream} (CM_FAULT_SEED={seed})");
        let rng = Arc::new(Mutex::new(Rng::new(seed)));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let (f, s, c) = (Arc::clone(&faults), Arc::clone(&stats), Arc::clone(&calls));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (faults, stats, rng, upstream, calls) = (Arc::clone(&f), Arc::clone(&s), Arc::clone(&rng), upstream.clone(), Arc::clone(&c));
                if faults.lock().unwrap().outage {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                    continue;
                }
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (faults, stats, rng, upstream, calls) = (Arc::clone(&faults), Arc::clone(&stats), Arc::clone(&rng), upstream.clone(), Arc::clone(&calls));
                        async move { Ok::<_, Infallible>(handle(req, &faults, &stats, &rng, &upstream, &calls).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { url, faults, stats, calls, task }
    }

    /// Calls seen so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Replaces the faults.
    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }
}

type Reply = Response<ProxyBody>;

async fn handle(req: Request<Incoming>, faults: &Mutex<Faults>, stats: &Stats, rng: &Mutex<Rng>, upstream: &str, calls: &Mutex<Vec<Call>>) -> Reply {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let at_ms = super::now_ms();
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
    let service = signing_service(&parts.headers);
    let protocol = Protocol::of(&service, &parts.headers);
    let faults_lock = faults;
    let faults = faults_now(faults_lock);
    let text = format!("{} {}", parts.uri, String::from_utf8_lossy(&body));
    let op = operation(&parts, &body);
    let record = |response_bytes: usize| calls.lock().unwrap().push(Call { at_ms, service: service.clone(), operation: op.clone(), text: text.clone(), response_bytes });
    if faults.blackhole {
        stats.blackholed.fetch_add(1, Ordering::Relaxed);
        record(0);
        // Never answered while the brown-out lasts (the daemon gives up on its own);
        // then the connection is let go so that nothing outlives the test.
        while faults_now(faults_lock).blackhole {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        return protocol.error(ErrorCase::Server);
    }
    if faults.deny.iter().any(|d| d.service == service && d.contains.iter().all(|c| text.contains(c.as_str()))) {
        stats.denied.fetch_add(1, Ordering::Relaxed);
        record(0);
        return protocol.error(ErrorCase::Denied);
    }
    if faults.throttle_operations.contains(&op) || faults.throttle_matching.iter().any(|d| d.service == service && d.contains.iter().all(|c| text.contains(c.as_str()))) {
        stats.throttled.fetch_add(1, Ordering::Relaxed);
        record(0);
        return protocol.error(ErrorCase::Throttle);
    }
    let roll = rng.lock().unwrap().next();
    let mut edge = faults.server_error;
    if roll < edge {
        stats.server_errors.fetch_add(1, Ordering::Relaxed);
        record(0);
        return protocol.error(ErrorCase::Server);
    }
    edge += faults.throttle;
    if roll < edge {
        stats.throttled.fetch_add(1, Ordering::Relaxed);
        record(0);
        return protocol.error(ErrorCase::Throttle);
    }
    edge += faults.delay.0;
    if roll < edge {
        stats.delayed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(faults.delay.1).await;
    }
    let cut = roll >= edge && roll < edge + faults.cut;
    match forward(parts, body, upstream).await {
        Ok(resp) if cut => {
            stats.cut.fetch_add(1, Ordering::Relaxed);
            let (parts, bytes) = resp.into_parts();
            let half = bytes.slice(..bytes.len() / 2);
            record(half.len());
            Response::from_parts(parts, ProxyBody::Cut(Some(half)))
        }
        Ok(resp) => {
            record(resp.body().len());
            resp.map(|b| ProxyBody::Full(Full::new(b)))
        }
        Err(e) => {
            record(0);
            Protocol::error_text(502, &format!("proxy could not reach the emulator: {e}"))
        }
    }
}

fn faults_now(faults: &Mutex<Faults>) -> Faults {
    faults.lock().unwrap().clone()
}

async fn forward(parts: hyper::http::request::Parts, body: Bytes, upstream: &str) -> Result<Response<Bytes>, String> {
    let stream = TcpStream::connect(upstream).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::from_parts(parts, Full::new(body));
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, bytes))
}

/// The response body: whole, or cut after half (the connection then breaks).
pub enum ProxyBody {
    /// The whole body.
    Full(Full<Bytes>),
    /// Half a body, then an error that makes hyper abort the connection.
    Cut(Option<Bytes>),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            ProxyBody::Cut(half) => match half.take() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut by the fault proxy")))),
            },
        }
    }
}

/// The API operation of a request, in whichever way its protocol names it.
fn operation(parts: &hyper::http::request::Parts, body: &[u8]) -> String {
    if let Some(target) = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let path = parts.uri.path();
    if let Some(op) = path.split("/operation/").nth(1) {
        return op.to_owned();
    }
    let body = String::from_utf8_lossy(body);
    if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return action.to_owned();
    }
    if path.contains("/rrset") {
        return if parts.method == hyper::Method::POST { "ChangeResourceRecordSets" } else { "ListResourceRecordSets" }.to_owned();
    }
    format!("{} {path}", parts.method)
}

/// The service name from the SigV4 credential scope (`.../us-west-2/autoscaling/aws4_request`).
fn signing_service(headers: &hyper::HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|c| c.split(',').next())
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned()
}

#[derive(Clone, Copy)]
enum ErrorCase {
    Server,
    Throttle,
    Denied,
}

/// How each service spells its errors.
#[derive(Clone, Copy)]
enum Protocol {
    /// AutoScaling, SNS: awsQuery XML.
    Query,
    /// EC2's own XML.
    Ec2,
    /// ECS, CloudWatch Logs, Application Auto Scaling: awsJson1_1.
    Json,
    /// Route53: restXml.
    RestXml,
    /// CloudWatch: Smithy RPC v2 CBOR.
    Cbor,
}

impl Protocol {
    fn of(service: &str, headers: &hyper::HeaderMap) -> Self {
        if headers.get("smithy-protocol").is_some_and(|v| v == "rpc-v2-cbor") {
            return Self::Cbor;
        }
        match service {
            "ec2" => Self::Ec2,
            "ecs" | "logs" | "application-autoscaling" => Self::Json,
            "route53" => Self::RestXml,
            _ => Self::Query,
        }
    }

    fn error(self, case: ErrorCase) -> Reply {
        let (status, code, message) = match (self, case) {
            (_, ErrorCase::Server) => (500, "InternalFailure", "injected server error"),
            (Self::Ec2, ErrorCase::Throttle) => (503, "RequestLimitExceeded", "Request limit exceeded."),
            (Self::Json | Self::Cbor, ErrorCase::Throttle) => (400, "ThrottlingException", "Rate exceeded"),
            (_, ErrorCase::Throttle) => (400, "Throttling", "Rate exceeded"),
            (Self::Ec2, ErrorCase::Denied) => (403, "UnauthorizedOperation", "You are not authorized to perform this operation."),
            (Self::Json | Self::Cbor, ErrorCase::Denied) => (400, "AccessDeniedException", "User is not authorized to perform this action"),
            (_, ErrorCase::Denied) => (403, "AccessDenied", "User is not authorized to perform this action"),
        };
        let (content_type, body): (&str, Vec<u8>) = match self {
            Self::Query | Self::RestXml => (
                "text/xml",
                format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>").into_bytes(),
            ),
            Self::Ec2 => (
                "text/xml",
                format!("<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>").into_bytes(),
            ),
            Self::Json => ("application/x-amz-json-1.1", format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}").into_bytes()),
            Self::Cbor => ("application/cbor", cbor_error(code, message)),
        };
        let mut resp = Response::builder().status(status).header("content-type", content_type).header("x-amzn-requestid", "fault-proxy");
        if matches!(self, Self::Cbor) {
            resp = resp.header("smithy-protocol", "rpc-v2-cbor");
        }
        if matches!(self, Self::Json) {
            resp = resp.header("x-amzn-errortype", code);
        }
        resp.body(ProxyBody::Full(Full::new(Bytes::from(body)))).unwrap()
    }

    fn error_text(status: u16, text: &str) -> Reply {
        Response::builder().status(status).header("content-type", "text/plain").body(ProxyBody::Full(Full::new(Bytes::from(text.to_owned())))).unwrap()
    }
}

/// `{"__type": code, "message": message}` in CBOR.
fn cbor_error(code: &str, message: &str) -> Vec<u8> {
    fn text(out: &mut Vec<u8>, s: &str) {
        let len = u8::try_from(s.len()).expect("error texts are short");
        if len < 24 {
            out.push(0x60 | len);
        } else {
            out.push(0x78);
            out.push(len);
        }
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = vec![0xa2];
    text(&mut out, "__type");
    text(&mut out, code);
    text(&mut out, "message");
    text(&mut out, message);
    out
}

/// Both emulators behind proxies, and the environment that points a daemon at them.
pub struct Proxied {
    /// In front of LocalStack (Route53, CloudWatch Logs, CloudWatch, SNS).
    pub localstack: Proxy,
    /// In front of moto (AutoScaling, EC2, ECS, EFS, ELBv2, Application Auto Scaling).
    pub moto: Proxy,
}

impl Proxied {
    /// Proxies to the emulators `tests/run.sh` started.
    pub async fn start() -> Self {
        let url = |var: &str| std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run the tests through tests/run.sh"));
        Self { localstack: Proxy::start(&url("CM_LOCALSTACK_URL")).await, moto: Proxy::start(&url("CM_MOTO_URL")).await }
    }

    /// `AWS_ENDPOINT_URL_<SERVICE>` for every service, pointing at the proxies.
    pub fn env(&self) -> Vec<(String, String)> {
        let via = |services: &[&str], proxy: &Proxy| services.iter().map(|s| (format!("AWS_ENDPOINT_URL_{s}"), proxy.url.clone())).collect::<Vec<_>>();
        let mut env = via(&["ROUTE_53", "CLOUDWATCH_LOGS", "CLOUDWATCH", "SNS"], &self.localstack);
        env.extend(via(&["AUTO_SCALING", "EC2", "ECS", "EFS", "ELASTIC_LOAD_BALANCING_V2", "APPLICATION_AUTO_SCALING"], &self.moto));
        env
    }

    /// Starts the daemon behind the proxies, with `extra` environment variables.
    pub fn daemon(&self, config: &std::path::Path, extra: &[(&str, &str)]) -> super::Daemon {
        let env = self.env();
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        super::Daemon::start_with(config, &[], &all)
    }

    /// The same faults on both.
    pub fn set(&self, faults: &Faults) {
        self.localstack.set(faults.clone());
        self.moto.set(faults.clone());
    }

    /// (faults injected, requests seen) over both.
    pub fn injected(&self) -> (u64, u64) {
        let total = |p: &Proxy| p.stats.requests.load(Ordering::Relaxed);
        (self.localstack.stats.injected() + self.moto.stats.injected(), total(&self.localstack) + total(&self.moto))
    }

    /// Every call through both, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        let mut all = self.localstack.calls();
        all.extend(self.moto.calls());
        all.sort_by_key(|c| c.at_ms);
        all
    }
}
