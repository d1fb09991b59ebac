//! `/api/v1/imports`: recorded clips uploaded for import (administrators). The upload is a
//! multipart form with the fields `camera` and `start` (RFC 3339) and one file part, the clip,
//! streamed into the sealed upload spool as it arrives (bounded by the appliance's limit); the
//! appliance then runs the import in the background. Jobs are listed with their progress and
//! can be cancelled.

use std::sync::Arc;

use bytes::Buf as _;
use futures_util::TryStreamExt as _;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply as _};

use super::watchlists::{off_thread, spool_failure, spool_part};
use super::{blocking, caller, changing, json_reply, refuse, with};
use super::{App, Ctx, Routes};
use crate::port::{ClipUpload, Role};
use crate::sessions::Sessions;
use crate::spool::{Spool, SpooledFile};

/// The text fields, in memory.
const MAX_FIELD: usize = 256;

pub(super) fn routes(app: App, sessions: Arc<Sessions>) -> Routes {
    let v1 = warp::path("api").and(warp::path("v1"));
    let max = app.import_max_bytes();

    let list = v1
        .and(warp::path!("imports"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Admin, false))
        .and(with(app.clone()))
        .and_then(|_ctx: Ctx, app: App| async move {
            let jobs = blocking(move || Ok(app.imports())).await?;
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &jobs))
        });

    let upload = v1
        .and(warp::path!("imports"))
        .and(warp::post())
        .and(changing(app.clone(), sessions.clone(), Role::Admin, false))
        .and(warp::body::content_length_limit(max))
        .and(warp::multipart::form().max_length(max))
        .and(with(app.clone()))
        .and_then(
            |ctx: Ctx, form: warp::multipart::FormData, app: App| async move {
                let spool = off_thread({
                    let dir = app.upload_spool_dir();
                    move || Spool::new(&dir).map_err(spool_failure)
                })
                .await?;
                let upload = read_form(form, &spool).await?;
                let detail = json!({
                    "file": upload.file,
                    "camera": upload.camera,
                    "start": upload.start,
                    "bytes": upload.clip.len(),
                });
                let (worker, caller) = (app.clone(), ctx.caller.clone());
                let job = blocking(move || worker.start_import(&caller, upload)).await?;
                let id = job["id"].as_str().unwrap_or_default().to_string();
                app.audit(&ctx.caller, "video.import_start", &id, detail);
                Ok::<_, Rejection>(json_reply(StatusCode::ACCEPTED, &job))
            },
        );

    let cancel = v1
        .and(warp::path!("imports" / String))
        .and(warp::delete())
        .and(changing(app.clone(), sessions, Role::Admin, false))
        .and(with(app))
        .and_then(|id: String, ctx: Ctx, app: App| async move {
            let (worker, job) = (app.clone(), id.clone());
            let answer = blocking(move || worker.cancel_import(&job)).await?;
            app.audit(&ctx.caller, "video.import_cancel", &id, answer.clone());
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &answer))
        });

    list.or(upload)
        .unify()
        .or(cancel)
        .unify()
        .map(|r: warp::reply::Response| r.into_response())
        .boxed()
}

/// The form's fields, the clip streamed into `spool`: its size costs disk, not memory.
async fn read_form(
    form: warp::multipart::FormData,
    spool: &Spool,
) -> Result<ClipUpload, Rejection> {
    let bad = |e: warp::Error| refuse(StatusCode::BAD_REQUEST, &format!("bad upload: {e}"));
    let mut form = Box::pin(form);
    let (mut camera, mut start, mut clip) = (None, None, None::<(String, SpooledFile)>);
    while let Some(part) = form.try_next().await.map_err(bad)? {
        let name = part.name().to_string();
        let file_name = part.filename().map(str::to_string);
        let mut stream = Box::pin(part.stream());
        if let Some(file) = file_name {
            if clip.is_some() {
                return Err(refuse(StatusCode::BAD_REQUEST, "one clip per upload"));
            }
            let data = spool_part(spool, &mut stream).await?;
            clip = Some((file, data));
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.try_next().await.map_err(bad)? {
            bytes.extend_from_slice(chunk.chunk());
            if bytes.len() > MAX_FIELD {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("{name} is too long"),
                ));
            }
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| refuse(StatusCode::BAD_REQUEST, &format!("{name} is not UTF-8")))?
            .trim()
            .to_string();
        match name.as_str() {
            "camera" => camera = Some(text),
            "start" => start = Some(text),
            _ => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("unexpected form field `{name}`"),
                ))
            }
        }
    }
    let missing = |what: &str| refuse(StatusCode::BAD_REQUEST, &format!("no {what} given"));
    let (file, clip) = clip.ok_or_else(|| missing("clip"))?;
    Ok(ClipUpload {
        file,
        camera: camera.ok_or_else(|| missing("camera"))?,
        start: start.ok_or_else(|| missing("start time"))?,
        clip,
    })
}
