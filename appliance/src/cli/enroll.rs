//! `vigil enroll`: photos of one person, or a folder of person folders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use vigil::enrol::{
    enrol_batch, scan_person_folders, EnrolJob, EnrolReport, PersonFolder, PersonSpec, Photo,
};
use vigil::parallel::default_workers;

use super::{progress_bar, Context};

#[derive(Args)]
pub struct EnrollArgs {
    /// The watchlist to enrol into (created with the default threshold if missing).
    #[arg(long)]
    watchlist: String,
    /// The person the photos show (with IMG...).
    #[arg(long, requires = "images", conflicts_with = "dir")]
    name: Option<String>,
    /// A folder holding one sub-folder of photos per person, named after the person.
    #[arg(long, conflicts_with = "images")]
    dir: Option<PathBuf>,
    /// A free-form attribute of the person, as KEY=VALUE (repeatable).
    #[arg(long = "attr", value_parser = parse_attribute)]
    attributes: Vec<(String, String)>,
    /// After this date (YYYY-MM-DD, or an RFC 3339 instant) the person is no longer matched.
    #[arg(long, value_parser = parse_instant)]
    valid_until: Option<DateTime<Utc>>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Photos of the person named by --name.
    #[arg(value_name = "IMG")]
    images: Vec<PathBuf>,
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| format!("`{s}` is neither YYYY-MM-DD nor an RFC 3339 instant"))
}

pub fn run(ctx: &Context, args: EnrollArgs) -> anyhow::Result<ExitCode> {
    let attributes: BTreeMap<String, String> = args.attributes.into_iter().collect();
    let jobs: Vec<PersonFolder>;
    let mut report = EnrolReport::default();
    if let Some(dir) = &args.dir {
        let folders =
            scan_person_folders(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        jobs = folders.persons;
        report.skipped.extend(folders.stray);
    } else if let Some(name) = args.name {
        jobs = vec![PersonFolder {
            name,
            files: args.images,
        }];
    } else {
        bail!("give --name with photos, or --dir with a folder of person folders");
    }

    let store = ctx.store()?;
    let list = match store.watchlist_by_name(&args.watchlist)? {
        Some(list) => list,
        None => store.create_watchlist(&args.watchlist, vigil::watchlist::DEFAULT_THRESHOLD)?,
    };
    let pipeline = ctx.pipeline()?;
    let total: usize = jobs.iter().map(|p| p.files.len()).sum();
    let bar = progress_bar(total, "enrolling");
    let workers = default_workers();
    let jobs: Vec<EnrolJob> = jobs
        .into_iter()
        .map(|PersonFolder { name, files }| EnrolJob {
            spec: PersonSpec {
                name,
                attributes: attributes.clone(),
                valid_until: args.valid_until,
            },
            files: files.into_iter().map(Photo::File).collect(),
        })
        .collect();
    report.merge(enrol_batch(
        &pipeline,
        &store,
        &list,
        &jobs,
        workers,
        &|| bar.inc(1),
    )?);
    bar.finish_and_clear();
    ctx.audit(
        "watchlist.enrol",
        &list.name,
        serde_json::json!({
            "persons": report.persons.len(),
            "faces": report.enrolled.len(),
            "skipped": report.skipped.len(),
        }),
    )?;

    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "enrolled {} faces of {} persons into watchlist {}; skipped {} files",
            report.enrolled.len(),
            report.persons.len(),
            list.name,
            report.skipped.len()
        );
        for s in &report.skipped {
            println!("  skipped {}: {}", s.file.display(), s.reason);
        }
    }
    Ok(if report.enrolled.is_empty() && total > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
