//! `vigil run`: the appliance daemon, until SIGTERM or SIGINT; SIGHUP re-reads the
//! configuration (cameras added, changed, removed) and the watchlists.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tokio::sync::broadcast::error::RecvError;
use vigil::config::Config;
use vigil::daemon::Daemon;
use vigil::events::{Event, EventBus};

#[derive(Args)]
pub struct RunArgs {
    /// The configuration file (TOML); without one, the built-in defaults (no camera).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print events on stdout: as JSON lines, or as text for a person.
    #[arg(long, value_enum, default_value_t = EventsOutput::None)]
    events: EventsOutput,
}

#[derive(Clone, Copy, ValueEnum)]
enum EventsOutput {
    None,
    /// JSON lines.
    Stdout,
    Text,
}

fn load(path: &Option<PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

pub fn run(ctx: &super::Context, args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args.config)?;
    let data_dir = config
        .data_dir
        .clone()
        .unwrap_or_else(|| ctx.data_dir.clone());
    // Signals are caught before anything starts, so an early SIGTERM still stops cleanly.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install signal handlers")?;
    let bus = EventBus::new();
    let printer = match args.events {
        EventsOutput::Stdout => Some(spawn_printer(&bus, |e| {
            serde_json::to_string(e).expect("events serialise")
        })),
        EventsOutput::Text => Some(spawn_printer(&bus, |e| e.to_string())),
        EventsOutput::None => None,
    };
    let cameras = config.cameras.len();
    let mut daemon = Daemon::start(config, &data_dir, bus)?;
    tracing::info!(data_dir = %data_dir.display(), cameras, "vigil running");
    eprintln!(
        "vigil: running with {cameras} camera(s), data in {}; stop with Ctrl-C",
        data_dir.display()
    );
    for signal in signals.forever() {
        if signal != SIGHUP {
            break;
        }
        match load(&args.config) {
            Ok(config) => {
                tracing::info!("configuration reloaded");
                if let Err(e) = daemon.reload_gallery() {
                    tracing::error!(error = %e, "watchlists not reloaded");
                }
                if let Err(e) = daemon.apply(config) {
                    tracing::error!(error = %e, "configuration not fully applied");
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "configuration not reloaded; keeping the running one")
            }
        }
    }
    tracing::info!("stopping");
    daemon.shutdown();
    if let Some(printer) = printer {
        let _ = printer.join();
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints every event as one line; ends when the bus closes (every publisher gone).
fn spawn_printer(bus: &EventBus, format: fn(&Event) -> String) -> std::thread::JoinHandle<()> {
    let mut events = bus.subscribe();
    std::thread::spawn(move || loop {
        match events.blocking_recv() {
            Ok(event) => {
                let mut out = std::io::stdout().lock();
                let line = format(&event);
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return;
                }
            }
            Err(RecvError::Lagged(n)) => tracing::warn!(lost = n, "event printer fell behind"),
            Err(RecvError::Closed) => return,
        }
    })
}
