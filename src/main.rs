//! `containerd`: parse the command line, load the config, dispatch. Wiring only.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use container_manager::cli::{self, Cli, Command, ConfigCommand, LogFormat};
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}

/// Exit status of a command that only succeeds or fails.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    // Writing a config needs none to exist yet.
    if let Some(Command::Config(ConfigCommand::FromStack { stack, region, leaf_only })) = &cli.command {
        return finish(runtime().and_then(|rt| rt.block_on(container_manager::adopt::from_stack(stack, region.as_deref(), *leaf_only))));
    }
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("containerd: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return finish(Err(e)),
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Run) {
            Command::Check { live } => Ok((!cli::check(&cli.config, &config, live).await).then(|| ExitCode::from(1))),
            Command::Config(_) => unreachable!("handled before the config is loaded"),
            Command::IamPolicy => cli::iam_policy(&config).map(|()| None),
            Command::Status => cli::status(&config).await.map(|()| None),
            Command::Wake { leaf } => cli::command(&config, &leaf, "wake").await.map(|()| None),
            Command::Sleep { leaf } => cli::command(&config, &leaf, "sleep").await.map(|()| None),
            Command::Run => {
                let cancel = shutdown::on_signals()?;
                daemon::run(cli.config.clone(), config, cancel).await.map_err(anyhow::Error::from).map(|()| None)
            }
        }
    });
    match result {
        Ok(Some(code)) => code,
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerd: {e:#}");
            // Another daemon holds the state, or the state is from a newer version: the
            // operator must act, and a restart loop would not help (systemd's
            // RestartPreventExitStatus=2).
            let refused = e.downcast_ref::<daemon::DaemonError>().is_some_and(daemon::DaemonError::is_refusal);
            if refused { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}
