//! `/api/v1/system/update` (administrators): GET the running slot and version and how the
//! last update went; POST an update bundle (`application/octet-stream`, the bundle's bytes
//! as the body). The body is streamed to the appliance's update folder, never held in
//! memory; the appliance verifies it (signature, digests, compatibility) and answers 202
//! with its manifest before the updater installs it and reboots, or 400 saying why not.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt as _;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply as _};

use super::watchlists::off_thread;
use super::{blocking, caller, changing, json_reply, refuse, with};
use super::{App, Ctx, Routes};
use crate::port::Role;
use crate::sessions::Sessions;

/// A root file system, kernel and initrd with room to grow: far above any real bundle.
const MAX_BUNDLE: u64 = 2 << 30;
/// Bytes gathered before each write to disk.
const BATCH: usize = 1 << 20;

pub(super) fn routes(app: App, sessions: Arc<Sessions>) -> Routes {
    let v1 = warp::path("api").and(warp::path("v1"));
    let status = v1
        .and(warp::path!("system" / "update"))
        .and(warp::get())
        .and(caller(app.clone(), sessions.clone(), Role::Admin, false))
        .and(with(app.clone()))
        .and_then(|_ctx: Ctx, app: App| async move {
            let status = blocking(move || Ok(app.update_status())).await?;
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &status))
        });
    let upload = v1
        .and(warp::path!("system" / "update"))
        .and(warp::post())
        .and(changing(app.clone(), sessions, Role::Admin, false))
        .and(warp::body::content_length_limit(MAX_BUNDLE))
        .and(warp::body::stream())
        .and(with(app))
        .and_then(|ctx: Ctx, body, app: App| async move {
            let Some(dir) = app.update_upload_dir() else {
                let refusal = "this appliance takes no updates (it is not an appliance image)";
                app.audit(
                    &ctx.caller,
                    "update.upload",
                    "",
                    json!({ "refused": refusal }),
                );
                return Err(refuse(StatusCode::CONFLICT, refusal));
            };
            let path = receive(&dir, Box::pin(body)).await?;
            let (worker, caller, file) = (app.clone(), ctx.caller.clone(), path.clone());
            let answer = blocking(move || worker.submit_update(&caller, &file)).await;
            let _ = std::fs::remove_file(&path);
            let detail = match &answer {
                Ok(manifest) => json!({ "version": manifest["version"] }),
                Err(_) => json!({ "refused": true }),
            };
            app.audit(&ctx.caller, "update.upload", "", detail);
            Ok::<_, Rejection>(json_reply(StatusCode::ACCEPTED, &answer?))
        });
    status
        .or(upload)
        .unify()
        .map(|r: warp::reply::Response| r.into_response())
        .boxed()
}

/// The body, written to a new file in `dir`; removed again if the upload breaks off.
async fn receive<S, B>(dir: &Path, mut body: S) -> Result<PathBuf, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let path = dir.join(format!("upload-{}.partial", random_name()));
    let file = off_thread({
        let (dir, path) = (dir.to_path_buf(), path.clone());
        move || {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::create_dir_all(&dir).map_err(store_failure)?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(store_failure)
        }
    })
    .await?;
    let mut file = Some(file);
    let mut pending = bytes::BytesMut::new();
    let outcome: Result<(), Rejection> = async {
        loop {
            let chunk = body
                .try_next()
                .await
                .map_err(|e| refuse(StatusCode::BAD_REQUEST, &format!("upload broke off: {e}")))?;
            let last = chunk.is_none();
            if let Some(chunk) = chunk {
                pending.extend_from_slice(chunk.chunk());
            }
            if pending.len() >= BATCH || (last && !pending.is_empty()) {
                let bytes = pending.split().freeze();
                let mut f = file.take().expect("the file is back after each write");
                file = Some(
                    off_thread(move || {
                        f.write_all(&bytes).map_err(store_failure)?;
                        Ok(f)
                    })
                    .await?,
                );
            }
            if last {
                let f = file.take().expect("the file is back after each write");
                return off_thread(move || f.sync_all().map_err(store_failure)).await;
            }
        }
    }
    .await;
    if let Err(rejection) = outcome {
        let _ = std::fs::remove_file(&path);
        return Err(rejection);
    }
    Ok(path)
}

fn store_failure(e: std::io::Error) -> Rejection {
    tracing::error!(error = %e, "update upload not stored");
    refuse(
        StatusCode::INSUFFICIENT_STORAGE,
        &format!("the update could not be stored: {e}"),
    )
}

fn random_name() -> String {
    let mut bytes = [0u8; 8];
    openssl::rand::rand_bytes(&mut bytes).expect("the system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
