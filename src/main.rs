//! The `throng` server binary: parse settings, start, run until a signal.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use throng::config::{Cli, Command, Config};
use throng::server::{ServerHandle, StopCause};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

fn main() -> ExitCode {
    // The log filter applies to the log only: a Tracy profiler (`tracy` feature) gets every
    // span, whatever RUST_LOG says.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(throng::profiling::log_colours(
                    std::io::stderr().is_terminal(),
                    std::env::var_os("NO_COLOR"),
                ))
                .with_filter(filter),
        )
        .with(throng::profiling::layer())
        .init();
    let cli = Cli::parse();
    if let Some(Command::Replay(args)) = &cli.command {
        return throng::recording::run_replay(args, |app| {
            app.add_plugins(systems::GamePlugins);
        });
    }
    let config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("throng: {error}");
            return ExitCode::from(2);
        }
    };
    match throng_host::fd_limit::raise_fd_limit() {
        Ok(limit) if (limit as usize) < config.max_players + 64 => tracing::warn!(
            limit,
            max_players = config.max_players,
            "the open-file limit is below max_players; accepts will fail before the cap"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
    let server = match ServerHandle::start(config) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("throng: {error}");
            return ExitCode::from(1);
        }
    };
    // Scripts and tests read the bound addresses from these lines, in this order.
    announce(format_args!("throng listening on {}", server.local_addr()));
    if let Some(metrics) = server.metrics_addr() {
        announce(format_args!("throng metrics on http://{metrics}/metrics"));
    }
    if let Some(web) = server.web_addr() {
        announce(format_args!("throng web on http://{web}/"));
    }
    match server.run_until_signal() {
        StopCause::Requested => ExitCode::SUCCESS,
        StopCause::TickDied => ExitCode::from(70),
    }
}

/// Prints one line to stdout. A reader that went away (a script that read the lines it
/// wanted and closed the pipe) is not the server's failure: `println!` would panic on the
/// broken pipe and take the server down with it.
fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}
