//! Command line: `containerd --config F` runs the daemon; subcommands do one thing each.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::control;

/// Wakes container leafs on AWS when their domain is queried and puts them back to sleep.
#[derive(Debug, Parser)]
#[command(name = "containerd", version, about)]
pub struct Cli {
    /// The leafs file.
    #[arg(long, short, global = true, default_value = "/etc/container-manager/leafs.toml")]
    pub config: PathBuf,
    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do; without a subcommand, run the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate the config file without touching AWS; exit 2 if it is invalid.
    Check {
        /// Also read AWS and check every leaf's resources (never changes anything);
        /// exit 1 when a check fails.
        #[arg(long)]
        live: bool,
    },
    /// Write config for resources that already exist.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show the running daemon's leafs (from its /status).
    Status,
    /// Wake a leaf now through the running daemon (also ends a crash-loop quarantine).
    Wake {
        /// Leaf name.
        leaf: String,
    },
    /// Stop a leaf now through the running daemon (one alert says an operator did it).
    Sleep {
        /// Leaf name.
        leaf: String,
    },
    /// Print the least-privilege IAM policy for the configured leafs.
    IamPolicy,
}

/// `containerd config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the config for a deployed leaf stack (deploy/cloudformation/leaf.yaml, or a
    /// leaf stack of the original CDK project).
    FromStack {
        /// The stack's name.
        stack: String,
        /// The stack's region (default: AWS_REGION or the profile's).
        #[arg(long)]
        region: Option<String>,
        /// Print only the `[[leaf]]` entry, to append to an existing file.
        #[arg(long)]
        leaf_only: bool,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; colours only on a terminal.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `containerd check [--live]`: false when a live check failed.
pub async fn check(path: &std::path::Path, config: &Config, live: bool) -> bool {
    for warning in config.warnings() {
        println!("{}: warning: {warning}", path.display());
    }
    println!("{}: OK, {} leafs", path.display(), config.leafs.len());
    !live || crate::adopt::check_live(config).await
}

/// `containerd iam-policy`.
pub fn iam_policy(config: &Config) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&crate::iam::policy(config))?);
    Ok(())
}

/// `containerd status`: one line per leaf.
pub async fn status(config: &Config) -> anyhow::Result<()> {
    let addr = control::connect_addr(*config.daemon.listen);
    let (code, body) = control::request(addr, "GET", "/status", None).await?;
    if code != 200 {
        bail!("the daemon answered {code}: {body}");
    }
    let status: serde_json::Value = serde_json::from_str(&body).context("the daemon's /status is not JSON")?;
    println!("{:<20} {:<9} {:<16} {:>7} {:>12} {:>6}  LAST DECISION", "LEAF", "PHASE", "IP", "DESIRED", "ACTIVITY B/s", "IDLE");
    for leaf in status["leafs"].as_array().into_iter().flatten() {
        let text = |k: &str| leaf[k].as_str().unwrap_or("-").to_owned();
        let activity = leaf["activity_bytes_per_s"].as_f64().map_or("-".into(), |a| format!("{a:.0}/{}", leaf["threshold"]));
        let decision = leaf["last_decision"]["what"].as_str().map_or_else(|| "-".to_owned(), |w| format!("{w}: {}", leaf["last_decision"]["why"].as_str().unwrap_or("")));
        let mut phase = text("phase");
        if leaf["quarantined_until"].is_string() {
            phase.push('*');
        }
        println!(
            "{:<20} {:<9} {:<16} {:>7} {:>12} {:>6}  {decision}",
            text("name"),
            phase,
            text("ip"),
            leaf["desired"].as_i64().map_or("-".into(), |d| d.to_string()),
            activity,
            leaf["idle_streak"].as_u64().map_or("-".into(), |d| d.to_string()),
        );
    }
    println!("{}", status["summary"].as_str().unwrap_or(""));
    if !status["healthy"].as_bool().unwrap_or(false) {
        println!("UNHEALTHY: {}", status["problem"].as_str().unwrap_or("unknown"));
    }
    Ok(())
}

/// `containerd wake|sleep LEAF`.
pub async fn command(config: &Config, leaf: &str, command: &str) -> anyhow::Result<()> {
    let path = control::token_path(&config.daemon);
    let token = control::read_token(&path)
        .with_context(|| format!("cannot read the control token {} (run as root or as the daemon's user)", path.display()))?;
    let addr = control::connect_addr(*config.daemon.listen);
    let (code, body) = control::request(addr, "POST", &format!("/leafs/{leaf}/{command}"), Some(&token)).await?;
    match code {
        202 => {
            println!("{command} {leaf}: accepted; `containerd status` shows its progress");
            Ok(())
        }
        _ => bail!("the daemon refused ({code}): {}", body.trim()),
    }
}
