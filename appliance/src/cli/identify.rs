//! `vigil identify`: one JSON line per photo, with every face and its best match.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use vigil::parallel::default_workers;
use vigil::watchlist::Gallery;

use super::Context;

#[derive(Args)]
pub struct IdentifyArgs {
    #[arg(value_name = "IMG", required = true)]
    images: Vec<PathBuf>,
}

pub fn run(ctx: &Context, args: IdentifyArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let gallery = Gallery::load(&store, chrono::Utc::now())?;
    drop(store);
    let pipeline = ctx.pipeline()?;
    let results = vigil::parallel::map(&args.images, default_workers(), &|| {}, |path| {
        pipeline.analyze_file(path)
    });
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for (path, result) in args.images.iter().zip(results) {
        let line = match result {
            Ok((image, faces)) => {
                let faces: Vec<_> = faces
                    .iter()
                    .map(|face| {
                        // The best person overall, and the best one reaching their own list's
                        // threshold (not always the same with per-list thresholds).
                        // A face turned too far is reported, not matched.
                        let (best, matched) = if face.recognisable {
                            (
                                gallery.ranked(&face.embedding, 1).into_iter().next(),
                                gallery.identify(&face.embedding),
                            )
                        } else {
                            (None, None)
                        };
                        json!({
                            "bbox": face.detection.bbox,
                            "landmarks": face.detection.landmarks,
                            "detector_score": face.detection.score,
                            "quality": face.quality,
                            "recognisable": face.recognisable,
                            "match": matched,
                            "best": best,
                        })
                    })
                    .collect();
                json!({ "file": path, "width": image.width(), "height": image.height(), "faces": faces })
            }
            Err(e) => {
                failed = true;
                json!({ "file": path, "error": e.to_string() })
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
