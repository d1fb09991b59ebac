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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sightings::synthetic::Generator;
    use crate::sightings::StoreOptions;
    use crate::watchlist::{Enrolment, Person};
    use uuid::Uuid;

    #[test]
    fn a_sweep_applies_every_period_and_the_validity_ends_and_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SightingStore::open(
            &dir.path().join("sightings"),
            StoreOptions {
                key_file: dir.path().join("keys"),
                min_free_bytes: 0,
                writable: true,
            },
        )
        .unwrap();
        let now = Utc::now();
        // Sightings over the last 40 days.
        let mut generator = Generator::new(
            3,
            10,
            2,
            now - chrono::Duration::days(40),
            chrono::Duration::days(40),
        );
        let batch = (0..400).map(|_| generator.sighting().1).collect();
        let ids = store.insert(batch).unwrap();

        let watchlists_dir = dir.path().join("watchlists");
        let watchlists = WatchlistStore::open(&watchlists_dir).unwrap();
        let list = watchlists.create_watchlist("staff", 0.5).unwrap();
        let person = |name: &str, valid_until| Person {
            id: Uuid::new_v4(),
            watchlist: list.id,
            name: name.into(),
            attributes: Default::default(),
            valid_until,
            created: now,
        };
        let gone = person("contractor", Some(now - chrono::Duration::hours(1)));
        let stays = person("employee", None);
        for p in [&gone, &stays] {
            let face = Enrolment {
                id: Uuid::new_v4(),
                person: p.id,
                source: "photo.jpg".into(),
                quality: 0.9,
                created: now,
                embedding: generator.face_of(0),
                face_kept: false,
                face_jpeg: None,
            };
            watchlists.enrol(p, &[face]).unwrap();
        }
        drop(watchlists);

        let audit = AuditLog::open(&dir.path().join("audit")).unwrap();
        let policy = PrivacyConfig {
            sighting_retention_days: 10.0,
            match_retention_days: 20.0,
            ..Default::default()
        };
        let report = sweep(&store, &watchlists_dir, &audit, &policy, now).unwrap();
        let expected = ids
            .iter()
            .filter(|id| {
                let age = now - id.start();
                age > chrono::Duration::days(if id.matched() { 20 } else { 10 })
            })
            .count();
        assert_eq!(report.expired_sightings, expected);
        assert!(store.ids().unwrap().iter().all(|id| {
            now - id.start() <= chrono::Duration::days(if id.matched() { 20 } else { 10 })
        }));
        assert_eq!(
            report.expired_persons,
            vec![format!("contractor ({})", gone.id)]
        );
        let names: Vec<String> = WatchlistStore::open(&watchlists_dir)
            .unwrap()
            .persons(None)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["employee"]);
        let records = audit.query(None, None, Some("system")).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].action, "retention.sweep");
        assert_eq!(records[0].detail["expired_sightings"], expected);

        // Nothing left to do: nothing audited.
        assert!(sweep(&store, &watchlists_dir, &audit, &policy, now)
            .unwrap()
            .is_empty());
        assert_eq!(audit.query(None, None, None).unwrap().len(), 1);
    }
}
