//! The browser UI: static files embedded in the binary, no build step.

use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use warp::Filter;

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

fn file(body: &'static str, content_type: &'static str) -> warp::reply::Response {
    let mut response = warp::reply::Response::new(body.into());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, content_type.parse().expect("valid header"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, "no-cache".parse().expect("valid header"));
    response
}

pub fn routes() -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone
{
    let index = warp::get()
        .and(warp::path::end())
        .map(|| file(INDEX, "text/html; charset=utf-8"));
    let js = warp::get()
        .and(warp::path!("assets" / "app.js"))
        .map(|| file(APP_JS, "text/javascript; charset=utf-8"));
    let css = warp::get()
        .and(warp::path!("assets" / "style.css"))
        .map(|| file(STYLE, "text/css; charset=utf-8"));
    index.or(js).unify().or(css).unify()
}
