//! container-manager: runs container "leafs" on AWS only while somebody uses them.
//!
//! One process per region tails the Route53 query log, wakes a leaf by setting its
//! AutoScalingGroup's desired capacity, points the leaf's A record at the instance (and
//! back at an idle IP when it stops), scales a REPLICA ECS service with it, and sends
//! one SNS alert per transition. It replaces the Lambda-and-alarm glue of the original
//! CDK stack (see docs/architecture.md).
//!
//! # Layout
//! - [`config`]: `leafs.toml` to a validated [`config::Config`]; errors name file, line, key.
//! - [`aws`]: thin batched adapters over the SDK and one error classification.
//! - [`tail`]: the query-log poller (sliding window, dedupe) and its strict line parser.
//! - [`reconcile`]: observe (batched reads), decide (pure), apply (calls in order).
//! - [`watchdog`], [`crashloop`]: the pure judgements that stop a running leaf.
//! - [`alerts`]: alert texts and the persisted outbox that publishes them at most once.
//! - [`problems`]: what an operator must fix, alerted once until fixed.
//! - [`state`]: what survives restarts, written atomically.
//! - [`worker`]: the generic periodic driver every loop runs under.
//! - [`leaf`], [`clock`]: domain types and time as data.
//! - [`events`], [`metrics`]: one function per event, logging and counting together.
//! - [`status`], [`http`]: `/status`, `/metrics`, `/healthz` and operator commands;
//!   [`page`]: the status page at `/`.
//! - [`responder`]: answers for sleeping leafs (Minecraft server list and login, tcp,
//!   udp) and turns a real login into a wake request.
//! - [`control`]: the control token and the CLI's client; [`notify`]: systemd;
//!   [`host`]: the process's open-file budget and user.
//! - [`iam`]: the least-privilege policy, from the table of every AWS call made.
//! - [`daemon`], [`cli`], [`shutdown`]: wiring.

pub mod adopt;
pub mod alerts;
pub mod aws;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod crashloop;
pub mod daemon;
pub mod events;
pub mod ha;
pub mod host;
pub mod http;
pub mod iam;
pub mod leaf;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod problems;
pub mod reconcile;
pub mod responder;
pub mod shutdown;
pub mod state;
pub mod status;
pub mod tail;
pub mod watchdog;
pub mod worker;
