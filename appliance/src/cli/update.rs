//! `vigil update`: verify and apply signed update bundles, the boot steps of an update, and
//! `pack`, which makes a bundle at release time (`./just update-bundle KEY`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use vigil::audit::{Actor, AuditLog};
use vigil::update::{
    self, boot, bundle, install, install::Installer, request, slots::Layout, status,
};

#[derive(Subcommand)]
pub enum UpdateCommand {
    /// Check a bundle whole (signature, digests, compatibility); writes nothing.
    Verify {
        bundle: PathBuf,
        /// The update public key (default: the image's).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Verify a bundle, write it into the slot not booted and boot it once (root). If the
    /// new slot's daemon does not become ready, the box comes back on the old slot.
    Apply {
        bundle: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
        /// Do not reboot afterwards (the next boot tries the new slot).
        #[arg(long)]
        no_reboot: bool,
        /// Take a release older than the running one.
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Apply the bundle uploaded in the web UI (vigil-update.service runs this).
    ApplyRequest {
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        no_reboot: bool,
    },
    /// The running slot and version, and how the last update went (JSON).
    Status,
    /// On a trial boot: wait until the daemon is ready, failing after LIMIT seconds
    /// (vigil-boot-check.service; its failure reboots into the old slot).
    BootCheck {
        #[arg(long, default_value_t = 600)]
        limit: u64,
    },
    /// At every boot, once it is complete: record what runs, end the last attempt, make a
    /// new slot that came up the default (vigil-update-settle.service).
    Settle,
    /// Make a signed bundle (release time): the root squashfs, kernel and initrd of an image
    /// build, signed with the Ed25519 private key KEY. SOURCE_DATE_EPOCH fixes its time.
    Pack {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        kernel: PathBuf,
        #[arg(long)]
        initrd: PathBuf,
        #[arg(long)]
        version: String,
        /// The kernel command line without `root=`.
        #[arg(long)]
        cmdline: String,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(ctx: &super::Context, command: UpdateCommand) -> anyhow::Result<ExitCode> {
    let data_dir = &ctx.data_dir;
    match command {
        UpdateCommand::Verify { bundle, key } => verify(data_dir, &bundle, key),
        UpdateCommand::Apply {
            bundle,
            key,
            no_reboot,
            allow_downgrade,
        } => {
            let how = How {
                no_reboot,
                allow_downgrade,
            };
            apply(data_dir, &bundle, key, &Actor::local_user(), how)
        }
        UpdateCommand::ApplyRequest { key, no_reboot } => {
            let Some((folder, actor)) = request::take(data_dir)? else {
                println!("no update request waits");
                return Ok(ExitCode::SUCCESS);
            };
            if !folder.is_plain(install::INCOMING) {
                let _ = folder.remove(install::INCOMING);
                bail!("the uploaded bundle is not a plain file");
            }
            let how = How {
                no_reboot,
                allow_downgrade: false,
            };
            let bundle = folder.file_path(install::INCOMING);
            let outcome = apply(data_dir, &bundle, key, &actor, how);
            let _ = folder.remove(install::INCOMING);
            outcome
        }
        UpdateCommand::Status => {
            println!("{}", serde_json::to_string_pretty(&status::load(data_dir))?);
            Ok(ExitCode::SUCCESS)
        }
        UpdateCommand::BootCheck { limit } => {
            match boot::wait_until_ready("vigil.service", Duration::from_secs(limit)) {
                Ok(took) => {
                    println!(
                        "Vigil update: trial boot: vigil ready after {} s",
                        took.as_secs()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    println!(
                        "Vigil update: trial boot failed: {why}; rebooting into the previous slot"
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        UpdateCommand::Settle => {
            let layout = Layout::discover()?;
            let settled = boot::settle(data_dir, &layout, || {
                AuditLog::open(&data_dir.join("audit"))
            })?;
            println!(
                "Vigil update: running slot {}, version {}",
                layout.booted,
                settled.running_version.as_deref().unwrap_or("?")
            );
            if let Some(last) = &settled.last {
                println!(
                    "Vigil update: last update {:?}: {}",
                    last.phase, last.message
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        UpdateCommand::Pack {
            key,
            root,
            kernel,
            initrd,
            version,
            cmdline,
            out,
        } => pack(&key, [&root, &kernel, &initrd], version, cmdline, &out),
    }
}

fn key(path: Option<PathBuf>) -> PathBuf {
    path.unwrap_or_else(update::public_key_path)
}

fn audit_log(data_dir: &Path) -> anyhow::Result<AuditLog> {
    Ok(AuditLog::open(&data_dir.join("audit"))?)
}

fn verify(data_dir: &Path, path: &Path, key_path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let key = bundle::load_public_key(&key(key_path))?;
    let verified = bundle::verify(path, &key)?;
    verified
        .manifest
        .check_compatible(vigil::data_format::read(data_dir)?)?;
    println!("{}", serde_json::to_string_pretty(&verified.manifest)?);
    eprintln!(
        "{}: version {}, signature and digests verified",
        path.display(),
        verified.manifest.version
    );
    Ok(ExitCode::SUCCESS)
}

/// How an update is applied: options of the console's `apply`.
struct How {
    no_reboot: bool,
    allow_downgrade: bool,
}

fn apply(
    data_dir: &Path,
    path: &Path,
    key_path: Option<PathBuf>,
    actor: &Actor,
    how: How,
) -> anyhow::Result<ExitCode> {
    // SAFETY: no arguments; reads the process's effective user.
    if unsafe { libc::geteuid() } != 0 {
        bail!("applying an update writes the disk's other slot: run it as root");
    }
    let layout = Layout::discover()?;
    let key = bundle::load_public_key(&key(key_path))?;
    let audit = audit_log(data_dir)?;
    let installer = Installer {
        data_dir,
        layout: &layout,
        key: &key,
        audit: &audit,
        actor,
        oldest_release: if how.allow_downgrade {
            None
        } else {
            update::running_release_epoch()
        },
    };
    let attempt = installer.apply(path)?;
    println!("{}", attempt.message);
    if !how.no_reboot {
        let o = Command::new("systemctl")
            .arg("reboot")
            .status()
            .context("systemctl reboot")?;
        if !o.success() {
            bail!("the update is installed but `systemctl reboot` failed: reboot to try it");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pack(
    key: &Path,
    [root, kernel, initrd]: [&PathBuf; 3],
    version: String,
    cmdline: String,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let key = bundle::load_private_key(key)?;
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.parse().context("SOURCE_DATE_EPOCH is not a number")?,
        Err(_) => 0,
    };
    let release = bundle::Release {
        version,
        cmdline,
        source_date_epoch,
    };
    let files = [
        (bundle::ROOT, root.as_path()),
        (bundle::KERNEL, kernel.as_path()),
        (bundle::INITRD, initrd.as_path()),
    ];
    let manifest = bundle::pack(out, &key, &release, &files)?;
    eprintln!(
        "{}: version {} signed ({} bytes of root file system)",
        out.display(),
        manifest.version,
        manifest.files[0].size
    );
    Ok(ExitCode::SUCCESS)
}
