//! Command line: `containerd --config F` runs the daemon; subcommands do one thing.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    Check,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; colours only on a terminal.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}
