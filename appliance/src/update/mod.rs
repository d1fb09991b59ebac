//! Signed A/B updates of the appliance (image-build/README.md, "Updates", has the whole
//! story). A release is a [`bundle`]: the root file system, kernel and initrd with a manifest
//! signed by the release key; the image carries the public key. [`install`] verifies a
//! bundle whole before it writes the slot not booted ([`slots`]), gives it a boot entry with
//! one try ([`entries`]) and chooses it for the next boot only; [`boot`] decides at boot how
//! the attempt ended. [`request`] carries an upload from the unprivileged daemon to the root
//! updater; [`status`] is what both record for the web UI.

pub mod boot;
pub mod bundle;
pub mod efi;
pub mod entries;
pub mod install;
pub mod request;
pub mod root_folder;
pub mod slots;
pub mod status;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

/// The appliance image's update key (its build takes it as an input).
pub const PUBLIC_KEY: &str = "/usr/share/vigil/update-key.pem";
/// What the image build records of the release it made.
const RELEASE_FILE: &str = "/usr/lib/vigil/release";

/// The update public key: `VIGIL_UPDATE_KEY` where set (tests, a development box), else the
/// image's.
pub fn public_key_path() -> PathBuf {
    std::env::var_os("VIGIL_UPDATE_KEY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PUBLIC_KEY))
}

/// The running release's version: the image's record (`version=` in
/// /usr/lib/vigil/release), else the binary's own.
pub fn running_version() -> String {
    release_field("version").unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}

/// When the running release was made (`source_date_epoch=`), where the image recorded it.
pub fn running_release_epoch() -> Option<i64> {
    release_field("source_date_epoch")?.parse().ok()
}

fn release_field(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(RELEASE_FILE).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
