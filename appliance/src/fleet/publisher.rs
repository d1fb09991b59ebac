//! The publisher task: reads the event bus, writes each alert and camera state to the
//! [`Outbox`], and sends the outbox to the stream one message at a time, oldest first,
//! removing each once the stream acknowledged it.
//!
//! One task on the daemon's network runtime. Reading the bus never waits for NATS: the
//! message in flight and the back-off after a failure are arms of the same `select!` as the
//! bus, so a NATS cluster that is away or slow costs disk space in the outbox (bounded), never
//! a camera frame or an event of the bus. The stream is looked up (and created if the fleet
//! has none) at the first connection and again after any failure.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{broadcast::error::RecvError, watch};

use super::config::FleetConfig;
use super::outbox::{Message, Outbox};
use super::subjects::{self, Subjects};
use super::FleetError;
use crate::alert_json::{alert, Disclosure};
use crate::events::{Event, EventBus, Subscription};

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// What stopping gives the outbox to reach the stream.
const STOP_FLUSH: Duration = Duration::from_secs(2);
/// Dropped messages are logged at most this often.
const DROP_LOG: Duration = Duration::from_secs(10);

/// Counters a test or a status page may read.
#[derive(Default, Debug)]
pub struct Stats {
    /// Messages the stream acknowledged (duplicates included).
    pub published: AtomicU64,
    /// Acknowledged as duplicates: the stream already had them (a resend after a crash).
    pub duplicates: AtomicU64,
    /// Removed unsent, the outbox being full.
    pub dropped: AtomicU64,
    /// Waiting in the outbox now.
    pub waiting: AtomicU64,
    /// The last publish reached the stream.
    pub connected: AtomicBool,
}

/// A publisher subscribed to the bus with its outbox open, not started yet: made before the
/// cameras start so that it misses none of their events.
pub struct Prepared {
    config: FleetConfig,
    options: async_nats::ConnectOptions,
    outbox: Outbox,
    events: Subscription,
}

/// The running publisher.
pub struct Publisher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<Stats>,
}

impl Prepared {
    /// Checks the section, reads its files and opens the outbox in `data_dir/fleet/outbox`:
    /// an error here stops the daemon's start.
    pub fn new(
        config: &FleetConfig,
        bus: &EventBus,
        data_dir: &std::path::Path,
    ) -> Result<Self, FleetError> {
        config
            .validate()
            .map_err(|(key, message)| FleetError::Invalid {
                key: format!("fleet.{key}"),
                message,
            })?;
        let options = config.connect_options()?;
        let (outbox, opened) =
            Outbox::open(&data_dir.join("fleet").join("outbox"), config.outbox_max)?;
        if opened.waiting > 0 || opened.unreadable > 0 {
            tracing::info!(
                waiting = opened.waiting,
                unreadable = opened.unreadable,
                "fleet outbox: messages of an earlier run will be sent first"
            );
        }
        Ok(Self {
            config: config.clone(),
            options,
            outbox,
            events: bus.subscribe(),
        })
    }

    pub fn start(self, runtime: &tokio::runtime::Handle) -> Publisher {
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(Stats::default());
        stats
            .waiting
            .store(self.outbox.len() as u64, Ordering::Relaxed);
        let task = runtime.spawn(
            Task {
                subjects: Subjects::new(&self.config.site, &self.config.name),
                disclosure: Disclosure {
                    faces: false,
                    names: self.config.include_names,
                },
                config: self.config,
                outbox: self.outbox,
                stats: stats.clone(),
                last_drop_log: None,
            }
            .run(self.options, self.events, stopped),
        );
        Publisher { stop, task, stats }
    }
}

impl Publisher {
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Stops the task: the bus's last events (the cameras' `stopped`) are written to the
    /// outbox, which is sent for at most [`STOP_FLUSH`]; what the stream has not acknowledged
    /// by then stays in the outbox for the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_FLUSH + Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the fleet publisher did not stop in time");
        }
    }
}

type Sending = Pin<Box<dyn Future<Output = Result<bool, String>> + Send>>;

/// What is in flight: the stream's lookup, or the outbox's message of this sequence.
#[derive(Clone, Copy)]
enum Flight {
    Stream,
    Message(u64),
}

struct Task {
    config: FleetConfig,
    subjects: Subjects,
    disclosure: Disclosure,
    outbox: Outbox,
    stats: Arc<Stats>,
    last_drop_log: Option<tokio::time::Instant>,
}

impl Task {
    async fn run(
        mut self,
        options: async_nats::ConnectOptions,
        mut events: Subscription,
        mut stopped: watch::Receiver<bool>,
    ) {
        let servers = self.config.servers.join(",");
        let client = match options.connect(servers.as_str()).await {
            Ok(client) => client,
            Err(e) => {
                // Only a bad address gets here (retry_on_initial_connect waits for servers).
                tracing::error!(servers = %servers, error = %e, "fleet: cannot use the NATS servers; alerts stay in the outbox");
                return;
            }
        };
        let jetstream = async_nats::jetstream::new(client);
        let mut stream_ready = false;
        let mut in_flight: Option<(Flight, Sending)> = None;
        let mut backoff = BACKOFF_MIN;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut bus_open = true;
        loop {
            if in_flight.is_none() && retry_at.is_none() {
                if !stream_ready {
                    let lookup = ensure_stream(jetstream.clone(), self.stream_config());
                    in_flight = Some((Flight::Stream, Box::pin(lookup)));
                } else if let Some((sequence, message)) = self.outbox.front() {
                    let sending = publish(jetstream.clone(), message);
                    in_flight = Some((Flight::Message(sequence), Box::pin(sending)));
                }
            }
            tokio::select! {
                _ = stopped.changed() => break,
                event = events.recv(), if bus_open => match event {
                    Ok(event) => self.keep(&event),
                    Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "fleet: the publisher fell behind the event bus"),
                    Err(RecvError::Closed) => bus_open = false,
                },
                result = async { in_flight.as_mut().expect("guarded").1.as_mut().await }, if in_flight.is_some() => {
                    let (flight, _) = in_flight.take().expect("guarded");
                    match result {
                        Ok(duplicate) => {
                            backoff = BACKOFF_MIN;
                            self.stats.connected.store(true, Ordering::Relaxed);
                            match flight {
                                Flight::Stream => stream_ready = true,
                                Flight::Message(sequence) => self.acknowledged(sequence, duplicate),
                            }
                        }
                        Err(e) => {
                            if self.stats.connected.swap(false, Ordering::Relaxed) || backoff == BACKOFF_MIN {
                                tracing::warn!(error = %e, waiting = self.outbox.len(), "fleet: the stream did not take a message; retrying");
                            } else {
                                tracing::debug!(error = %e, waiting = self.outbox.len(), "fleet: still failing");
                            }
                            stream_ready = false;
                            retry_at = Some(tokio::time::Instant::now() + backoff);
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                },
                _ = async { tokio::time::sleep_until(retry_at.expect("guarded")).await }, if retry_at.is_some() => {
                    retry_at = None;
                }
            }
        }
        while let Ok(event) = events.try_recv() {
            self.keep(&event);
        }
        let flush = async {
            if let Some((Flight::Message(sequence), sending)) = in_flight.take() {
                match sending.await {
                    Ok(duplicate) => self.acknowledged(sequence, duplicate),
                    Err(_) => return,
                }
            }
            if !stream_ready {
                return;
            }
            while let Some((sequence, message)) = self.outbox.front() {
                match publish(jetstream.clone(), message).await {
                    Ok(duplicate) => self.acknowledged(sequence, duplicate),
                    Err(_) => return,
                }
            }
        };
        let _ = tokio::time::timeout(STOP_FLUSH, flush).await;
        tracing::info!(waiting = self.outbox.len(), "fleet publisher stopped");
    }

    fn acknowledged(&mut self, sequence: u64, duplicate: bool) {
        self.outbox.remove(sequence);
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        if duplicate {
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .waiting
            .store(self.outbox.len() as u64, Ordering::Relaxed);
    }

    fn stream_config(&self) -> async_nats::jetstream::stream::Config {
        subjects::stream_config(
            &self.config.stream,
            self.config.replicas,
            self.config.max_age(),
        )
    }

    /// Turns a bus event into a message for the stream and writes it to the outbox.
    fn keep(&mut self, event: &Event) {
        let (subject, payload) = match event {
            Event::FaceMatched(m) => (
                self.subjects.alert(&m.camera),
                alert(&self.config.name, event, self.disclosure),
            ),
            Event::UnregisteredFace(u) => (
                self.subjects.alert(&u.camera),
                alert(&self.config.name, event, self.disclosure),
            ),
            Event::CameraStateChanged(c) => {
                let mut state = json!({
                    "type": "camera",
                    "camera": c.camera,
                    "time": c.time,
                    "appliance": self.config.name,
                });
                // `state` and, for a failure, `reason`, at the top as the bus prints them.
                if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&c.state) {
                    state.as_object_mut().expect("an object").extend(fields);
                }
                (self.subjects.camera(&c.camera), Some(state))
            }
            _ => return,
        };
        let Some(mut payload) = payload else {
            return;
        };
        payload["site"] = json!(self.config.site);
        let message = Message {
            id: uuid::Uuid::new_v4().to_string(),
            subject,
            payload,
        };
        match self.outbox.push(&message) {
            Ok(0) => {}
            Ok(removed) => {
                let total = self
                    .stats
                    .dropped
                    .fetch_add(removed as u64, Ordering::Relaxed)
                    + removed as u64;
                let now = tokio::time::Instant::now();
                if self.last_drop_log.is_none_or(|t| now - t > DROP_LOG) {
                    self.last_drop_log = Some(now);
                    tracing::warn!(
                        dropped_total = total,
                        max = self.config.outbox_max,
                        "fleet outbox full: the oldest messages were dropped unsent"
                    );
                }
            }
            Err(e) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "fleet: a message could not be written to the outbox; lost");
            }
        }
        self.stats
            .waiting
            .store(self.outbox.len() as u64, Ordering::Relaxed);
    }
}

/// Looks the stream up, creating it if the fleet has none.
async fn ensure_stream(
    jetstream: async_nats::jetstream::Context,
    config: async_nats::jetstream::stream::Config,
) -> Result<bool, String> {
    let name = config.name.clone();
    jetstream
        .get_or_create_stream(config)
        .await
        .map(|_| false)
        .map_err(|e| format!("stream {name}: {e}"))
}

/// Publishes with the message's id; `Ok(duplicate)` once the stream acknowledged it.
async fn publish(
    jetstream: async_nats::jetstream::Context,
    message: Message,
) -> Result<bool, String> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", message.id.as_str());
    let payload = serde_json::to_vec(&message.payload).expect("a payload serialises");
    let ack = jetstream
        .publish_with_headers(message.subject, headers, payload.into())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    Ok(ack.duplicate)
}
