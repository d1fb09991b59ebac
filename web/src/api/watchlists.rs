//! `/api/v1/watchlists`, `/api/v1/persons`, `/api/v1/jobs`: watchlists and their persons
//! (operator), and enrolment by upload: one photo with a person's name, or a batch as a
//! multipart set of files named `PERSON/FILE` (a folder per person, as a browser sends a
//! picked folder) or as zip archives laid out the same way. A batch becomes a job whose
//! progress and report of rejected photos are polled.

use std::io::Read as _;
use std::sync::Arc;

use bytes::{Buf as _, Bytes};
use futures_util::TryStreamExt as _;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply as _};

use super::{blocking, caller, changing, json_body, json_reply, refuse, with};
use super::{App, Ctx, Routes};
use crate::port::{Role, Upload};
use crate::sessions::Sessions;

/// A whole enrolment upload (FacePRO's 10,000 photos of ~50 KB fit several times).
pub const MAX_UPLOAD: u64 = 2 * 1024 * 1024 * 1024;
/// One photo, also inside a zip.
pub const MAX_PHOTO: u64 = 20 * 1024 * 1024;
/// Files in one upload, zips' entries included.
const MAX_FILES: usize = 100_000;
/// The photos of one upload together, zips unpacked: a zip of many highly compressed
/// entries (a zip bomb) stops here, not when memory runs out.
pub const MAX_UNPACKED: u64 = 1024 * 1024 * 1024;

pub(super) fn routes(app: App, sessions: Arc<Sessions>) -> Routes {
    let v1 = warp::path("api").and(warp::path("v1"));

    let list = v1
        .and(warp::path!("watchlists"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Viewer, false))
        .and(with(app.clone()))
        .and_then(|_ctx: Ctx, app: App| async move {
            let lists = blocking(move || app.watchlists()).await?;
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &lists))
        });

    let create = v1
        .and(warp::path!("watchlists"))
        .and(warp::post())
        .and(changing(
            app.clone(),
            sessions.clone(),
            Role::Operator,
            false,
        ))
        .and(json_body::<serde_json::Value>())
        .and(with(app.clone()))
        .and_then(|ctx: Ctx, body: serde_json::Value, app: App| async move {
            let (worker, spec) = (app.clone(), body.clone());
            let list = blocking(move || worker.create_watchlist(spec)).await?;
            let id = list["id"].as_str().unwrap_or_default().to_string();
            app.audit(&ctx.caller, "watchlist.create", &id, body);
            Ok::<_, Rejection>(json_reply(StatusCode::CREATED, &list))
        });

    let update = v1
        .and(warp::path!("watchlists" / String))
        .and(warp::patch())
        .and(changing(
            app.clone(),
            sessions.clone(),
            Role::Operator,
            false,
        ))
        .and(json_body::<serde_json::Value>())
        .and(with(app.clone()))
        .and_then(
            |id: String, ctx: Ctx, body: serde_json::Value, app: App| async move {
                let (worker, list_id, changes) = (app.clone(), id.clone(), body.clone());
                let list = blocking(move || worker.update_watchlist(&list_id, changes)).await?;
                app.audit(&ctx.caller, "watchlist.change", &id, body);
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &list))
            },
        );

    let delete = v1
        .and(warp::path!("watchlists" / String))
        .and(warp::delete())
        .and(changing(
            app.clone(),
            sessions.clone(),
            Role::Operator,
            false,
        ))
        .and(with(app.clone()))
        .and_then(|id: String, ctx: Ctx, app: App| async move {
            let (worker, list_id) = (app.clone(), id.clone());
            let removed = blocking(move || worker.delete_watchlist(&list_id)).await?;
            app.audit(&ctx.caller, "watchlist.delete", &id, removed.clone());
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &removed))
        });

    let persons = v1
        .and(warp::path!("watchlists" / String / "persons"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Operator, false))
        .and(with(app.clone()))
        .and_then(|id: String, _ctx: Ctx, app: App| async move {
            let persons = blocking(move || app.persons(&id)).await?;
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &persons))
        });

    let update_person = v1
        .and(warp::path!("persons" / String))
        .and(warp::patch())
        .and(changing(
            app.clone(),
            sessions.clone(),
            Role::Operator,
            false,
        ))
        .and(json_body::<serde_json::Value>())
        .and(with(app.clone()))
        .and_then(
            |id: String, ctx: Ctx, body: serde_json::Value, app: App| async move {
                let (worker, person, changes) = (app.clone(), id.clone(), body.clone());
                let updated = blocking(move || worker.update_person(&person, changes)).await?;
                app.audit(&ctx.caller, "person.change", &id, body);
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &updated))
            },
        );

    let delete_person = v1
        .and(warp::path!("persons" / String))
        .and(warp::delete())
        .and(changing(
            app.clone(),
            sessions.clone(),
            Role::Operator,
            false,
        ))
        .and(with(app.clone()))
        .and_then(|id: String, ctx: Ctx, app: App| async move {
            let (worker, person) = (app.clone(), id.clone());
            let removed = blocking(move || worker.delete_person(&person)).await?;
            app.audit(&ctx.caller, "person.delete", &id, removed.clone());
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &removed))
        });

    let enrol = v1
        .and(warp::path!("watchlists" / String / "enrolments"))
        .and(warp::post())
        .and(changing(
            app.clone(),
            sessions.clone(),
            Role::Operator,
            false,
        ))
        .and(warp::body::content_length_limit(MAX_UPLOAD))
        .and(warp::multipart::form().max_length(MAX_UPLOAD))
        .and(with(app.clone()))
        .and_then(
            |id: String, ctx: Ctx, form: warp::multipart::FormData, app: App| async move {
                let (person, files) = read_form(form).await?;
                let (uploads, rejected) =
                    tokio::task::spawn_blocking(move || unpack(person.as_deref(), files))
                        .await
                        .map_err(|_| {
                            refuse(StatusCode::INTERNAL_SERVER_ERROR, "upload failed")
                        })??;
                if uploads.is_empty() && rejected.is_empty() {
                    return Err(refuse(StatusCode::BAD_REQUEST, "no photos in the upload"));
                }
                let detail = json!({ "photos": uploads.len(), "rejected": rejected.len() });
                let job = app.start_enrolment(&ctx.caller, &id, uploads, rejected)?;
                app.audit(&ctx.caller, "enrolment.start", &id, detail);
                Ok::<_, Rejection>(json_reply(StatusCode::ACCEPTED, &job))
            },
        );

    let job = v1
        .and(warp::path!("jobs" / String))
        .and(warp::get())
        .and(caller(app.clone(), sessions, Role::Operator, false))
        .and(with(app))
        .and_then(|id: String, _ctx: Ctx, app: App| async move {
            let job = app
                .job(&id)
                .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no such job"))?;
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &job))
        });

    list.or(create)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(persons)
        .unify()
        .or(update_person)
        .unify()
        .or(delete_person)
        .unify()
        .or(enrol)
        .unify()
        .or(job)
        .unify()
        .map(|r: warp::reply::Response| r.into_response())
        .boxed()
}

/// An enrolment upload as the enrolment route reads it (body length, multipart form, zips
/// unpacked within `budget`), without sessions or an appliance: the fuzz harness's way in.
/// Answers 200 with the counts of photos and rejected files, or the route's refusal. Not part
/// of the API.
#[doc(hidden)]
pub async fn upload_answer<B>(request: warp::http::Request<B>, budget: u64) -> warp::reply::Response
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let filter = warp::body::content_length_limit(MAX_UPLOAD)
        .and(warp::multipart::form().max_length(MAX_UPLOAD))
        .and_then(move |form: warp::multipart::FormData| async move {
            let (person, files) = read_form(form).await?;
            let (uploads, rejected) = unpack_within(person.as_deref(), files, budget)?;
            let counts = json!({ "photos": uploads.len(), "rejected": rejected.len() });
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &counts))
        })
        .recover(super::recover)
        .unify();
    match tower_service::Service::call(&mut warp::service(filter), request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// An uploaded file before unpacking: its name (with the folder) and bytes.
struct File {
    name: String,
    bytes: Bytes,
}

/// The form's `person` field and its files (any other part with a file name).
async fn read_form(
    form: warp::multipart::FormData,
) -> Result<(Option<String>, Vec<File>), Rejection> {
    let bad = |e: warp::Error| refuse(StatusCode::BAD_REQUEST, &format!("bad upload: {e}"));
    let mut form = Box::pin(form);
    let mut person = None;
    let mut files = Vec::new();
    // Parts are read in order: each one's bytes before the next part.
    while let Some(part) = form.try_next().await.map_err(bad)? {
        let name = part.name().to_string();
        let file_name = part.filename().map(str::to_string);
        let mut bytes = bytes::BytesMut::new();
        let mut stream = Box::pin(part.stream());
        while let Some(chunk) = stream.try_next().await.map_err(bad)? {
            bytes.extend_from_slice(chunk.chunk());
        }
        match file_name {
            Some(file) => files.push(File {
                name: file,
                bytes: bytes.freeze(),
            }),
            None if name == "person" => {
                let text = String::from_utf8(bytes.to_vec())
                    .map_err(|_| refuse(StatusCode::BAD_REQUEST, "person is not UTF-8"))?;
                let text = text.trim().to_string();
                if !text.is_empty() {
                    person = Some(text);
                }
            }
            None => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("unexpected form field `{name}`"),
                ))
            }
        }
    }
    Ok((person, files))
}

type Unpacked = (Vec<Upload>, Vec<(String, String)>);

/// The photos of the files, zips expanded, each with its person: `person` when given, else
/// the folder the file is in. Files that cannot be photos of anyone are rejected with why.
fn unpack(person: Option<&str>, files: Vec<File>) -> Result<Unpacked, Rejection> {
    unpack_within(person, files, MAX_UNPACKED)
}

fn unpack_within(
    person: Option<&str>,
    files: Vec<File>,
    mut budget: u64,
) -> Result<Unpacked, Rejection> {
    let mut out: Unpacked = (Vec::new(), Vec::new());
    for file in files {
        if !file.name.to_ascii_lowercase().ends_with(".zip") {
            accept(person, file.name, file.bytes, &mut budget, &mut out)?;
            continue;
        }
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(file.bytes)).map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                &format!("{}: not a readable zip archive: {e}", file.name),
            )
        })?;
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(|e| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("{}: entry {i}: {e}", file.name),
                )
            })?;
            if entry.is_dir() {
                continue;
            }
            let name = entry.name().to_string();
            // The declared size can lie: read at most one byte past the limits.
            let mut bytes = Vec::new();
            let limit = MAX_PHOTO.min(budget) + 1;
            if let Err(e) = (&mut entry).take(limit).read_to_end(&mut bytes) {
                out.1.push((name, format!("cannot be unpacked: {e}")));
                continue;
            }
            accept(person, name, Bytes::from(bytes), &mut budget, &mut out)?;
        }
    }
    Ok(out)
}

/// Adds one file as a photo of its person, or to the rejected with why; `budget` is what the
/// upload's photos may still take.
fn accept(
    person: Option<&str>,
    name: String,
    bytes: Bytes,
    budget: &mut u64,
    (uploads, rejected): &mut Unpacked,
) -> Result<(), Rejection> {
    if uploads.len() + rejected.len() >= MAX_FILES {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("more than {MAX_FILES} files in one upload"),
        ));
    }
    if hidden(&name) {
        return Ok(());
    }
    if bytes.len() as u64 > MAX_PHOTO {
        rejected.push((name, format!("larger than {} MiB", MAX_PHOTO >> 20)));
        return Ok(());
    }
    *budget = budget.checked_sub(bytes.len() as u64).ok_or_else(|| {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the photos unpack to more than {} MiB; send them in smaller batches",
                MAX_UNPACKED >> 20
            ),
        )
    })?;
    match person.map(str::to_string).or_else(|| folder_of(&name)) {
        Some(person) => uploads.push(Upload {
            file: name,
            person,
            bytes,
        }),
        None => rejected.push((
            name,
            "no person: put the photos in a folder per person or give a person name".into(),
        )),
    }
    Ok(())
}

/// Dot files and the folders archivers add (`__MACOSX`) are not photos anyone chose.
fn hidden(name: &str) -> bool {
    name.split('/')
        .any(|part| part.starts_with('.') || part == "__MACOSX")
}

/// `a/Alice/1.jpg` → `Alice`; a file outside any folder has none.
fn folder_of(name: &str) -> Option<String> {
    let mut parts = name.rsplit(['/', '\\']);
    parts.next()?;
    parts
        .next()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persons_come_from_folders_or_the_form() {
        assert_eq!(folder_of("batch/Alice/1.jpg").as_deref(), Some("Alice"));
        assert_eq!(folder_of("Bob\\2.png").as_deref(), Some("Bob"));
        assert_eq!(folder_of("3.jpg"), None);
        let files = vec![
            File {
                name: "x/Alice/1.jpg".into(),
                bytes: Bytes::from_static(b"jpeg"),
            },
            File {
                name: "loose.jpg".into(),
                bytes: Bytes::from_static(b"jpeg"),
            },
            File {
                name: "x/.DS_Store".into(),
                bytes: Bytes::from_static(b"junk"),
            },
        ];
        let (uploads, rejected) = unpack(None, files).unwrap();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].person, "Alice");
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, "loose.jpg");
    }

    #[test]
    fn zips_are_unpacked_and_their_entries_bounded() {
        use std::io::Write as _;
        let mut buffer = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default();
            zip.start_file("Carol/a.jpg", options).unwrap();
            zip.write_all(b"photo").unwrap();
            zip.start_file("Carol/huge.jpg", options).unwrap();
            zip.write_all(&vec![0u8; (MAX_PHOTO + 10) as usize])
                .unwrap();
            zip.finish().unwrap();
        }
        let files = vec![File {
            name: "batch.zip".into(),
            bytes: Bytes::from(buffer.into_inner()),
        }];
        let (uploads, rejected) = unpack(None, files).unwrap();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].person, "Carol");
        assert_eq!(rejected[0].0, "Carol/huge.jpg");
        let garbage = vec![File {
            name: "bad.zip".into(),
            bytes: Bytes::from_static(b"not a zip"),
        }];
        assert!(unpack(None, garbage).is_err());
    }

    #[test]
    fn a_zip_bomb_stops_at_the_upload_budget() {
        use std::io::Write as _;
        // Five entries of 300 KiB of zeros: a few KiB packed, 1.5 MiB unpacked.
        let mut buffer = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buffer);
            for i in 0..5 {
                zip.start_file(
                    format!("Eve/{i}.jpg"),
                    zip::write::SimpleFileOptions::default(),
                )
                .unwrap();
                zip.write_all(&vec![0u8; 300 * 1024]).unwrap();
            }
            zip.finish().unwrap();
        }
        let packed = buffer.get_ref().len();
        assert!(packed < 64 * 1024, "{packed}");
        let files = || {
            vec![File {
                name: "bomb.zip".into(),
                bytes: Bytes::from(buffer.get_ref().clone()),
            }]
        };
        assert!(unpack_within(None, files(), 2 * 1024 * 1024).is_ok());
        let Err(refused) = unpack_within(None, files(), 1024 * 1024) else {
            panic!("the budget was not enforced");
        };
        assert!(
            format!("{refused:?}").contains("smaller batches"),
            "{refused:?}"
        );
    }
}
