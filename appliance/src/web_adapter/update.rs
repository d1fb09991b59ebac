//! Software updates as the web UI sees them: the status the updater keeps, and an uploaded
//! bundle handed to it (`update::request`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use web::Failure;

use super::WebAppliance;
use crate::update::{self, request::RequestError, status};

impl WebAppliance {
    pub(super) fn update_status_now(&self) -> Value {
        let status = status::load(&self.parts.data_dir);
        json!({
            "running_slot": status.running_slot,
            "running_version": status.running_version.unwrap_or_else(update::running_version),
            "updates_possible": self.update_upload_folder().is_some(),
            "last": status.last,
        })
    }

    /// Updates are taken only where a release key is installed (an appliance image).
    pub(super) fn update_upload_folder(&self) -> Option<PathBuf> {
        update::public_key_path()
            .is_file()
            .then(|| update::request::upload_folder(&self.parts.data_dir))
    }

    pub(super) fn update_submit(
        &self,
        caller: &web::Caller,
        upload: &Path,
    ) -> Result<Value, Failure> {
        let by = Self::actor(caller);
        let manifest = update::request::submit(
            &self.parts.data_dir,
            &update::public_key_path(),
            upload,
            &by,
        )
        .map_err(|e| match e {
            RequestError::Busy(_) => Failure::Conflict(e.to_string()),
            RequestError::Io { .. } => super::unavailable(e),
            RequestError::Bundle(_) | RequestError::DataFormat(_) => {
                tracing::warn!(error = %e, "update bundle refused");
                Failure::Invalid(format!("update refused: {e}"))
            }
        })?;
        tracing::info!(version = %manifest.version, user = %by.user, "update bundle accepted");
        serde_json::to_value(&manifest).map_err(super::unavailable)
    }
}
