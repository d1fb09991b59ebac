//! `/api/v1/sightings`: stored sightings by metadata, by face (an uploaded photo, or the face
//! of another sighting), their thumbnails and counts for charts. Operator; every read of
//! facial data is audited.

use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply as _};

use super::watchlists::MAX_PHOTO;
use super::{blocking, bytes_reply, caller, changing, json_reply, with};
use super::{App, Ctx, Routes};
use crate::port::{Probe, Role, SightingQuery};
use crate::sessions::Sessions;

pub(super) fn routes(app: App, sessions: Arc<Sessions>) -> Routes {
    let v1 = warp::path("api").and(warp::path("v1"));
    let operator = caller(app.clone(), sessions.clone(), Role::Operator, false);

    let by_metadata = v1
        .and(warp::path!("sightings"))
        .and(warp::get())
        .and(operator.clone())
        .and(warp::query::<SightingQuery>())
        .and(with(app.clone()))
        .and_then(|ctx: Ctx, query: SightingQuery, app: App| async move {
            let (worker, q) = (app.clone(), query.clone());
            let found = blocking(move || worker.sightings(&q)).await?;
            app.audit(
                &ctx.caller,
                "sightings.search",
                "",
                json!({ "by": "metadata", "query": format!("{query:?}"), "returned": found["sightings"].as_array().map_or(0, Vec::len) }),
            );
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &found))
        });

    let by_photo = v1
        .and(warp::path!("sightings" / "search"))
        .and(warp::post())
        .and(changing(
            app.clone(),
            sessions.clone(),
            Role::Operator,
            false,
        ))
        .and(warp::query::<SightingQuery>())
        .and(warp::body::content_length_limit(MAX_PHOTO))
        .and(warp::body::bytes())
        .and(with(app.clone()))
        .and_then(
            |ctx: Ctx, query: SightingQuery, photo: bytes::Bytes, app: App| async move {
                let (worker, q) = (app.clone(), query.clone());
                let found = blocking(move || worker.search_faces(Probe::Photo(photo), &q)).await?;
                audit_face_search(&app, &ctx, "photo", &query, &found);
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &found))
            },
        );

    let by_sighting = v1
        .and(warp::path!("sightings" / String / "similar"))
        .and(warp::get())
        .and(operator.clone())
        .and(warp::query::<SightingQuery>())
        .and(with(app.clone()))
        .and_then(
            |id: String, ctx: Ctx, query: SightingQuery, app: App| async move {
                let (worker, q, probe) = (app.clone(), query.clone(), Probe::Sighting(id.clone()));
                let found = blocking(move || worker.search_faces(probe, &q)).await?;
                audit_face_search(&app, &ctx, &format!("sighting {id}"), &query, &found);
                Ok::<_, Rejection>(json_reply(StatusCode::OK, &found))
            },
        );

    let stats = v1
        .and(warp::path!("sightings" / "stats"))
        .and(warp::get())
        .and(operator.clone())
        .and(warp::query::<SightingQuery>())
        .and(with(app.clone()))
        .and_then(|_ctx: Ctx, query: SightingQuery, app: App| async move {
            let stats = blocking(move || app.sighting_stats(&query)).await?;
            Ok::<_, Rejection>(json_reply(StatusCode::OK, &stats))
        });

    let thumbnail = v1
        .and(warp::path!("sightings" / String / "thumbnail"))
        .and(warp::get())
        .and(operator)
        .and(with(app))
        .and_then(|id: String, ctx: Ctx, app: App| async move {
            let (worker, sighting) = (app.clone(), id.clone());
            let jpeg = blocking(move || worker.thumbnail(&sighting))
                .await?
                .ok_or_else(|| {
                    super::refuse(StatusCode::NOT_FOUND, "no thumbnail kept for this sighting")
                })?;
            app.audit(
                &ctx.caller,
                "sightings.read",
                &id,
                json!({ "thumbnail": true }),
            );
            let mut response = bytes_reply(jpeg, "image/jpeg");
            // Private, but the grid of results may show it again without a new request.
            response.headers_mut().insert(
                warp::http::header::CACHE_CONTROL,
                warp::http::HeaderValue::from_static("private, max-age=300"),
            );
            Ok::<_, Rejection>(response)
        });

    by_metadata
        .or(by_photo)
        .unify()
        .or(stats)
        .unify()
        .or(by_sighting)
        .unify()
        .or(thumbnail)
        .unify()
        .map(|r: warp::reply::Response| r.into_response())
        .boxed()
}

fn audit_face_search(
    app: &App,
    ctx: &Ctx,
    by: &str,
    query: &SightingQuery,
    found: &serde_json::Value,
) {
    app.audit(
        &ctx.caller,
        "sightings.search",
        "",
        json!({ "by": by, "query": format!("{query:?}"), "returned": found["hits"].as_array().map_or(0, Vec::len) }),
    );
}
