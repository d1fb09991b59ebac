//! The boot side of an update. On a trial boot (systemd-boot booted an entry with a boot
//! counter), [`wait_until_ready`] gives the daemon a time limit to report READY; past it the
//! unit fails and systemd reboots the box, whose next boot is the old slot (the one-shot
//! choice is spent). A boot that completes is blessed by `systemd-bless-boot`; then
//! [`settle`] records what runs and how the last update ended, and makes a new slot that
//! came up the default.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::install::ApplyError;
use super::root_folder::RootFolder;
use super::slots::Layout;
use super::status::{self, Phase, UpdateStatus};
use super::{entries, running_version};
use crate::audit::{Actor, AuditError, AuditLog};

/// Waits until `unit` is active (for a `Type=notify` service: READY was sent).
pub fn wait_until_ready(unit: &str, limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        let o = Command::new("systemctl")
            .args(["is-active", unit])
            .output()
            .map_err(|e| format!("systemctl: {e}"))?;
        last = String::from_utf8_lossy(&o.stdout).trim().to_string();
        match last.as_str() {
            "active" => return Ok(started.elapsed()),
            // Restarts used up: it will not come up on this boot.
            "failed" => return Err(format!("{unit} failed on this trial boot")),
            _ => {}
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Err(format!(
        "{unit} is {last:?}, not active, {} s into this trial boot",
        limit.as_secs()
    ))
}

/// Records the running slot and version, and ends the last attempt: succeeded (its slot
/// runs: made the default), rolled back (the old slot runs: the failed slot's entries go),
/// or interrupted (it stopped while verifying or writing). The audit log is opened only
/// when an attempt ends (this runs at every boot, possibly before the daemon first made its
/// folders). The running slot's entries are never removed, whatever the status says.
pub fn settle(
    data_dir: &Path,
    layout: &Layout,
    audit: impl FnOnce() -> Result<AuditLog, AuditError>,
) -> Result<UpdateStatus, ApplyError> {
    let io = |what: &'static str| {
        move |source| ApplyError::Io {
            what: what.into(),
            source,
        }
    };
    let folder = RootFolder::open(data_dir).map_err(io("the update folder"))?;
    let _one_at_a_time = folder
        .try_lock()
        .map_err(io("the update lock"))?
        .ok_or_else(|| ApplyError::Busy("an update is being applied".into()))?;
    let mut status = status::load_from(&folder);
    status.running_slot = Some(layout.booted);
    status.running_version = Some(running_version());
    let booted = layout.booted;
    let mut ended = None;
    if let Some(last) = status.last.as_mut() {
        let version = last.version.clone().unwrap_or_else(|| "?".into());
        let slot = last.slot.unwrap_or(booted.other());
        let other = (slot != booted).then_some(slot);
        match (last.phase, other) {
            (Phase::Installed, None) => {
                entries::make_default(&layout.esp, booted)?;
                last.phase = Phase::Succeeded;
                last.message = format!(
                    "version {version} came up in slot {booted} and is now the default; slot {} \
                     keeps the previous version until the next update",
                    booted.other()
                );
                ended = Some("update.succeeded");
            }
            (Phase::Installed, Some(failed)) => {
                entries::remove_slot(&layout.esp, failed)?;
                last.phase = Phase::RolledBack;
                last.message = format!(
                    "version {version} in slot {failed} did not become ready on its trial boot; \
                     slot {booted} ({}) booted again by itself",
                    status.running_version.as_deref().unwrap_or("?")
                );
                ended = Some("update.rolled_back");
            }
            (Phase::Verifying | Phase::Writing, other) => {
                // Only a write leaves a slot half made (and its entries were removed first).
                if let (Phase::Writing, Some(half)) = (last.phase, other) {
                    entries::remove_slot(&layout.esp, half)?;
                }
                last.phase = Phase::Interrupted;
                last.message = format!(
                    "the update to version {version} stopped while {} slot {slot} (power cut \
                     or crash); slot {booted} runs on. Apply the update again",
                    if last.written > 0 {
                        "writing"
                    } else {
                        "verifying, before writing"
                    }
                );
                ended = Some("update.interrupted");
            }
            _ => {}
        }
        if ended.is_some() {
            last.finished = Some(Utc::now());
        }
    }
    status::save_to(&folder, &status).map_err(io("the update status"))?;
    if let (Some(action), Some(last)) = (ended, &status.last) {
        let detail = serde_json::to_value(last).unwrap_or_default();
        let target = last.version.clone().unwrap_or_default();
        if let Err(e) =
            audit().and_then(|log| log.append(&Actor::system(), action, &target, detail))
        {
            tracing::error!(error = %e, action, "audit record not written");
        }
    }
    Ok(status)
}
