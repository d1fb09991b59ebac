//! `vigil eval pairs FILE` and `vigil eval recall PATH...`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use vigil::eval::{detection_recall, evaluate, photos_under, score_pairs_file};
use vigil::parallel::default_workers;

use super::{progress_bar, Context};

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Verification accuracy on a `left,right,same` CSV (paths relative to the CSV's folder).
    Pairs {
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Detection recall: how many photos yield a face (each is taken to hold one), and the
    /// photos missed, with why. Folders are walked for pictures.
    Recall {
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Context, command: EvalCommand) -> anyhow::Result<ExitCode> {
    match command {
        EvalCommand::Pairs { file, json } => pairs(ctx, file, json),
        EvalCommand::Recall { paths, json } => recall(ctx, &paths, json),
    }
}

fn recall(ctx: &Context, paths: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let photos = photos_under(paths)?;
    let pipeline = ctx.pipeline()?;
    let bar = progress_bar(photos.len(), "finding faces");
    let report = detection_recall(&pipeline, &photos, default_workers(), &|| bar.inc(1));
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    for f in &report.missed {
        println!("missed: {}: {}", f.file.display(), f.reason);
    }
    for f in &report.turned {
        println!(
            "found, not recognisable: {}: {}",
            f.file.display(),
            f.reason
        );
    }
    println!("photos:             {}", report.photos);
    println!(
        "with a face:        {} (recall {:.4})",
        report.found,
        report.recall()
    );
    println!(
        "recognisable:       {} (the most prominent face turned at most {} degrees)",
        report.recognisable,
        pipeline.config().max_yaw
    );
    println!("missed:             {}", report.missed.len());
    Ok(ExitCode::SUCCESS)
}

fn pairs(ctx: &Context, file: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let pipeline = ctx.pipeline()?;
    let bar = progress_bar(0, "embedding photos");
    let (scores, failures) = score_pairs_file(&pipeline, &file, default_workers(), &|| bar.inc(1))?;
    bar.finish_and_clear();
    let report = evaluate(&scores);
    for f in &failures {
        eprintln!("vigil: no score for {}: {}", f.file.display(), f.reason);
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("pairs:              {}", report.pairs);
        println!("skipped (no face):  {}", report.skipped);
        println!(
            "accuracy:           {:.4} at threshold {:.4}",
            report.accuracy, report.threshold
        );
        match report.ten_fold_accuracy {
            Some(a) => println!("10-fold accuracy:   {a:.4}"),
            None => println!("10-fold accuracy:   n/a (not 6,000 pairs in LFW fold order)"),
        }
        println!("TAR at FAR 1e-2:    {:.4}", report.tar_at_far.far_1e2);
        println!("TAR at FAR 1e-3:    {:.4}", report.tar_at_far.far_1e3);
    }
    Ok(ExitCode::SUCCESS)
}
