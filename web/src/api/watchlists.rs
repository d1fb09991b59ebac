//! `/api/v1/watchlists`, `/api/v1/persons`, `/api/v1/jobs`: watchlists and their persons
//! (operator), and enrolment by upload: one photo with a person's name, or a batch as a
//! multipart set of files named `PERSON/FILE` (a folder per person, as a browser sends a
//! picked folder) or as zip archives laid out the same way. A batch becomes a job whose
//! progress and report of rejected photos are polled.

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use bytes::{Buf as _, Bytes};
use futures_util::TryStreamExt as _;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply as _};

use super::{blocking, caller, changing, json_body, json_reply, refuse, with};
use super::{App, Ctx, Routes};
use crate::port::{PersonQuery, Role, Upload};
use crate::sessions::Sessions;
use crate::spool::{Spool, SpoolWriter, SpooledFile};

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

    let operator = caller(app.clone(), sessions.clone(), Role::Operator, false);
    let watchlist = v1
        .and(warp::path!("watchlists" / String))
        .and(warp::get())
        .and(operator.clone())
        .and(with(app.clone()))
        .and_then(read_watchlist);

    let persons = v1
        .and(warp::path!("watchlists" / String / "persons"))
        .and(warp::get())
        .and(operator.clone())
        .and(warp::query::<PersonQuery>())
        .and(with(app.clone()))
        .and_then(list_persons);

    let person = v1
        .and(warp::path!("persons" / String))
        .and(warp::get())
        .and(operator.clone())
        .and(with(app.clone()))
        .and_then(read_person);

    let person_face = v1
        .and(warp::path!("persons" / String / "faces" / String))
        .and(warp::get())
        .and(operator)
        .and(with(app.clone()))
        .and_then(read_person_face);

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
                let spool = off_thread({
                    let dir = app.upload_spool_dir();
                    move || Spool::new(&dir).map_err(spool_failure)
                })
                .await?;
                let (person, files) = read_form(form, &spool).await?;
                let (uploads, rejected) =
                    off_thread(move || unpack(person.as_deref(), files, &spool)).await?;
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
        .or(watchlist)
        .unify()
        .or(persons)
        .unify()
        .or(person)
        .unify()
        .or(person_face)
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
            let spool = Spool::new(&std::env::temp_dir().join("vigil-fuzz-uploads"))
                .map_err(spool_failure)?;
            let (person, files) = read_form(form, &spool).await?;
            let (uploads, rejected) = unpack_within(person.as_deref(), files, budget, &spool)?;
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

/// An uploaded file before unpacking: its name (with the folder) and its spooled bytes.
struct File {
    name: String,
    data: SpooledFile,
}

/// Bytes of a part gathered before they are sealed and written off the async workers.
const SPOOL_BATCH: usize = 1024 * 1024;
/// The form's `person` field, in memory.
const MAX_PERSON_FIELD: usize = 1024;

/// The form's `person` field and its files (any other part with a file name), each file
/// streamed into `spool` as it arrives: an upload's size costs disk, not memory.
async fn read_form(
    form: warp::multipart::FormData,
    spool: &Spool,
) -> Result<(Option<String>, Vec<File>), Rejection> {
    let bad = |e: warp::Error| refuse(StatusCode::BAD_REQUEST, &format!("bad upload: {e}"));
    let mut form = Box::pin(form);
    let mut person = None;
    let mut files = Vec::new();
    // Parts are read in order: each one's bytes before the next part.
    while let Some(part) = form.try_next().await.map_err(bad)? {
        let name = part.name().to_string();
        let file_name = part.filename().map(str::to_string);
        let mut stream = Box::pin(part.stream());
        match file_name {
            Some(file) => {
                let data = spool_part(spool, &mut stream).await?;
                files.push(File { name: file, data });
            }
            None if name == "person" => {
                let mut bytes = Vec::new();
                while let Some(chunk) = stream.try_next().await.map_err(bad)? {
                    bytes.extend_from_slice(chunk.chunk());
                    if bytes.len() > MAX_PERSON_FIELD {
                        return Err(refuse(StatusCode::BAD_REQUEST, "person is too long"));
                    }
                }
                let text = String::from_utf8(bytes)
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

/// Streams one file part into `spool`, sealed in batches written off the async workers.
pub(super) async fn spool_part<S, B>(
    spool: &Spool,
    stream: &mut S,
) -> Result<SpooledFile, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let bad = |e: warp::Error| refuse(StatusCode::BAD_REQUEST, &format!("bad upload: {e}"));
    let mut writer = off_thread({
        let spool = spool.clone();
        move || spool.writer().map_err(spool_failure)
    })
    .await?;
    let mut pending = bytes::BytesMut::new();
    while let Some(chunk) = stream.try_next().await.map_err(bad)? {
        pending.extend_from_slice(chunk.chunk());
        if pending.len() >= SPOOL_BATCH {
            writer = spool_write(writer, pending.split().freeze()).await?;
        }
    }
    writer = spool_write(writer, pending.freeze()).await?;
    off_thread(move || writer.finish().map_err(spool_failure)).await
}

/// Runs blocking work (disk, sealing) off the async workers.
pub(super) async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Rejection> + Send + 'static,
) -> Result<T, Rejection> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "upload failed"))?
}

async fn spool_write(mut writer: SpoolWriter, bytes: Bytes) -> Result<SpoolWriter, Rejection> {
    off_thread(move || {
        writer.write_all(&bytes).map_err(spool_failure)?;
        Ok(writer)
    })
    .await
}

/// The disk under the spool failed (most likely full): the upload is refused, nothing kept.
pub(super) fn spool_failure(e: std::io::Error) -> Rejection {
    tracing::error!(error = %e, "enrolment upload not spooled");
    refuse(
        StatusCode::INSUFFICIENT_STORAGE,
        &format!("the upload could not be stored for enrolment: {e}"),
    )
}

type Unpacked = (Vec<Upload>, Vec<(String, String)>);

/// The photos of the files, zips expanded, each with its person: `person` when given, else
/// the folder the file is in. Files that cannot be photos of anyone are rejected with why.
fn unpack(person: Option<&str>, files: Vec<File>, spool: &Spool) -> Result<Unpacked, Rejection> {
    unpack_within(person, files, MAX_UNPACKED, spool)
}

fn unpack_within(
    person: Option<&str>,
    files: Vec<File>,
    mut budget: u64,
    spool: &Spool,
) -> Result<Unpacked, Rejection> {
    let mut out: Unpacked = (Vec::new(), Vec::new());
    for file in files {
        if !file.name.to_ascii_lowercase().ends_with(".zip") {
            accept(person, file.name, file.data, &mut budget, &mut out)?;
            continue;
        }
        let reader = file.data.reader().map_err(spool_failure)?;
        let mut archive = zip::ZipArchive::new(reader).map_err(|e| {
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
            let limit = MAX_PHOTO.min(budget) + 1;
            let mut writer = spool.writer().map_err(spool_failure)?;
            let mut chunk = vec![0; 64 * 1024];
            let mut entry = (&mut entry).take(limit);
            let unpacked = loop {
                match entry.read(&mut chunk) {
                    Ok(0) => break Ok(()),
                    Ok(n) => writer.write_all(&chunk[..n]).map_err(spool_failure)?,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            if let Err(e) = unpacked {
                out.1.push((name, format!("cannot be unpacked: {e}")));
                continue;
            }
            let data = writer.finish().map_err(spool_failure)?;
            accept(person, name, data, &mut budget, &mut out)?;
        }
    }
    Ok(out)
}

/// Adds one file as a photo of its person, or to the rejected with why; `budget` is what the
/// upload's photos may still take.
fn accept(
    person: Option<&str>,
    name: String,
    data: SpooledFile,
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
    if data.len() > MAX_PHOTO {
        rejected.push((name, format!("larger than {} MiB", MAX_PHOTO >> 20)));
        return Ok(());
    }
    *budget = budget.checked_sub(data.len()).ok_or_else(|| {
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
            photo: data,
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

async fn read_watchlist(
    id: String,
    _ctx: Ctx,
    app: App,
) -> Result<warp::reply::Response, Rejection> {
    let list = blocking(move || app.watchlist(&id)).await?;
    Ok(json_reply(StatusCode::OK, &list))
}

async fn list_persons(
    id: String,
    _ctx: Ctx,
    query: PersonQuery,
    app: App,
) -> Result<warp::reply::Response, Rejection> {
    let persons = blocking(move || app.persons(&id, &query)).await?;
    Ok(json_reply(StatusCode::OK, &persons))
}

async fn read_person(id: String, _ctx: Ctx, app: App) -> Result<warp::reply::Response, Rejection> {
    let person = blocking(move || app.person(&id)).await?;
    Ok(json_reply(StatusCode::OK, &person))
}

/// An enrolled face is facial data: each read is audited, as a sighting's thumbnail is.
async fn read_person_face(
    person: String,
    enrolment: String,
    ctx: Ctx,
    app: App,
) -> Result<warp::reply::Response, Rejection> {
    let (worker, p, e) = (app.clone(), person.clone(), enrolment.clone());
    let jpeg = blocking(move || worker.person_face(&p, &e))
        .await?
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "no face kept for this enrolment"))?;
    app.audit(
        &ctx.caller,
        "person.read",
        &person,
        json!({ "face": enrolment }),
    );
    let mut response = super::bytes_reply(jpeg, "image/jpeg");
    response.headers_mut().insert(
        warp::http::header::CACHE_CONTROL,
        warp::http::HeaderValue::from_static("private, max-age=300"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool() -> Spool {
        Spool::new(&std::env::temp_dir().join("vigil-upload-tests")).unwrap()
    }

    fn spooled(spool: &Spool, bytes: impl AsRef<[u8]>) -> SpooledFile {
        let mut writer = spool.writer().unwrap();
        writer.write_all(bytes.as_ref()).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn persons_come_from_folders_or_the_form() {
        let spool = spool();
        assert_eq!(folder_of("batch/Alice/1.jpg").as_deref(), Some("Alice"));
        assert_eq!(folder_of("Bob\\2.png").as_deref(), Some("Bob"));
        assert_eq!(folder_of("3.jpg"), None);
        let files = vec![
            File {
                name: "x/Alice/1.jpg".into(),
                data: spooled(&spool, b"jpeg"),
            },
            File {
                name: "loose.jpg".into(),
                data: spooled(&spool, b"jpeg"),
            },
            File {
                name: "x/.DS_Store".into(),
                data: spooled(&spool, b"junk"),
            },
        ];
        let (uploads, rejected) = unpack(None, files, &spool).unwrap();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].person, "Alice");
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, "loose.jpg");
    }

    #[test]
    fn zips_are_unpacked_and_their_entries_bounded() {
        let spool = spool();
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
            data: spooled(&spool, buffer.into_inner()),
        }];
        let (uploads, rejected) = unpack(None, files, &spool).unwrap();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].person, "Carol");
        assert_eq!(rejected[0].0, "Carol/huge.jpg");
        let garbage = vec![File {
            name: "bad.zip".into(),
            data: spooled(&spool, b"not a zip"),
        }];
        assert!(unpack(None, garbage, &spool).is_err());
    }

    #[test]
    fn a_zip_bomb_stops_at_the_upload_budget() {
        let spool = spool();
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
                data: spooled(&spool, buffer.get_ref().clone()),
            }]
        };
        assert!(unpack_within(None, files(), 2 * 1024 * 1024, &spool).is_ok());
        let Err(refused) = unpack_within(None, files(), 1024 * 1024, &spool) else {
            panic!("the budget was not enforced");
        };
        assert!(
            format!("{refused:?}").contains("smaller batches"),
            "{refused:?}"
        );
    }
}
