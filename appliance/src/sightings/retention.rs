//! Retention: deletes what the privacy settings no longer allow the appliance to keep.
//! Unmatched sightings after their period, matches after theirs, the oldest sightings past
//! the face cap, registered persons past their validity end (who then no longer match), and
//! audit months past the audit period. Each sweep that removes anything is audited.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::Serialize;

use super::{SightingId, SightingStore, StoreError};
use crate::audit::{Actor, AuditError, AuditLog};
use crate::config::PrivacyConfig;
use crate::watchlist::{self, WatchlistStore};

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Sightings(#[from] StoreError),
    #[error("watchlists: {0}")]
    Watchlists(#[from] watchlist::StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SweepReport {
    /// Sightings past their retention period.
    pub expired_sightings: usize,
    /// Sightings removed to stay within the face cap.
    pub over_cap: usize,
    /// Registered persons past their validity end, as `name (id)`.
    pub expired_persons: Vec<String>,
    pub expired_audit_records: usize,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn days_before(now: DateTime<Utc>, days: f64) -> DateTime<Utc> {
    now - chrono::Duration::milliseconds((days * 86_400_000.0) as i64)
}

/// One sweep at `now`. `watchlists_dir` is opened only for the sweep (the CLI enrols into
/// it while the daemon runs); a busy store is skipped until the next sweep.
pub fn sweep(
    store: &SightingStore,
    watchlists_dir: &Path,
    audit: &AuditLog,
    policy: &PrivacyConfig,
    now: DateTime<Utc>,
) -> Result<SweepReport, RetentionError> {
    let mut report = SweepReport {
        expired_sightings: store.delete_older(
            SightingId::first_at(days_before(now, policy.sighting_retention_days)),
            SightingId::first_at(days_before(now, policy.match_retention_days)),
        )?,
        over_cap: store.enforce_face_cap(policy.max_stored_faces)?,
        ..Default::default()
    };
    match WatchlistStore::open(watchlists_dir) {
        Ok(watchlists) => {
            for person in watchlists.persons(None)? {
                if !person.is_valid_at(now) {
                    watchlists.delete_person(&person)?;
                    report
                        .expired_persons
                        .push(format!("{} ({})", person.name, person.id));
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "watchlists busy; validity ends applied at the next sweep")
        }
    }
    report.expired_audit_records = audit.expire(days_before(now, policy.audit_retention_days))?;
    if !report.is_empty() {
        audit.append(
            &Actor::system(),
            "retention.sweep",
            "",
            serde_json::to_value(&report).expect("reports serialise"),
        )?;
        tracing::info!(?report, "retention applied");
    }
    Ok(report)
}

/// Sweeps every `retention_interval_s` until stopped.
pub struct Retention {
    stop: crossbeam_channel::Sender<()>,
    handle: JoinHandle<()>,
}

impl Retention {
    /// `persons_removed` is called after a sweep deleted registered persons (to reload the
    /// gallery, so they stop matching at once).
    pub fn start(
        store: Arc<SightingStore>,
        watchlists_dir: PathBuf,
        audit: Arc<AuditLog>,
        policy: Arc<RwLock<PrivacyConfig>>,
        persons_removed: Box<dyn Fn() + Send>,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let handle = std::thread::Builder::new()
            .name("vigil-retention".into())
            .spawn(move || loop {
                let policy = policy.read().clone();
                match sweep(&store, &watchlists_dir, &audit, &policy, Utc::now()) {
                    Ok(report) if !report.expired_persons.is_empty() => persons_removed(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "retention sweep failed; retried at the next")
                    }
                }
                let interval = Duration::from_secs_f64(policy.retention_interval_s);
                match stopped.recv_timeout(interval) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                    _ => return,
                }
            })?;
        Ok(Self { stop, handle })
    }

    pub fn stop(self) {
        drop(self.stop);
        if self.handle.join().is_err() {
            tracing::error!("retention thread panicked");
        }
    }
}
