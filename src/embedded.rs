//! Files embedded in the binary (the playable page, its client library, the operator
//! console), served over HTTP by the web listener and the metrics address alike.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use include_dir::Dir;

/// The embedded file at `path` of `dir` with its content type, or 404.
pub(crate) fn serve_file(dir: &'static Dir<'static>, path: &str) -> Response {
    let Some(file) = dir.get_file(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let content_type = match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("map") | Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, content_type)], file.contents()).into_response()
}
