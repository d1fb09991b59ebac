//! `vigil demo`: what the README's run command shows until the daemon exists. Enrols one photo
//! each of a few people of ../shared/testdata into a `demo` watchlist of a private data
//! directory, then identifies their other photos and a few strangers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use vigil::enrol::{enrol_person, scan_person_folders, PersonFolder, PersonSpec};
use vigil::watchlist::{Gallery, WatchlistStore, DEFAULT_THRESHOLD};

use super::Context;

#[derive(Args)]
pub struct DemoArgs {
    /// The test data folder (holding faces/ and nonfaces/).
    #[arg(long, env = "VIGIL_TESTDATA", default_value = "../shared/testdata")]
    testdata: PathBuf,
    /// How many people to enrol.
    #[arg(long, default_value_t = 8)]
    people: usize,
}

pub fn run(ctx: &Context, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let faces = args.testdata.join("faces");
    if !faces.is_dir() {
        bail!(
            "the demo needs the test data: {} is missing (see ../shared/testdata/README.md)",
            faces.display()
        );
    }
    let folders =
        scan_person_folders(&faces).with_context(|| format!("cannot read {}", faces.display()))?;
    let persons: Vec<_> = folders
        .persons
        .into_iter()
        .filter(|p| p.files.len() >= 2)
        .collect();
    let (enrolled, strangers) = persons.split_at(args.people.min(persons.len().saturating_sub(2)));

    let dir = ctx.data_dir.join("demo");
    // A fresh demo each time: its own folder, never the operator's watchlists.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let store = WatchlistStore::open(&dir)?;
    let list = store.create_watchlist("demo", DEFAULT_THRESHOLD)?;
    let pipeline = ctx.pipeline()?;
    println!(
        "Vigil demo: enrolling one photo each of {} people into watchlist `demo` ({})",
        enrolled.len(),
        dir.display()
    );
    for PersonFolder { name, files } in enrolled {
        let spec = PersonSpec {
            name: name.clone(),
            ..Default::default()
        };
        let report = enrol_person(&pipeline, &store, &list, &spec, &files[..1], 1, &|| {})?;
        for s in &report.skipped {
            println!("  skipped {}: {}", s.file.display(), s.reason);
        }
    }
    let gallery = Gallery::load(&store, chrono::Utc::now())?;
    println!("\nIdentifying other photos (threshold {DEFAULT_THRESHOLD}):");
    let mut right = 0;
    let mut total = 0;
    let probes = enrolled
        .iter()
        .map(|p| (p.name.as_str(), &p.files[1..], true))
        .chain(
            strangers
                .iter()
                .take(3)
                .map(|p| (p.name.as_str(), &p.files[..1], false)),
        );
    for (truth, files, is_enrolled) in probes {
        for file in files {
            total += 1;
            let verdict = match pipeline.primary_face_of_file(file) {
                Ok(face) => match gallery.identify(&face.embedding) {
                    Some(c) => {
                        let ok = is_enrolled && c.person == truth;
                        right += usize::from(ok);
                        format!(
                            "{} {} (score {:.2})",
                            if ok { "ok   " } else { "WRONG" },
                            c.person,
                            c.score
                        )
                    }
                    None => {
                        let ok = !is_enrolled;
                        right += usize::from(ok);
                        format!("{} unknown", if ok { "ok   " } else { "WRONG" })
                    }
                },
                Err(e) => format!("error {e}"),
            };
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tag = if is_enrolled { "" } else { " (not enrolled)" };
            println!("  {name:<40}{tag:<16} {verdict}");
        }
    }
    println!("\n{right} of {total} answered correctly.");
    Ok(ExitCode::SUCCESS)
}
