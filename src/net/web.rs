//! The web listener: the playable page (`clients/web/`, embedded in the binary) at `/`, the
//! TypeScript client library it runs (`clients/typescript/dist/`) at `/lib/`, and WebSocket
//! players at `/ws`.
//!
//! HTTP is axum's routing on hyper's HTTP/1.1. A WebSocket
//! upgrade is checked here ([`check_upgrade`], sans I/O), answered `101`, and the socket is
//! then taken back from hyper (`Upgraded::downcast`) and served by the same connection task
//! as a TCP player (`super::handler::serve`) with WebSocket framing: one session type, one
//! world, the same limits. Frames to WebSocket players go through the same path as TCP
//! frames: the egress writes a WebSocket header in place of the length prefix, in the same
//! vectored write as the frame's bytes in its outbox slot (server frames are unmasked), which
//! a WebSocket library that owns the socket and takes whole messages would copy.
//!
//! Every accepted socket holds a place among the pending handshakes from accept until its
//! player logs in (or it is done with HTTP), and its HTTP phase is bounded by
//! `handshake_timeout_s`, so a slowloris on this port costs what it costs on the game port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use include_dir::{Dir, include_dir};
use tokio::net::TcpStream;

use super::NetContext;
use super::admission::HandshakePlace;
use super::connection::Connection;
use super::handler::{self, tune_socket};
use crate::bridge::ConnectionId;
use crate::protocol::CloseReason;
use crate::protocol::websocket::{accept_key, valid_key};
use crate::stats::Stats;

/// The playable page.
static PAGE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/clients/web");
/// The TypeScript client library, compiled (committed, so building the server needs no npm).
static LIBRARY: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/clients/typescript/dist");

/// Largest HTTP request head accepted (hyper's read buffer); a longer one is refused.
const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;

/// What one web connection's requests share.
struct WebConnection {
    peer: SocketAddr,
    id: ConnectionId,
    /// Until a WebSocket upgrade takes it into its session.
    pending: Mutex<Option<HandshakePlace>>,
    ctx: Arc<NetContext>,
}

/// Serves one accepted web socket: HTTP requests until it upgrades to WebSocket (then its
/// session runs in a task of its own) or its handshake time is up.
pub(crate) async fn serve_web(
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnectionId,
    pending: HandshakePlace,
    ctx: Arc<NetContext>,
) {
    tune_socket(&stream, &ctx);
    let timeout = ctx.session.handshake_timeout;
    let stats = ctx.stats.clone();
    let connection = Arc::new(WebConnection {
        peer,
        id,
        pending: Mutex::new(Some(pending)),
        ctx,
    });
    let router = Router::new()
        .route("/ws", get(upgrade))
        .route("/", get(index))
        .route("/lib/{*path}", get(library_file))
        .route("/{*path}", get(page_file))
        .with_state(connection.clone());
    let service = hyper_util::service::TowerToHyperService::new(router);
    // Keep-alive stays on: without it hyper adds `close` to the 101's `Connection` header,
    // which strict clients (Node's WebSocket) refuse. The connection's whole HTTP life is
    // bounded by the timeout below either way.
    let http = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if tokio::time::timeout(timeout, http).await.is_err() {
        // Never finished its request (or never read the answer) in time; an upgraded
        // session is not affected (it left this future when it upgraded).
        stats.count_reject(CloseReason::HandshakeTimeout);
    }
}

/// `GET /ws`: a WebSocket upgrade. A valid one is answered `101` and the socket becomes a
/// player's connection; anything else gets its HTTP status (docs/PROTOCOL.md, WebSocket).
async fn upgrade(State(web): State<Arc<WebConnection>>, mut request: Request) -> Response {
    let accept = match check_upgrade(request.headers(), &web.ctx.zone_page_origins) {
        Ok(accept) => accept,
        Err(refusal) => {
            web.ctx.stats.count_http_refusal(refusal.status.as_u16());
            return refusal.into_response();
        }
    };
    let pending = web.pending.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(pending) = pending else {
        return StatusCode::CONFLICT.into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let web = web.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
            return;
        };
        Stats::bump(&web.ctx.stats.websocket_upgrades);
        let hyper::upgrade::Parts { io, read_buf, .. } = parts;
        let connection = Connection::websocket(
            io.into_inner(),
            &read_buf,
            web.ctx.max_inbound_frame_bytes,
            web.ctx.stats.clone(),
        );
        // hyper's read buffer (its bytes were copied): not held for the session's life.
        drop(read_buf);
        handler::serve(connection, web.peer, web.id, pending, web.ctx.clone()).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .expect("a valid response")
}

/// Why an upgrade request is refused: the HTTP status, and a header to add.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UpgradeRefusal {
    status: StatusCode,
    version_hint: bool,
    why: &'static str,
}

impl IntoResponse for UpgradeRefusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.why).into_response();
        if self.version_hint {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// Checks a `GET /ws` request's headers for a WebSocket upgrade (RFC 6455, 4.2.1) and the
/// same-origin rule; returns the `Sec-WebSocket-Accept` value. An `Origin` must name the host
/// the request was sent to (the page's own origin, whatever address the page was loaded
/// from) or be one of `also_allowed` (on a zone server, the pages of the world's other
/// zones, whose players a Transfer sends here): a page elsewhere cannot open players'
/// sessions from a visitor's browser. Clients that are not browsers send no `Origin`.
pub(crate) fn check_upgrade(
    headers: &HeaderMap,
    also_allowed: &[String],
) -> Result<String, UpgradeRefusal> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(UpgradeRefusal {
            status: StatusCode::UPGRADE_REQUIRED,
            version_hint: true,
            why: "this path takes WebSocket upgrades only",
        });
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version != "13")
    {
        return Err(UpgradeRefusal {
            status: StatusCode::UPGRADE_REQUIRED,
            version_hint: true,
            why: "WebSocket version 13 only",
        });
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|key| key.to_str().ok())
        .filter(|key| valid_key(key))
        .ok_or(UpgradeRefusal {
            status: StatusCode::BAD_REQUEST,
            version_hint: false,
            why: "missing or invalid Sec-WebSocket-Key",
        })?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok());
        let origin = origin.to_str().unwrap_or("");
        let allowed = also_allowed
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin));
        if !allowed && !same_origin(origin, host) {
            return Err(UpgradeRefusal {
                status: StatusCode::FORBIDDEN,
                version_hint: false,
                why: "this Origin may not open sessions here",
            });
        }
    }
    Ok(accept_key(key))
}

/// Whether `origin` (`scheme://host[:port]`) names `host` (the request's `Host` header).
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let Some(origin_host) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    origin_host.eq_ignore_ascii_case(host)
}

/// `GET /`: the page.
async fn index() -> Response {
    crate::embedded::serve_file(&PAGE, "index.html")
}

/// `GET /lib/PATH`: the client library.
async fn library_file(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    crate::embedded::serve_file(&LIBRARY, &path)
}

/// `GET /PATH`: the page's other files.
async fn page_file(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    crate::embedded::serve_file(&PAGE, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    const VALID: [(&str, &str); 5] = [
        ("host", "127.0.0.1:7080"),
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        VALID.iter().copied().filter(|(n, _)| *n != name).collect()
    }

    fn status(headers: &[(&str, &str)]) -> StatusCode {
        check_upgrade(&request(headers), &[]).unwrap_err().status
    }

    #[test]
    fn a_valid_upgrade_gets_the_rfc_accept_key() {
        assert_eq!(
            check_upgrade(&request(&VALID), &[]).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let mut same_origin = VALID.to_vec();
        same_origin.push(("origin", "http://127.0.0.1:7080"));
        assert!(check_upgrade(&request(&same_origin), &[]).is_ok());
        // A zone server also takes the pages of its world's other zones.
        let mut sibling = VALID.to_vec();
        sibling.push(("origin", "http://127.0.0.1:7082"));
        assert_eq!(status(&sibling), StatusCode::FORBIDDEN);
        let zones = ["http://127.0.0.1:7082".to_owned()];
        assert!(check_upgrade(&request(&sibling), &zones).is_ok());
    }

    #[test]
    fn a_plain_request_or_another_version_is_told_to_upgrade() {
        assert_eq!(status(&without("upgrade")), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(status(&without("connection")), StatusCode::UPGRADE_REQUIRED);
        let mut old = without("sec-websocket-version");
        old.push(("sec-websocket-version", "8"));
        let refusal = check_upgrade(&request(&old), &[]).unwrap_err();
        assert_eq!(refusal.status, StatusCode::UPGRADE_REQUIRED);
        let response = refusal.into_response();
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }

    #[test]
    fn a_missing_or_malformed_key_is_a_bad_request() {
        assert_eq!(
            status(&without("sec-websocket-key")),
            StatusCode::BAD_REQUEST
        );
        let mut bad = without("sec-websocket-key");
        bad.push(("sec-websocket-key", "short"));
        assert_eq!(status(&bad), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn another_origin_is_forbidden() {
        for origin in ["http://evil.example", "http://127.0.0.1:7081", "null"] {
            let mut cross = VALID.to_vec();
            cross.push(("origin", origin));
            assert_eq!(status(&cross), StatusCode::FORBIDDEN, "{origin}");
        }
    }
}
