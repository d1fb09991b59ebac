//! `vigil run`: the appliance daemon, until SIGTERM or SIGINT; SIGHUP re-reads the
//! configuration (cameras added, changed, removed) and the watchlists.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use parking_lot::RwLock;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use vigil::api_tokens::ApiTokens;
use vigil::audit::{Actor, AuditLog};
use vigil::config::{CameraMode, Config, OnvifConfig, PrivacyConfig, WebConfig};
use vigil::control::Control;
use vigil::daemon::{Daemon, SharedGallery};
use vigil::events::{Event, EventBus};
use vigil::http::{Router, WebHandler};
use vigil::import::manager::Manager as ImportManager;
use vigil::mqtt::MqttConfig;
use vigil::onvif_device::OnvifService;
use vigil::service_manager::{self, Watchdog};
use vigil::sightings::{self, recorder::Recorder, retention::Retention, SightingStore};
use vigil::tracking::TrackerSettings;
use vigil::users::{FileUsers, RemovalHook};
use vigil::web_adapter::{WebAppliance, WebParts};

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
    // Signals are caught before anything starts, so an early SIGTERM still stops cleanly.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install signal handlers")?;
    let appliance = RunningAppliance::start(ctx, &args)?;
    for signal in signals.forever() {
        if signal != SIGHUP {
            break;
        }
        appliance.reload();
    }
    appliance.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// Everything `vigil run` starts, held until it stops. Parts start in the order they depend
/// on each other and stop in the reverse: recording before the cameras (no track ends
/// unheard), the web listener bound before ONVIF's (whose plain HTTP redirects browsers to
/// it), the bus closed last so the recorder writes what is left.
struct RunningAppliance {
    data_dir: PathBuf,
    control: Arc<Control>,
    audit: Arc<AuditLog>,
    store: Arc<SightingStore>,
    policy: Arc<RwLock<PrivacyConfig>>,
    gallery: SharedGallery,
    recorder: Recorder,
    retention: Retention,
    runtime: tokio::runtime::Runtime,
    onvif: Option<OnvifService>,
    web_stop: tokio::sync::watch::Sender<bool>,
    /// The `[onvif]` and `[web]` sections the listeners started with: a reload cannot move
    /// them.
    listening: (OnvifConfig, WebConfig),
    watchdog: Option<Watchdog>,
    printer: Option<std::thread::JoinHandle<()>>,
    /// Set by ONVIF's SystemReboot: the process replaces itself once stopped.
    restart_requested: Arc<AtomicBool>,
    /// Background imports of uploaded clips.
    imports: Arc<ImportManager>,
    /// Alerts and camera states to an MQTT broker.
    mqtt: Option<vigil::mqtt::Publisher>,
    /// The `[mqtt]` section the file held last (at start, then at each reload): a change is
    /// audited once, and applies at the next start.
    mqtt_config: parking_lot::Mutex<Option<MqttConfig>>,
    /// Alerts and camera states to the fleet's JetStream stream.
    fleet: Option<vigil::fleet::Publisher>,
}

impl RunningAppliance {
    fn start(ctx: &super::Context, args: &RunArgs) -> anyhow::Result<Self> {
        let file_config = load(&args.config)?;
        let data_dir = file_config
            .data_dir
            .clone()
            .unwrap_or_else(|| ctx.data_dir.clone());
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        // Before anything reads the data: a newer release's format is refused, not misread.
        vigil::data_format::ensure(&data_dir)?;
        let (control, config) = Control::load(args.config.clone(), file_config, &data_dir)?;
        let control = Arc::new(control);
        let bus = EventBus::new();
        let printer = match args.events {
            EventsOutput::Stdout => Some(spawn_printer(&bus, |e| {
                serde_json::to_string(e).expect("events serialise")
            })),
            EventsOutput::Text => Some(spawn_printer(&bus, |e| e.to_string())),
            EventsOutput::None => None,
        };
        // Subscribed before the cameras start, so it misses none of their events; its files
        // (password, CA) are read now, so a bad one stops the start with a clear error.
        let mqtt_config = config.mqtt.clone();
        let mqtt = match &mqtt_config {
            Some(m) => Some(vigil::mqtt::Prepared::new(m, &bus).context("cannot set up MQTT")?),
            None => None,
        };
        let fleet = match &config.fleet {
            Some(f) => Some(
                vigil::fleet::Prepared::new(f, &bus, &data_dir).context("cannot join the fleet")?,
            ),
            None => None,
        };
        let cameras = config.cameras.len();
        let listening = (config.onvif.clone(), config.web.clone());
        let audit = Arc::new(AuditLog::open(&data_dir.join("audit"))?);
        let (store, opened) = sightings::open_in(
            &data_dir,
            config.privacy.min_free_disk_mb * 1024 * 1024,
            true,
        )
        .context("cannot open the sighting store")?;
        let store = Arc::new(store);
        tracing::info!(?opened, "sighting store open");
        let policy = control.policy();
        audit.append(
            &Actor::system(),
            "daemon.start",
            "",
            serde_json::json!({
                "privacy": config.privacy,
                "cameras": cameras,
                "mqtt": mqtt_config.as_ref().map(MqttConfig::summary),
                "fleet": config.fleet.as_ref().map(vigil::fleet::FleetConfig::summary),
            }),
        )?;
        // Recording starts before the cameras, so no track ends unheard.
        let recorder = Recorder::start(store.clone(), policy.clone(), &bus)
            .context("cannot start the sighting recorder")?;
        let daemon = Daemon::start(config, &data_dir, bus.clone())?;
        let (live, gallery, pipeline) = (daemon.live(), daemon.gallery(), daemon.pipeline());
        control.attach(daemon);
        let retention = start_retention(&data_dir, &store, &audit, &policy, &gallery)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vigil-net")
            .enable_all()
            .build()
            .context("cannot start the network runtime")?;
        let mqtt = mqtt.map(|m| {
            m.start(
                runtime.handle(),
                vigil::mqtt::CameraInfo::source(live.clone()),
            )
        });
        let fleet = fleet.map(|f| f.start(runtime.handle()));
        let restart_requested = Arc::new(AtomicBool::new(false));
        let imports = start_imports(
            &data_dir,
            &store,
            &policy,
            &gallery,
            pipeline.clone(),
            &control,
        )?;
        let (users, first_password) = FileUsers::open(&data_dir)?;
        let users = Arc::new(users);
        if let Some(password) = first_password {
            eprintln!("vigil: first start: created user admin with password {password} (shown once; the web UI asks for a new one at the first login, or use `vigil user set admin --level administrator`)");
        }
        let (onvif_config, web_config) = &listening;
        // The web listener is bound first, so ONVIF's plain HTTP can redirect browsers to it.
        let web_listener = if web_config.enabled {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(&web_config.listen))
                .with_context(|| format!("cannot listen on {} (web.listen)", web_config.listen))?;
            Some(listener)
        } else {
            None
        };
        let web_address = web_listener.as_ref().and_then(|l| l.local_addr().ok());
        let onvif = if onvif_config.enabled {
            let service = runtime.block_on(OnvifService::start(
                onvif_config,
                &data_dir,
                live.clone(),
                &bus,
                users.clone(),
                restart_on_request(&restart_requested),
                Some(audit.clone()),
                web_address,
                Some(vigil::onvif_device::AnalyticsParts {
                    gallery: gallery.clone(),
                    control: control.clone(),
                    data_dir: data_dir.clone(),
                }),
            ))?;
            eprintln!(
                "vigil: ONVIF device service at http://{}/onvif/device_service",
                service.address
            );
            Some(service)
        } else {
            None
        };
        let (web_stop, web_stopped) = tokio::sync::watch::channel(false);
        if let Some(listener) = web_listener {
            let acceptor = vigil::tls::shared(vigil::tls::acceptor_for(&data_dir, web_address)?);
            let mut acceptors = vec![acceptor.clone()];
            acceptors.extend(onvif.as_ref().and_then(|o| o.tls.clone()));
            let _entered = runtime.enter();
            let tokens = Arc::new(ApiTokens::open(&data_dir)?);
            let sessions = Arc::new(web::Sessions::default());
            users.on_removal(revoke_grants(tokens.clone(), sessions.clone()));
            let app = Arc::new(WebAppliance::new(
                WebParts {
                    users: users.clone(),
                    tokens,
                    live: live.clone(),
                    control: control.clone(),
                    gallery: gallery.clone(),
                    pipeline: pipeline.clone(),
                    store: store.clone(),
                    audit: audit.clone(),
                    data_dir: data_dir.clone(),
                    onvif: onvif.as_ref().map(|o| o.device.clone()),
                    acceptors,
                    imports: Some(imports.clone()),
                    import_max_bytes: web_config.max_import_mb << 20,
                },
                &bus,
            ));
            let handler: WebHandler = Arc::new(web::handler(app, sessions));
            let router = Router {
                device: onvif.as_ref().map(|o| o.device.clone()),
                web: Some(handler),
                https_port: None,
            };
            runtime.spawn(vigil::http::serve(
                listener,
                router,
                Some(acceptor),
                vigil::http::Limits::new(&web_config.limits),
                web_stopped,
            ));
            if let Some(address) = web_address {
                eprintln!("vigil: web UI at https://{address}/");
            }
        }
        // From here only the daemon's parts hold the bus: when they stop, it closes.
        drop(bus);
        if control.effective().demo {
            tracing::warn!(data_dir = %data_dir.display(), "DEMO: the built-in demo (the test video as camera, a demo watchlist), not a configured appliance");
            eprintln!("vigil: DEMO: this is the built-in demo: the test video is its camera and its people are in the `demo` watchlist; `./just run --config FILE` runs your own appliance");
        }
        tracing::info!(data_dir = %data_dir.display(), cameras, "vigil running");
        eprintln!(
            "vigil: running with {cameras} camera(s), data in {}; stop with Ctrl-C",
            data_dir.display()
        );
        service_manager::ready(&format!("running with {cameras} camera(s)"));
        let watchdog = start_watchdog(runtime.handle().clone(), control.clone());
        Ok(Self {
            data_dir,
            control,
            audit,
            store,
            policy,
            gallery,
            recorder,
            retention,
            runtime,
            onvif,
            web_stop,
            listening,
            watchdog,
            printer,
            restart_requested,
            imports,
            mqtt,
            mqtt_config: parking_lot::Mutex::new(mqtt_config),
            fleet,
        })
    }

    /// SIGHUP: re-reads the configuration file (cameras, analysis, privacy) and the
    /// watchlists; the listeners keep the addresses they started with.
    fn reload(&self) {
        service_manager::reloading();
        let before = self.policy.read().clone();
        match self.control.reload_file() {
            Ok(config) => {
                tracing::info!("configuration reloaded");
                if config.privacy != before {
                    audit_or_log(
                        &self.audit,
                        "settings.change",
                        serde_json::json!({ "privacy": config.privacy }),
                    );
                }
                let mqtt_changed = {
                    let mut seen = self.mqtt_config.lock();
                    let changed = config.mqtt != *seen;
                    seen.clone_from(&config.mqtt);
                    changed
                };
                if mqtt_changed {
                    tracing::warn!("the [mqtt] section changed; it takes effect at the next start");
                    audit_or_log(
                        &self.audit,
                        "settings.change",
                        serde_json::json!({
                            "mqtt": config.mqtt.as_ref().map(MqttConfig::summary),
                            "applies": "at the next start",
                        }),
                    );
                }
                if (&config.onvif, &config.web) != (&self.listening.0, &self.listening.1) {
                    tracing::warn!(
                        "the [onvif] or [web] section changed; it takes effect at the next start"
                    );
                }
                if let Err(e) = vigil::daemon::reload_gallery(&self.data_dir, &self.gallery) {
                    tracing::error!(error = %e, "watchlists not reloaded");
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "configuration not (fully) applied")
            }
        }
        service_manager::ready("configuration reloaded");
    }

    /// SIGTERM or SIGINT: stops every part, the listeners first, and replaces the process
    /// when ONVIF's SystemReboot asked for it.
    fn shutdown(self) {
        tracing::info!("stopping");
        service_manager::stopping();
        if let Some(watchdog) = self.watchdog {
            watchdog.stop();
        }
        let _ = self.web_stop.send(true);
        // The running import stops at its next frame and stays resumable; the web side
        // (which holds the other handle) is gone with the runtime below.
        self.imports.stop();
        if let Some(daemon) = self.control.detach() {
            daemon.shutdown();
        }
        if let Some(onvif) = self.onvif {
            self.runtime.block_on(onvif.stop());
        }
        // After the cameras: their last states are out, then `offline`.
        if let Some(mqtt) = self.mqtt {
            self.runtime.block_on(mqtt.stop());
        }
        if let Some(fleet) = self.fleet {
            self.runtime.block_on(fleet.stop());
        }
        // The forwarder holds a bus subscription; the runtime's end drops it.
        self.runtime
            .shutdown_timeout(std::time::Duration::from_secs(2));
        // The bus is closed now: the recorder writes what is left and ends.
        self.recorder.join();
        self.retention.stop();
        audit_or_log(&self.audit, "daemon.stop", serde_json::Value::Null);
        drop(self.store);
        if let Some(printer) = self.printer {
            let _ = printer.join();
        }
        if self.restart_requested.load(Ordering::SeqCst) {
            restart_process();
        }
    }
}

/// The background import of uploaded clips: the daemon's models, gallery, store and
/// privacy policy; each frame waits while the live cameras have frames queued.
fn start_imports(
    data_dir: &Path,
    store: &Arc<SightingStore>,
    policy: &Arc<RwLock<PrivacyConfig>>,
    gallery: &SharedGallery,
    pipeline: Arc<vigil::vision::FacePipeline>,
    control: &Arc<Control>,
) -> anyhow::Result<Arc<ImportManager>> {
    let analysis = control.effective().analysis;
    let live = control.clone();
    let ctx = vigil::import::Context {
        pipeline,
        gallery: gallery.clone(),
        store: store.clone(),
        policy: policy.clone(),
        // Every match is recorded: a camera's mode chooses live alerts, and an import
        // raises none.
        tracker: TrackerSettings::new(&analysis, CameraMode::Both),
        dir: vigil::import::imports_dir(data_dir),
        backlog: Some(Arc::new(move || {
            live.with_daemon(|d| d.analysis_backlog()).unwrap_or(0)
        })),
    };
    Ok(Arc::new(
        ImportManager::start(ctx).context("cannot start the video import worker")?,
    ))
}

/// Retention sweeps, which reload the watchlists when persons expire.
fn start_retention(
    data_dir: &Path,
    store: &Arc<SightingStore>,
    audit: &Arc<AuditLog>,
    policy: &Arc<RwLock<PrivacyConfig>>,
    gallery: &SharedGallery,
) -> anyhow::Result<Retention> {
    let (gallery, dir) = (gallery.clone(), data_dir.to_path_buf());
    Retention::start(
        store.clone(),
        data_dir.join("watchlists"),
        audit.clone(),
        policy.clone(),
        Box::new(move || {
            if let Err(e) = vigil::daemon::reload_gallery(&dir, &gallery) {
                tracing::error!(error = %e, "watchlists not reloaded after persons expired");
            }
        }),
    )
    .context("cannot start retention")
}

/// What ONVIF's SystemReboot calls: stop (as SIGTERM would), then start again.
fn restart_on_request(flag: &Arc<AtomicBool>) -> Box<dyn Fn() + Send + Sync> {
    let flag = flag.clone();
    Box::new(move || {
        flag.store(true, Ordering::SeqCst);
        let _ = signal_hook::low_level::raise(SIGTERM);
    })
}

/// The systemd watchdog's health check: the network runtime runs a task, and the daemon's
/// state is not stuck.
fn start_watchdog(handle: tokio::runtime::Handle, control: Arc<Control>) -> Option<Watchdog> {
    Watchdog::start(move || {
        let (answered, answer) = std::sync::mpsc::channel();
        handle.spawn(async move {
            let _ = answered.send(());
        });
        answer
            .recv_timeout(std::time::Duration::from_secs(5))
            .is_ok()
            && control.with_daemon(|_| ()).is_some()
    })
}

/// What a removed user was granted ends with it, whichever door removed it: web sessions
/// and API tokens (so a new user of the same name inherits none of them).
fn revoke_grants(tokens: Arc<ApiTokens>, sessions: Arc<web::Sessions>) -> RemovalHook {
    Box::new(move |name| {
        sessions.end_others(name, "");
        if let Err(e) = tokens.revoke_all_of(name) {
            tracing::error!(user = name, error = %e, "API tokens of a removed user not revoked");
        }
    })
}

/// Audits a daemon action; a failing audit log is reported, it does not stop the daemon.
fn audit_or_log(audit: &AuditLog, action: &str, detail: serde_json::Value) {
    if let Err(e) = audit.append(&Actor::system(), action, "", detail) {
        tracing::error!(error = %e, action, "audit record not written");
    }
}

/// SystemReboot: replace this process with a fresh one of the same command line. Under
/// systemd the service could instead exit and be restarted; exec works either way.
fn restart_process() {
    use std::os::unix::process::CommandExt as _;
    let Ok(exe) = std::env::current_exe() else {
        tracing::error!("cannot find the running executable; not restarting");
        return;
    };
    tracing::warn!("restarting");
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    tracing::error!(error = %error, "restart failed");
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
