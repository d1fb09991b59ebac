//! Command-line interface: argument parsing and presentation; the work is done by the library.

mod demo;
mod enroll;
mod identify;
mod import;
mod init;
mod pairs;
mod registry;
mod run;
mod sightings;
mod update;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vigil::vision::{FacePipeline, PipelineConfig, Runtime};
use vigil::watchlist::WatchlistStore;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Vigil face-recognition appliance")]
struct Cli {
    /// Where watchlists and other state are kept.
    #[arg(long, env = "VIGIL_DATA_DIR", global = true, default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// Refuse pictures with more pixels than this.
    #[arg(long, global = true, default_value_t = vigil::vision::image::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Smallest face searched for, in pixels.
    #[arg(long, global = true, default_value_t = 40.0)]
    min_face: f32,
    /// Faces turned further than this many degrees (estimated from the landmarks) are found
    /// and tracked but not matched or enrolled.
    #[arg(long, global = true, default_value_t = PipelineConfig::default().max_yaw)]
    max_yaw: f32,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list and delete watchlists.
    #[command(subcommand)]
    Watchlist(registry::WatchlistCommand),
    /// List and delete enrolled persons.
    #[command(subcommand)]
    Person(registry::PersonCommand),
    /// Enrol faces from photos into a watchlist.
    Enroll(enroll::EnrollArgs),
    /// Find and identify the faces of photos; prints one JSON line per photo.
    Identify(identify::IdentifyArgs),
    /// Measure recognition accuracy.
    #[command(subcommand)]
    Eval(pairs::EvalCommand),
    /// Run the appliance daemon: cameras, tracking, alerts.
    Run(run::RunArgs),
    /// Make a fresh data directory ready (keys, TLS certificate, first admin password shown
    /// once); the image's first boot runs it. Does nothing to one already set up.
    Init,
    /// Manage the appliance's users (ONVIF logins).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Search stored sightings: by a photo's face, a sighting's face, or metadata alone.
    Search(sightings::SearchArgs),
    /// Import a recorded clip: its faces analysed as fast as the CPU allows and stored as
    /// sightings of CAMERA from START; resumable (run the same command again after a stop).
    /// Stop the daemon first (or upload the clip in the web UI).
    Import(import::ImportArgs),
    /// Look at stored sightings.
    #[command(subcommand)]
    Sightings(sightings::SightingsCommand),
    /// Delete everything about a person, or every sighting matching a photo (GDPR
    /// erasure); prints what was removed. Stop the daemon first.
    Forget(sightings::ForgetArgs),
    /// The searchable metadata index.
    #[command(subcommand)]
    Index(sightings::IndexCommand),
    /// The thumbnail encryption key.
    #[command(subcommand)]
    Key(sightings::KeyCommand),
    /// The audit log: list and verify.
    #[command(subcommand)]
    Audit(sightings::AuditCommand),
    /// Signed A/B updates: verify, apply, status, and the boot steps (image-build/README.md).
    #[command(subcommand)]
    Update(update::UpdateCommand),
    /// The built-in demo: enrols people of ../shared/testdata and identifies other photos of them.
    Demo(demo::DemoArgs),
}

fn default_data_dir() -> PathBuf {
    // SAFETY-free check of the effective user: root runs the appliance service.
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/vigil");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("vigil")
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person's terminal, not in the journal or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context {
        data_dir: cli.data_dir,
        pipeline_config: pipeline_config(cli.max_pixels, cli.min_face, cli.max_yaw),
    };
    match cli.command {
        Command::Watchlist(c) => registry::watchlist(&ctx, c),
        Command::Person(c) => registry::person(&ctx, c),
        Command::Enroll(a) => enroll::run(&ctx, a),
        Command::Identify(a) => identify::run(&ctx, a),
        Command::Eval(c) => pairs::run(&ctx, c),
        Command::Demo(a) => demo::run(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Init => init::run(&ctx),
        Command::User(c) => user::run(&ctx, c),
        Command::Search(a) => sightings::search(&ctx, a),
        Command::Import(a) => import::run(&ctx, a),
        Command::Sightings(c) => sightings::sightings_command(&ctx, c),
        Command::Forget(a) => sightings::forget(&ctx, a),
        Command::Index(c) => sightings::index(&ctx, c),
        Command::Key(c) => sightings::key(&ctx, c),
        Command::Audit(c) => sightings::audit(&ctx, c),
        Command::Update(c) => update::run(&ctx, c),
    }
}

fn pipeline_config(max_pixels: u64, min_face: f32, max_yaw: f32) -> PipelineConfig {
    let mut config = PipelineConfig {
        max_pixels,
        max_yaw,
        ..Default::default()
    };
    config.detector.min_face = min_face;
    config
}

/// What every command may need, opened only when it does.
pub struct Context {
    data_dir: PathBuf,
    pipeline_config: PipelineConfig,
}

impl Context {
    fn store(&self) -> anyhow::Result<WatchlistStore> {
        WatchlistStore::open_in(&self.data_dir).with_context(|| {
            format!(
                "cannot open the watchlist store in {}",
                self.data_dir.join("watchlists").display()
            )
        })
    }

    fn pipeline(&self) -> anyhow::Result<FacePipeline> {
        let runtime = Runtime::from_environment().map(std::sync::Arc::new)?;
        Ok(FacePipeline::new(&runtime, self.pipeline_config.clone())?)
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len as u64),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
