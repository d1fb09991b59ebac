//! `vigil search`, `vigil sightings`, `vigil forget`, `vigil index`, `vigil key` and
//! `vigil audit`: the sighting store and the audit log from the command line. Every command
//! that reads or changes facial data is audited.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use vigil::audit::{Actor, AuditLog};
use vigil::sightings::synthetic::Generator;
use vigil::sightings::{self, Filter, OutcomeKind, Page, SightingId, SightingStore};

use super::Context;

#[derive(Args)]
pub struct SearchArgs {
    /// Rank sightings by similarity to the face in this photo.
    #[arg(long, conflicts_with = "sighting")]
    photo: Option<PathBuf>,
    /// Rank sightings by similarity to this sighting's face.
    #[arg(long)]
    sighting: Option<SightingId>,
    #[command(flatten)]
    filter: FilterArgs,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long, default_value_t = 0)]
    offset: usize,
}

#[derive(Args)]
struct FilterArgs {
    /// Sightings starting at or after this time (RFC 3339, e.g. 2026-11-28T08:00:00Z).
    #[arg(long)]
    from: Option<DateTime<Utc>>,
    /// Sightings starting before this time.
    #[arg(long)]
    to: Option<DateTime<Utc>>,
    /// Only these cameras (repeat the option for several).
    #[arg(long = "camera")]
    cameras: Vec<String>,
    /// Only matches of this watchlist (by name).
    #[arg(long)]
    watchlist: Option<String>,
    /// Only matches of this person (by id).
    #[arg(long)]
    person: Option<uuid::Uuid>,
    #[arg(long, value_enum)]
    outcome: Option<OutcomeArg>,
    /// Lowest match score.
    #[arg(long)]
    min_score: Option<f32>,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutcomeArg {
    Matched,
    Unregistered,
}

#[derive(Subcommand)]
pub enum SightingsCommand {
    /// One sighting as JSON; optionally its decrypted best-shot thumbnail to a file.
    Show {
        id: SightingId,
        #[arg(long)]
        thumbnail: Option<PathBuf>,
    },
    /// Counts, memory and disk use, and whether writes are possible.
    Stats,
    /// Write synthetic sightings (for benchmarks and tests); prints each id once it is
    /// acknowledged (synced).
    #[command(hide = true)]
    Generate {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 256)]
        batch: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop writing while less than this is free on the disk (as the daemon does).
        #[arg(long, default_value_t = 0)]
        min_free_mb: u64,
    },
}

#[derive(Args)]
pub struct ForgetArgs {
    /// Everything about this registered person (name or id): their sightings and their
    /// registration.
    #[arg(long, requires = "watchlist", conflicts_with = "photo")]
    person: Option<String>,
    #[arg(long)]
    watchlist: Option<String>,
    /// Every sighting whose face matches the face in this photo (a data-subject request).
    #[arg(long)]
    photo: Option<PathBuf>,
    /// Similarity from which a sighting counts as the photo's person.
    #[arg(long, default_value_t = vigil::watchlist::DEFAULT_THRESHOLD)]
    min_similarity: f32,
}

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Rebuild the searchable metadata index from the sighting database (the truth).
    Rebuild,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// New keys for thumbnails and for the users' sealed passwords: everything is
    /// re-encrypted with them, then the old keys are destroyed. Stop the daemon first.
    Rotate,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Audit records as JSON lines, oldest first.
    List {
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        #[arg(long)]
        user: Option<String>,
        /// CSV instead of JSON lines.
        #[arg(long)]
        csv: bool,
    },
    /// Check the hash chain; fails when a record was altered, removed or reordered.
    Verify,
}

impl Context {
    fn audit_log(&self) -> anyhow::Result<AuditLog> {
        Ok(AuditLog::open(&self.data_dir.join("audit"))?)
    }

    /// Audits a CLI operation as the user running it.
    pub(super) fn audit(
        &self,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> anyhow::Result<()> {
        self.audit_log()?
            .append(&Actor::local_user(), action, target, detail)
            .context("cannot write the audit log; the operation was done but not audited")?;
        Ok(())
    }

    fn sightings(&self, writable: bool) -> anyhow::Result<SightingStore> {
        let (store, _) = sightings::open_in(&self.data_dir, 0, writable).with_context(|| {
            format!(
                "cannot open the sighting store in {}",
                self.data_dir.display()
            )
        })?;
        Ok(store)
    }
}

impl FilterArgs {
    fn to_filter(&self, ctx: &Context) -> anyhow::Result<Filter> {
        let watchlists = match &self.watchlist {
            Some(name) => vec![ctx.store()?.require_watchlist(name)?.id],
            None => Vec::new(),
        };
        Ok(Filter {
            from: self.from,
            to: self.to,
            cameras: self.cameras.clone(),
            watchlists,
            persons: self.person.into_iter().collect(),
            outcome: self.outcome.map(|o| match o {
                OutcomeArg::Matched => OutcomeKind::Matched,
                OutcomeArg::Unregistered => OutcomeKind::Unregistered,
            }),
            min_score: self.min_score,
        })
    }
}

pub fn search(ctx: &Context, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let filter = args.filter.to_filter(ctx)?;
    let store = ctx.sightings(false)?;
    let page = Page {
        offset: args.offset,
        limit: args.limit,
    };
    let probe = match (&args.photo, args.sighting) {
        (Some(photo), _) => Some(ctx.pipeline()?.primary_face_of_file(photo)?.embedding),
        (None, Some(id)) => Some(
            store
                .embedding(id)?
                .with_context(|| format!("no face stored for sighting {id}"))?,
        ),
        (None, None) => None,
    };
    let mut out = std::io::stdout().lock();
    let returned = match probe {
        Some(probe) => {
            let hits = store.search_face(&probe, &filter, page)?;
            for hit in &hits {
                writeln!(out, "{}", serde_json::to_string(hit)?)?;
            }
            hits.len()
        }
        None => {
            let result = store.query(&filter, page)?;
            eprintln!("{} sightings match", result.total);
            for s in &result.sightings {
                writeln!(out, "{}", serde_json::to_string(s)?)?;
            }
            result.sightings.len()
        }
    };
    ctx.audit(
        "sightings.search",
        "",
        json!({
            "by": if args.photo.is_some() { "photo" } else if args.sighting.is_some() { "sighting" } else { "metadata" },
            "sighting": args.sighting,
            "filter": filter,
            "offset": args.offset,
            "limit": args.limit,
            "returned": returned,
        }),
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn sightings_command(ctx: &Context, command: SightingsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SightingsCommand::Show { id, thumbnail } => {
            let store = ctx.sightings(false)?;
            let sighting = store
                .get(id)?
                .with_context(|| format!("no sighting {id}"))?;
            println!("{}", serde_json::to_string_pretty(&sighting)?);
            if let Some(path) = &thumbnail {
                let jpeg = store
                    .thumbnail(id)?
                    .with_context(|| format!("no thumbnail kept for sighting {id}"))?;
                std::fs::write(path, jpeg)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            ctx.audit(
                "sightings.read",
                &id.to_string(),
                json!({ "thumbnail": thumbnail.is_some() }),
            )?;
        }
        SightingsCommand::Stats => {
            println!(
                "{}",
                serde_json::to_string_pretty(&ctx.sightings(false)?.stats())?
            );
        }
        SightingsCommand::Generate {
            count,
            batch,
            seed,
            min_free_mb,
        } => {
            let (store, _) = sightings::open_in(&ctx.data_dir, min_free_mb << 20, true)?;
            let now = Utc::now();
            let mut generator = Generator::new(
                seed,
                100,
                4,
                now - chrono::Duration::days(7),
                chrono::Duration::days(7),
            );
            let mut out = std::io::stdout().lock();
            let mut written = 0;
            let mut committed = std::time::Instant::now();
            while written < count {
                let n = batch.min(count - written);
                let ids = store.insert((0..n).map(|_| generator.sighting().1).collect())?;
                for id in ids {
                    writeln!(out, "{id}")?;
                }
                out.flush()?;
                written += n;
                // As the recorder does: the index trails by up to a second.
                if committed.elapsed() >= std::time::Duration::from_secs(1) {
                    store.commit_index()?;
                    committed = std::time::Instant::now();
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn forget(ctx: &Context, args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.sightings(true)?;
    let report = match (&args.person, &args.photo) {
        (Some(person), _) => {
            let watchlists = ctx.store()?;
            let list =
                watchlists.require_watchlist(args.watchlist.as_deref().unwrap_or_default())?;
            let found = watchlists.find_person(&list, person)?.ok_or_else(|| {
                vigil::watchlist::StoreError::NoPerson(person.clone(), list.name.clone())
            })?;
            let sightings = store.delete_person(found.id)?;
            let registration = watchlists.delete_person(&found)?;
            json!({
                "person": found.name,
                "person_id": found.id,
                "watchlist": list.name,
                "enrolled_faces": registration.enrolments,
                "sightings": sightings.sightings,
                "sighting_faces": sightings.faces,
                "sighting_ids": sightings.ids,
            })
        }
        (None, Some(photo)) => {
            let probe = ctx.pipeline()?.primary_face_of_file(photo)?.embedding;
            let sightings = store.delete_matching(&probe, args.min_similarity)?;
            json!({
                "photo": photo.file_name().map(|f| f.to_string_lossy().into_owned()),
                "min_similarity": args.min_similarity,
                "sightings": sightings.sightings,
                "sighting_faces": sightings.faces,
                "sighting_ids": sightings.ids,
            })
        }
        (None, None) => {
            anyhow::bail!("say what to forget: --person NAME --watchlist LIST, or --photo IMG")
        }
    };
    ctx.audit("data_subject.delete", "", report.clone())?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

pub fn index(ctx: &Context, command: IndexCommand) -> anyhow::Result<ExitCode> {
    match command {
        IndexCommand::Rebuild => {
            let n = ctx.sightings(true)?.rebuild_index()?;
            ctx.audit("index.rebuild", "", json!({ "sightings": n }))?;
            println!("indexed {n} sightings");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn key(ctx: &Context, command: KeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::Rotate => {
            // The store's lock also tells that no daemon is running (it holds the users too).
            let store = ctx.sightings(true)?;
            let n = store.rotate_key()?;
            ctx.audit("key.rotate", "thumbnails", json!({ "resealed": n }))?;
            println!("re-encrypted {n} thumbnails with a new key; the old key is destroyed");
            let (mut users, _) = vigil::users::FileUsers::open(&ctx.data_dir)?;
            let n = users.rotate_key()?;
            ctx.audit("key.rotate", "users", json!({ "resealed": n }))?;
            println!("re-encrypted {n} user passwords with a new key; the old key is destroyed");
            let n = vigil::control::Control::rotate_key(&ctx.data_dir)?;
            ctx.audit("key.rotate", "camera passwords", json!({ "resealed": n }))?;
            println!("re-encrypted {n} camera passwords with a new key; the old key is destroyed");
            let n = vigil::watchlist::WatchlistStore::open_in(&ctx.data_dir)?.rotate_face_key()?;
            ctx.audit("key.rotate", "enrolled faces", json!({ "resealed": n }))?;
            println!("re-encrypted {n} enrolled faces with a new key; the old key is destroyed");
            drop(store);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(ctx: &Context, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let log = ctx.audit_log()?;
    match command {
        AuditCommand::List {
            from,
            to,
            user,
            csv,
        } => {
            let records = log.query(from, to, user.as_deref())?;
            let mut out = std::io::stdout().lock();
            if csv {
                let mut w = csv::Writer::from_writer(&mut out);
                w.write_record([
                    "seq", "time", "user", "origin", "action", "target", "detail", "hash",
                ])?;
                for r in &records {
                    w.write_record([
                        r.seq.to_string(),
                        r.time.to_rfc3339(),
                        r.actor.user.clone(),
                        r.actor.origin.clone(),
                        r.action.clone(),
                        r.target.clone(),
                        r.detail.to_string(),
                        r.hash.clone(),
                    ])?;
                }
                w.flush()?;
            } else {
                for r in &records {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                }
            }
        }
        AuditCommand::Verify => {
            let v = log.verify()?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            if v.broken_at.is_some() {
                return Ok(ExitCode::from(3));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
