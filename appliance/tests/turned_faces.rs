//! Turned faces (issue 18): every photo of the test data yields a face, and faces turned 30 to
//! 60 degrees are found, embedded and matched to their person. Real models, real runtime.
//!
//! `cargo test --release -p vigil --test turned_faces -- --nocapture` prints the recall figures
//! (as `vigil eval recall ../shared/testdata/faces ../shared/testdata/distractors` does).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use vigil::eval::{detection_recall, photos_under};
use vigil::parallel::{default_workers, map};
use vigil::vision::{cosine, FacePipeline, PipelineConfig, Runtime};

fn pipeline() -> FacePipeline {
    let runtime = Runtime::from_environment()
        .map(Arc::new)
        .expect("OpenVINO runtime (run ./just setup)");
    FacePipeline::new(&runtime, PipelineConfig::default()).expect("models")
}

/// Photos whose subject sits in near-profile, turned further than `max_yaw` (seen by eye):
/// found and tracked, not recognised.
const NEAR_PROFILES: [&str; 2] = ["Franklin_Damann_0001.jpg", "Scott_Gorelick_0001.jpg"];

/// Labelled photos showing someone else than their folder says (seen by eye): not held
/// against the matcher.
const MISLABELLED: [&str; 1] = ["Recep_Tayyip_Erdogan_0004.jpg"];

/// Faces read as turned at least this far count as turned here.
const TURNED: f32 = 30.0;

fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

/// The most prominent face's yaw and embedding, or why there is none.
fn subject(pipeline: &FacePipeline, image: &RgbImage) -> Result<(f32, Vec<f32>), String> {
    let located = pipeline.locate(image).map_err(|e| e.to_string())?;
    let face = pipeline
        .most_prominent(located, image.width(), image.height())
        .map_err(|e| e.to_string())?;
    let yaw = face.quality.yaw;
    let mut faces = pipeline.embed(vec![face]).map_err(|e| e.to_string())?;
    Ok((yaw, faces.swap_remove(0).embedding))
}

fn subjects(pipeline: &FacePipeline, photos: &[PathBuf]) -> Vec<Result<(f32, Vec<f32>), String>> {
    map(photos, default_workers(), &|| {}, |photo| {
        let image = vigil::vision::image::load_rgb(photo, u64::MAX).map_err(|e| e.to_string())?;
        subject(pipeline, &image)
    })
}

#[test]
fn every_test_photo_yields_a_face() {
    let pipeline = pipeline();
    let data = common::testdata();
    let photos = photos_under(&[data.join("faces"), data.join("distractors")]).unwrap();
    assert_eq!(photos.len(), 1314, "314 faces and 1,000 distractors");
    let report = detection_recall(&pipeline, &photos, default_workers(), &|| {});
    eprintln!(
        "detection recall: {} of {} photos yield a face ({:.4}); {} with a recognisable subject",
        report.found,
        report.photos,
        report.recall(),
        report.recognisable
    );
    for f in report.missed.iter().chain(&report.turned) {
        eprintln!("  {}: {}", f.file.display(), f.reason);
    }
    assert!(report.missed.is_empty(), "missed: {:?}", report.missed);
    assert_eq!(report.found, report.photos);
    for f in &report.turned {
        assert!(
            NEAR_PROFILES.contains(&file_name(&f.file)),
            "{} not recognised: {}",
            f.file.display(),
            f.reason
        );
    }
}

/// Every photo of the labelled identities whose subject is turned 30 degrees or more, against
/// a gallery of every other photo (each its own entry) and the 1,000 distractors: the nearest
/// entry is another photo of the same person.
#[test]
fn turned_faces_are_matched_to_their_person() {
    let pipeline = pipeline();
    let data = common::testdata();
    let mut identities: Vec<PathBuf> = std::fs::read_dir(data.join("faces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    identities.sort();
    let labelled: Vec<(PathBuf, String)> = identities
        .iter()
        .flat_map(|dir| {
            let name = file_name(dir).to_string();
            common::sorted_files(dir)
                .into_iter()
                .map(move |p| (p, name.clone()))
        })
        .collect();
    let distractors = common::sorted_files(&data.join("distractors"));
    let photos: Vec<PathBuf> = labelled
        .iter()
        .map(|(p, _)| p.clone())
        .chain(distractors.iter().cloned())
        .collect();
    let embedded = subjects(&pipeline, &photos);
    let gallery: Vec<(usize, &Vec<f32>)> = embedded
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.as_ref().ok().map(|(_, v)| (i, v)))
        .collect();
    let identity = |i: usize| labelled.get(i).map(|(_, name)| name.as_str());
    let mut turned = 0;
    let mut wrong = Vec::new();
    for (i, (path, name)) in labelled.iter().enumerate() {
        let (yaw, probe) = match &embedded[i] {
            Ok((yaw, probe)) if yaw.abs() >= TURNED => (*yaw, probe),
            _ => continue,
        };
        turned += 1;
        let nearest = gallery
            .iter()
            .filter(|(j, _)| *j != i)
            .map(|(j, v)| (cosine(probe, v), *j))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((score, j)) = nearest else {
            continue;
        };
        let got = identity(j).unwrap_or("a distractor");
        eprintln!(
            "{}: yaw {yaw:.0}, nearest {} ({got}) at {score:.3}",
            file_name(path),
            file_name(&photos[j])
        );
        if got != name {
            wrong.push(file_name(path).to_string());
        }
    }
    eprintln!(
        "turned faces matched: {} of {turned} (mislabelled: {MISLABELLED:?})",
        turned - wrong.len()
    );
    assert!(turned >= 10, "only {turned} turned faces in the test data");
    wrong.retain(|w| !MISLABELLED.contains(&w.as_str()));
    assert!(wrong.is_empty(), "matched to someone else: {wrong:?}");
}

/// Distractors (one photo a person) whose subject is turned 45 degrees or more, the six the
/// detector used to miss among them: mirrored, the same person turned the other way, each is
/// nearest to its own unmirrored photo among all 1,000.
#[test]
fn strongly_turned_distractors_match_their_mirror_image() {
    let pipeline = pipeline();
    let distractors = common::sorted_files(&common::testdata().join("distractors"));
    let embedded = subjects(&pipeline, &distractors);
    let mut turned = 0;
    let mut wrong = Vec::new();
    for (i, path) in distractors.iter().enumerate() {
        match &embedded[i] {
            Ok((yaw, _)) if yaw.abs() >= 45.0 => {}
            _ => continue,
        }
        turned += 1;
        let image = vigil::vision::image::load_rgb(path, u64::MAX).unwrap();
        let mirrored = image::imageops::flip_horizontal(&image);
        let (yaw, probe) = subject(&pipeline, &mirrored)
            .unwrap_or_else(|e| panic!("{}: mirrored: {e}", path.display()));
        let nearest = embedded
            .iter()
            .enumerate()
            .filter_map(|(j, e)| e.as_ref().ok().map(|(_, v)| (cosine(&probe, v), j)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .expect("a gallery");
        eprintln!(
            "{} mirrored: yaw {yaw:.0}, nearest {} at {:.3}",
            file_name(path),
            file_name(&distractors[nearest.1]),
            nearest.0
        );
        if nearest.1 != i {
            wrong.push(file_name(path).to_string());
        }
    }
    eprintln!(
        "mirrored turned distractors matched: {} of {turned}",
        turned - wrong.len()
    );
    assert!(
        turned >= 6,
        "only {turned} distractors turned 45 degrees or more"
    );
    assert!(wrong.is_empty(), "matched to someone else: {wrong:?}");
}
