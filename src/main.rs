//! `containerd`: parse the command line, load the config, run. Wiring only.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use container_manager::cli::{Cli, Command, LogFormat};
use container_manager::config::Config;
use container_manager::{daemon, shutdown};
use tracing_subscriber::EnvFilter;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("containerd: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            println!("{}: OK, {} leafs", cli.config.display(), config.leafs.len());
            ExitCode::SUCCESS
        }
        Command::Run => run(config),
    }
}

fn run(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("containerd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let cancel = match shutdown::on_signals() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for signals");
                return ExitCode::FAILURE;
            }
        };
        match daemon::run(config, cancel).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "stopped on error");
                ExitCode::FAILURE
            }
        }
    })
}
