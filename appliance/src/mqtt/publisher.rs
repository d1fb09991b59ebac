//! The publisher task: reads the event bus, keeps the cameras' retained state, and hands
//! messages to the MQTT client while the broker is connected.
//!
//! Two tasks on the daemon's network runtime. The link task polls rumqttc's event loop
//! (which writes the client's requests, reconnects, pings) and reports the link going up and
//! down; after a failure it waits (1 s, doubling to 60 s) before polling again, which is when
//! rumqttc reconnects. The publisher task owns the state and the [`Outbox`]: nothing in it
//! waits for the broker (the client's channel is only ever tried), so a broker that is away or
//! slow costs queued messages, never a camera frame or an event of the bus.
//!
//! At every connection the whole retained state goes out again (availability, discovery, each
//! camera's states): a broker without persistence that restarted has forgotten it. On stop,
//! `offline` is published on the availability topic and the client disconnects cleanly (so
//! the broker does not send the Last Will, which says the same for an unclean end).

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::cameras::{CameraInfo, Cameras};
use super::config::MqttConfig;
use super::outbox::{Message, Outbox};
use super::topics::{Topics, OFFLINE, ONLINE};
use super::MqttError;
use crate::alert_json::{alert, Disclosure};
use crate::events::{Event, EventBus, Subscription};

/// Requests the client's channel holds; the rest waits in the [`Outbox`].
const CLIENT_CHANNEL: usize = 64;
/// How often the camera list is compared with the daemon's (cameras added through the web
/// API or a reloaded configuration file).
const CAMERA_SYNC: Duration = Duration::from_secs(2);
/// How often a full client channel is tried again.
const RETRY: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// What stopping waits for `offline` to reach the broker.
const STOP_WAIT: Duration = Duration::from_secs(3);
/// Dropped messages are logged at most this often.
const DROP_LOG: Duration = Duration::from_secs(10);

/// The daemon's cameras, read on the publisher's thread.
pub type CameraSource = Box<dyn Fn() -> Vec<CameraInfo> + Send + Sync>;

/// A publisher checked and subscribed to the bus, not started yet: made before the cameras
/// start so that it misses none of their events, started once the network runtime runs.
pub struct Prepared {
    config: MqttConfig,
    options: rumqttc::MqttOptions,
    topics: Topics,
    events: Subscription,
}

/// The running publisher.
pub struct Publisher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<Stats>,
}

/// Counters a test or a status page may read.
#[derive(Default, Debug)]
pub struct Stats {
    /// Alerts dropped because the broker was away or slow.
    pub dropped: std::sync::atomic::AtomicU64,
    /// Connections made (the first and every reconnection).
    pub connections: std::sync::atomic::AtomicU64,
    /// Connected now.
    pub connected: std::sync::atomic::AtomicBool,
}

enum Link {
    Up,
    Down,
}

impl Prepared {
    /// Reads the password file and TLS files now: an error here stops the daemon's start.
    pub fn new(config: &MqttConfig, bus: &EventBus) -> Result<Self, MqttError> {
        // Checked with the file already; again here for callers that built the section.
        config
            .validate()
            .map_err(|(key, message)| MqttError::Invalid {
                key: format!("mqtt.{key}"),
                message,
            })?;
        let topics = Topics::new(&config.topic_prefix, &config.name, &config.discovery_prefix);
        let options = config.options(&topics.availability())?;
        Ok(Self {
            config: config.clone(),
            options,
            topics,
            events: bus.subscribe(),
        })
    }

    /// Starts the tasks on `runtime`; `cameras` lists the daemon's cameras.
    pub fn start(self, runtime: &tokio::runtime::Handle, cameras: CameraSource) -> Publisher {
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(Stats::default());
        let _entered = runtime.enter();
        let (client, eventloop) = AsyncClient::new(self.options.clone(), CLIENT_CHANNEL);
        let (links, link_rx) = mpsc::channel(16);
        let broker = self.config.broker.clone();
        let link = runtime.spawn(run_link(eventloop, links, broker));
        let task = runtime.spawn(
            Task {
                cameras: Cameras::new(
                    self.topics.clone(),
                    self.config.discovery,
                    Disclosure {
                        faces: self.config.include_faces,
                        names: self.config.include_names,
                    },
                    self.config.face_hold(),
                ),
                qos: self.config.qos(),
                outbox: Outbox::new(self.config.queue),
                topics: self.topics,
                client,
                connected: false,
                stats: stats.clone(),
                dropped_logged: 0,
                dropped_logged_at: None,
            }
            .run(self.events, link_rx, link, stopped, cameras),
        );
        tracing::info!(broker = %self.config.broker, client_id = %self.config.client_id(), "MQTT publisher started");
        Publisher { stop, task, stats }
    }
}

impl Publisher {
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Publishes `offline` (if connected) and disconnects; bounded in time.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_WAIT + Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the MQTT publisher did not stop in time");
        }
    }
}

struct Task {
    topics: Topics,
    cameras: Cameras,
    qos: QoS,
    outbox: Outbox,
    client: AsyncClient,
    connected: bool,
    stats: Arc<Stats>,
    dropped_logged: u64,
    dropped_logged_at: Option<Instant>,
}

impl Task {
    async fn run(
        mut self,
        mut events: Subscription,
        mut links: mpsc::Receiver<Link>,
        link: tokio::task::JoinHandle<()>,
        mut stopped: watch::Receiver<bool>,
        cameras: CameraSource,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        // Known before the first connection, whose snapshot announces them.
        let _ = self.cameras.sync(&cameras());
        let mut sync = tokio::time::interval(CAMERA_SYNC);
        let mut retry = tokio::time::interval(RETRY);
        loop {
            let hold = self.cameras.next_deadline().map(Instant::from_std);
            tokio::select! {
                _ = stopped.changed() => break,
                event = events.recv() => match event {
                    Ok(event) => self.on_event(&event),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(lost = n, "the MQTT publisher fell behind the event bus");
                    }
                    Err(RecvError::Closed) => break,
                },
                up = links.recv() => match up {
                    Some(Link::Up) => {
                        self.set_connected(true);
                        self.stats.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let mut first = vec![Message::retained(self.topics.availability(), ONLINE)];
                        first.extend(self.cameras.snapshot());
                        self.outbox.restart_with(first);
                    }
                    Some(Link::Down) => self.set_connected(false),
                    None => {
                        tracing::error!("the MQTT link ended; nothing more is published");
                        self.set_connected(false);
                        break;
                    }
                },
                _ = sync.tick() => {
                    let out = self.cameras.sync(&cameras());
                    self.queue_state(out);
                }
                _ = tokio::time::sleep_until(hold.unwrap_or_else(Instant::now)), if hold.is_some() => {
                    let out = self.cameras.tick(std::time::Instant::now());
                    self.queue_state(out);
                }
                _ = retry.tick() => {}
            }
            self.drain();
            self.log_drops();
        }
        self.finish(link).await;
    }

    fn set_connected(&mut self, connected: bool) {
        self.connected = connected;
        self.stats
            .connected
            .store(connected, std::sync::atomic::Ordering::Relaxed);
    }

    fn on_event(&mut self, event: &Event) {
        let out = self.cameras.on_event(event, std::time::Instant::now());
        self.queue_state(out);
        if let Some(alert) = alert(self.topics.appliance(), event, self.disclosure()) {
            self.push(Message::event(self.topics.events(), alert.to_string()));
        }
    }

    fn disclosure(&self) -> Disclosure {
        self.cameras.disclosure()
    }

    /// Retained state is queued as its latest value per topic (see [`Outbox`]).
    fn queue_state(&mut self, messages: Vec<Message>) {
        for m in messages {
            self.push(m);
        }
    }

    fn push(&mut self, message: Message) {
        let dropped = self.outbox.push(message);
        if dropped > 0 {
            self.stats
                .dropped
                .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Hands queued messages to the client while its channel has room.
    fn drain(&mut self) {
        if !self.connected {
            return;
        }
        while let Some(m) = self.outbox.front() {
            if !rumqttc::valid_topic(&m.topic) {
                // Names are checked by the configuration; never let one message stop the rest.
                tracing::error!(topic = %m.topic, "not a valid MQTT topic; message dropped");
                self.outbox.pop();
                continue;
            }
            // Availability and discovery are worth an acknowledgement whatever `qos` says.
            let qos = if m.retain && self.qos == QoS::AtMostOnce {
                QoS::AtLeastOnce
            } else {
                self.qos
            };
            match self
                .client
                .try_publish(m.topic.clone(), qos, m.retain, m.payload.clone())
            {
                Ok(()) => {
                    self.outbox.pop();
                }
                Err(_) => break, // full: tried again at the next turn
            }
        }
    }

    fn log_drops(&mut self) {
        let dropped = self.outbox.dropped();
        if dropped == self.dropped_logged {
            return;
        }
        let now = Instant::now();
        if self
            .dropped_logged_at
            .is_some_and(|at| now.duration_since(at) < DROP_LOG)
        {
            return;
        }
        tracing::warn!(
            dropped_total = dropped,
            dropped_now = dropped - self.dropped_logged,
            queued = self.outbox.len(),
            "MQTT messages dropped (the broker is away or slow; the oldest go first)"
        );
        self.dropped_logged = dropped;
        self.dropped_logged_at = Some(now);
    }

    /// Stop: what is queued, then `offline`, then a clean disconnect.
    async fn finish(mut self, mut link: tokio::task::JoinHandle<()>) {
        if self.connected {
            let deadline = Instant::now() + STOP_WAIT;
            let sent = async {
                while let Some(m) = self.outbox.pop() {
                    let _ = self
                        .client
                        .publish(m.topic, self.qos, m.retain, m.payload)
                        .await;
                }
                let _ = self
                    .client
                    .publish(self.topics.availability(), QoS::AtLeastOnce, true, OFFLINE)
                    .await;
                let _ = self.client.disconnect().await;
            };
            if tokio::time::timeout_at(deadline, sent).await.is_err()
                || tokio::time::timeout_at(deadline, &mut link).await.is_err()
            {
                tracing::warn!("MQTT: `offline` may not have reached the broker before the stop");
            } else {
                tracing::info!("MQTT disconnected");
            }
        }
        link.abort();
    }
}

/// Polls the client's event loop; reports the link up and down; waits between attempts.
///
/// After the DISCONNECT is written it goes on reading until the broker closes the
/// connection: closing first, with the broker's PUBACKs unread, makes the kernel reset the
/// connection, and a broker that then fails to send a PUBACK (mosquitto) drops the client
/// before it reads the DISCONNECT, and sends the Last Will.
async fn run_link(mut eventloop: EventLoop, links: mpsc::Sender<Link>, broker: String) {
    let mut backoff = BACKOFF_MIN;
    let mut last_error: Option<String> = None;
    let mut disconnecting = false;
    loop {
        match eventloop.poll().await {
            Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(%broker, "MQTT connected");
                backoff = BACKOFF_MIN;
                last_error = None;
                if links.send(Link::Up).await.is_err() {
                    return;
                }
            }
            Ok(rumqttc::Event::Outgoing(Outgoing::Disconnect)) => disconnecting = true,
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(e) if disconnecting => {
                tracing::debug!(error = %e, "MQTT connection closed after DISCONNECT");
                return;
            }
            Err(e) => {
                let (why, refused) = describe(&e);
                if last_error.as_deref() != Some(why.as_str()) {
                    if refused {
                        tracing::error!(%broker, error = %why, "MQTT broker refused the connection; retrying");
                    } else {
                        tracing::warn!(%broker, error = %why, "MQTT broker unreachable or connection lost; retrying");
                    }
                } else {
                    tracing::debug!(%broker, error = %why, ?backoff, "MQTT still not connected");
                }
                last_error = Some(why);
                if links.send(Link::Down).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// A connection error for a person, and whether the broker refused us (a setting to fix).
fn describe(e: &ConnectionError) -> (String, bool) {
    match e {
        ConnectionError::ConnectionRefused(code) => (
            match code {
                ConnectReturnCode::BadUserNamePassword => {
                    "bad user name or password (mqtt.username, mqtt.password)".to_string()
                }
                ConnectReturnCode::NotAuthorized => {
                    "not authorized: check mqtt.username and mqtt.password or the broker's ACL"
                        .to_string()
                }
                ConnectReturnCode::BadClientId => "client id refused (mqtt.client_id)".to_string(),
                other => format!("refused: {other:?}"),
            },
            true,
        ),
        ConnectionError::Tls(e) => (format!("TLS: {e}"), true),
        other => (other.to_string(), false),
    }
}
