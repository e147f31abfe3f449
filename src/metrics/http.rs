//! The scrape and probe endpoint, on the network runtime: `/metrics` (Prometheus),
//! `/healthz` (the tick loop is alive), `/readyz` (players are accepted), and the live
//! operator console (`/`, its files, `/console/stream`, `/console/player`: see
//! [`super::console`]). HTTP/1.1 is hyper's,
//! routing axum's (as on the web listener, `crate::net::web`): our own accept loop, then one
//! hyper connection per socket, answering one request and closing it. It keeps serving
//! through a graceful shutdown's drain (so orchestrators see `/readyz` turn 503) until the
//! runtime stops.
//!
//! Probes must answer while strangers hold connections open (idle, or trickling a request):
//! - at most [`MAX_CONNECTIONS`] connections are held, at most [`MAX_PER_PEER`] per peer
//!   address (an IPv6 peer counts by its /64); a new connection beyond either cap closes the
//!   **oldest idle** one (no complete request yet: a connection turns busy when hyper hands
//!   its request to the router) of that peer, or of anyone when the total is reached, and is
//!   served. Only when every held connection is being answered is the new one closed
//!   unanswered;
//! - `/healthz` and `/readyz` are answered at once on the connection's own task; only
//!   `/metrics` renders (which read `/proc`, on a blocking thread) wait for one of
//!   [`MAX_CONCURRENT_RENDERS`], so a probe never queues behind a render;
//! - memory is bounded: hyper's read buffer of at most [`MAX_REQUEST_BYTES`] per held
//!   connection (a longer head is answered 431), and every request must arrive
//!   (hyper's header read timeout) and be answered (a timeout around the whole connection)
//!   within [`REQUEST_TIMEOUT`]; only a console stream (Server-Sent Events) outlives it, and
//!   at most [`MAX_CONSOLE_STREAMS`] are open at once.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ahash::AHashMap;
use std::convert::Infallible;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use include_dir::{Dir, include_dir};
use prometheus_client::registry::Registry;
use throng_host::proc_stats;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;
use tower::ServiceExt;

use super::console::Console;
use super::exposition::{Format, Readings, ReadingsCollector, registry, render};
use crate::bridge::InboundSender;
use crate::stats::Stats;

/// Connections held at once, all peers together.
pub(crate) const MAX_CONNECTIONS: usize = 512;
/// Connections held at once from one peer address.
pub(crate) const MAX_PER_PEER: usize = 64;
/// `/metrics` renders at once; more wait (within their deadline).
pub(crate) const MAX_CONCURRENT_RENDERS: usize = 2;
/// A request must arrive and be answered within this time.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted: hyper's read buffer limit, whose floor is 8 KiB (hyper
/// panics below it; the hand-written server before it took 4 KiB).
pub(crate) const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Console streams open at once; more are answered 503.
pub(crate) const MAX_CONSOLE_STREAMS: usize = 16;

/// The console page (`GET /`) and its files.
static CONSOLE_PAGE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/clients/console");

/// A tick loop that has not completed a tick for longer than this is reported unhealthy.
pub(crate) const HEALTHY_TICK_AGE: Duration = Duration::from_secs(1);

/// What the endpoint reads on each request.
pub(crate) struct MetricsSource {
    /// The server's counters.
    pub stats: Arc<Stats>,
    /// For the inbound queue depth.
    pub inbound: InboundSender,
    /// Player slots (free permits = players the server would still accept).
    pub slots: Arc<Semaphore>,
    /// True once a graceful shutdown has begun.
    pub shutdown: watch::Receiver<bool>,
    /// The game's action kinds' names, by wire number.
    pub action_names: Arc<Vec<String>>,
    /// The live console's snapshots and world access.
    pub console: Arc<Console>,
    /// Whether the console (page, stream, lookup, kick) is served; 404 when not.
    pub console_enabled: bool,
    /// The token a kick from a non-loopback peer must present (empty: none may kick).
    pub admin_token: String,
}

impl MetricsSource {
    /// Takes every reading now.
    pub(crate) fn readings(&self) -> Readings {
        Readings {
            stats: self.stats.snapshot(),
            inbound_queue_depth: self.inbound.queued_inputs(),
            process: proc_stats::sample("self").ok(),
            open_fds: proc_stats::open_fds("self").ok(),
            runtime_tasks: tokio::runtime::Handle::try_current()
                .map_or(0, |runtime| runtime.metrics().num_alive_tasks()),
            action_names: self.action_names.clone(),
        }
    }
}

/// A probe's answer (plain text).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Its status.
    pub status: StatusCode,
    /// The body.
    pub body: String,
}

impl IntoResponse for Probe {
    fn into_response(self) -> Response {
        plain(self.status, self.body)
    }
}

/// One held connection.
struct Held {
    peer: IpAddr,
    /// Its request head is complete: it is being answered (never evicted).
    answering: bool,
    /// It answers with a console stream: [`REQUEST_TIMEOUT`] does not end it.
    streaming: bool,
    task: Option<AbortHandle>,
}

/// The held connections, in accept order (ids grow), and how many each peer holds.
#[derive(Default)]
struct Connections {
    held: BTreeMap<u64, Held>,
    per_peer: AHashMap<IpAddr, usize>,
}

impl Connections {
    /// Makes room for a new connection from `peer`: closes the oldest idle connection of
    /// `peer` if it holds [`MAX_PER_PEER`], else the oldest idle one of anyone if
    /// [`MAX_CONNECTIONS`] are held. `Some(evicted)` if there is room now.
    fn make_room(&mut self, peer: IpAddr) -> Option<bool> {
        let victim = if self.per_peer.get(&peer).copied().unwrap_or(0) >= MAX_PER_PEER {
            self.oldest_idle(|held| held.peer == peer)?
        } else if self.held.len() >= MAX_CONNECTIONS {
            self.oldest_idle(|_| true)?
        } else {
            return Some(false);
        };
        if let Some(task) = self.remove(victim).and_then(|held| held.task) {
            task.abort();
        }
        Some(true)
    }

    fn oldest_idle(&self, whose: impl Fn(&Held) -> bool) -> Option<u64> {
        self.held
            .iter()
            .find(|(_, held)| !held.answering && whose(held))
            .map(|(id, _)| *id)
    }

    fn insert(&mut self, id: u64, peer: IpAddr) {
        self.held.insert(
            id,
            Held {
                peer,
                answering: false,
                streaming: false,
                task: None,
            },
        );
        *self.per_peer.entry(peer).or_insert(0) += 1;
    }

    fn remove(&mut self, id: u64) -> Option<Held> {
        let held = self.held.remove(&id)?;
        if let Some(count) = self.per_peer.get_mut(&held.peer) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&held.peer);
            }
        }
        Some(held)
    }
}

/// What every connection task shares.
struct Server {
    source: Arc<MetricsSource>,
    connections: Mutex<Connections>,
    renders: Semaphore,
    streams: Arc<Semaphore>,
    /// Holds only the collector of [`Readings`], taken anew on each scrape.
    registry: Registry,
}

impl Server {
    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes its connection from the held ones when its task ends (or is aborted).
struct HeldGuard {
    server: Arc<Server>,
    id: u64,
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.server.connections().remove(self.id);
    }
}

/// Serves requests until the runtime stops.
pub(crate) async fn serve(listener: TcpListener, source: Arc<MetricsSource>) {
    let server = Arc::new(Server::new(source));
    let router = router(server.clone());
    let mut next_id = 0u64;
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let stats = &server.source.stats;
        Stats::bump(&stats.http_connections);
        let id = next_id;
        next_id += 1;
        let mut connections = server.connections();
        let peer = crate::net::admission::source(peer.ip());
        match connections.make_room(peer) {
            None => {
                // Every held connection is being answered: close this one unanswered.
                Stats::bump(&stats.http_refused_full);
                continue;
            }
            Some(true) => Stats::bump(&stats.http_idle_evicted),
            Some(false) => {}
        }
        connections.insert(id, peer);
        let guard = HeldGuard {
            server: server.clone(),
            id,
        };
        let router = router.clone();
        let peer_ip = stream.peer_addr().map_or(peer, |addr| addr.ip());
        let task = tokio::spawn(async move {
            let answering = answer(stream, router, &guard, peer_ip);
            tokio::pin!(answering);
            // Every request must be answered in time, unless its answer is a console stream.
            while tokio::time::timeout(REQUEST_TIMEOUT, &mut answering)
                .await
                .is_err()
            {
                let held = guard.server.connections();
                if !held.held.get(&guard.id).is_some_and(|held| held.streaming) {
                    break;
                }
            }
        });
        if let Some(held) = connections.held.get_mut(&id) {
            held.task = Some(task.abort_handle());
        }
    }
}

impl Server {
    fn new(source: Arc<MetricsSource>) -> Server {
        let collected = source.clone();
        Server {
            source,
            connections: Mutex::default(),
            renders: Semaphore::new(MAX_CONCURRENT_RENDERS),
            streams: Arc::new(Semaphore::new(MAX_CONSOLE_STREAMS)),
            registry: registry(ReadingsCollector(move || collected.readings())),
        }
    }
}

/// The routes; anything else is 404 (405 if not a GET).
fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/metrics", get(metrics).fallback(only_get))
        .route("/healthz", get(healthz).fallback(only_get))
        .route("/readyz", get(readyz).fallback(only_get))
        .route("/", get(console_index).fallback(only_get))
        .route("/{file}", get(console_file).fallback(only_get))
        .route("/console/stream", get(console_stream).fallback(only_get))
        .route("/console/player", get(console_player).fallback(only_get))
        .route("/console/kick", post(console_kick).fallback(only_post))
        .fallback(not_found)
        .with_state(server)
}

/// Serves one request on `stream` with hyper, then closes it.
async fn answer<S>(stream: S, router: Router, held: &HeldGuard, peer: IpAddr)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (server, id) = (held.server.clone(), held.id);
    let service = tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        // The request head is complete: this connection is never evicted from now on.
        if let Some(entry) = server.connections().held.get_mut(&id) {
            entry.answering = true;
        }
        request.extensions_mut().insert(HeldId(id));
        request.extensions_mut().insert(PeerIp(peer));
        router.clone().oneshot(request)
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT)
        .max_buf_size(MAX_REQUEST_BYTES)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .await;
}

async fn metrics(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    // Renders wait for each other, never the probes.
    let Ok(_render) = server.renders.acquire().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = Format::from_accept(accept);
    let rendering = server.clone();
    match tokio::task::spawn_blocking(move || render(&rendering.registry, format)).await {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        _ => plain(StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n"),
    }
}

async fn healthz(State(server): State<Arc<Server>>) -> Probe {
    health(server.source.stats.tick_heartbeat.since_last())
}

async fn readyz(State(server): State<Arc<Server>>) -> Probe {
    let source = &server.source;
    readiness(*source.shutdown.borrow(), source.slots.available_permits())
}

async fn only_get() -> Response {
    plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n")
}

async fn not_found(request: Request) -> Response {
    if request.method() != axum::http::Method::GET {
        return only_get().await;
    }
    plain(
        StatusCode::NOT_FOUND,
        "not found; try /, /metrics, /healthz or /readyz\n",
    )
}

async fn only_post() -> Response {
    plain(StatusCode::METHOD_NOT_ALLOWED, "only POST\n")
}

/// The held connection a request arrived on.
#[derive(Clone, Copy)]
struct HeldId(u64);

/// The address of the peer a request came from.
#[derive(Clone, Copy)]
struct PeerIp(IpAddr);

/// What a disabled console answers.
fn console_off() -> Response {
    plain(StatusCode::NOT_FOUND, "the console is turned off\n")
}

/// `GET /`: the console page.
async fn console_index(State(server): State<Arc<Server>>) -> Response {
    if !server.source.console_enabled {
        return console_off();
    }
    crate::embedded::serve_file(&CONSOLE_PAGE, "index.html")
}

/// `GET /FILE`: the console page's other files.
async fn console_file(
    State(server): State<Arc<Server>>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    if !server.source.console_enabled {
        return console_off();
    }
    crate::embedded::serve_file(&CONSOLE_PAGE, &file)
}

/// `GET /console/stream`: a `snapshot` event each second (the latest at once, if any).
async fn console_stream(
    State(server): State<Arc<Server>>,
    held: Option<Extension<HeldId>>,
) -> Response {
    if !server.source.console_enabled {
        return console_off();
    }
    let Ok(permit) = server.streams.clone().try_acquire_owned() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many console streams\n",
        );
    };
    if let Some(Extension(HeldId(id))) = held
        && let Some(entry) = server.connections().held.get_mut(&id)
    {
        entry.streaming = true;
    }
    let mut snapshots = server.source.console.snapshots.subscribe();
    let latest = snapshots.borrow_and_update().clone();
    let state = (snapshots, Some(latest), permit);
    let events =
        futures_util::stream::unfold(state, |(mut snapshots, latest, permit)| async move {
            let mut json = latest.filter(|json| !json.is_empty());
            while json.is_none() {
                snapshots.changed().await.ok()?;
                json = Some(snapshots.borrow_and_update().clone()).filter(|json| !json.is_empty());
            }
            let event = Event::default().event("snapshot").data(json?.as_str());
            Some((Ok::<_, Infallible>(event), (snapshots, None, permit)))
        });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `/console/player`'s query.
#[derive(serde::Deserialize)]
struct PlayerQuery {
    name: String,
}

/// `GET /console/player?name=NAME`: where that player is (any case), or 404.
async fn console_player(
    State(server): State<Arc<Server>>,
    Query(query): Query<PlayerQuery>,
) -> Response {
    if !server.source.console_enabled {
        return console_off();
    }
    match server.source.console.find_player(&query.name).await {
        Some(found) => {
            let json = serde_json::to_string(&found).expect("a player serialises");
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        None => plain(StatusCode::NOT_FOUND, "no such player\n"),
    }
}

/// Longest kick reason accepted, bytes.
pub(crate) const MAX_KICK_REASON_BYTES: usize = 200;
/// Largest kick request body accepted, bytes.
const MAX_KICK_BODY_BYTES: usize = 4096;

/// `/console/kick`'s body.
#[derive(serde::Deserialize)]
struct KickRequest {
    name: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/kick` `{"name": ..., "reason": ...}`: closes that player's session
/// (any case) with `Close{Kicked, detail: reason}`. Allowed from loopback, or with the admin
/// token (see [`kick_allowed`]); 403 otherwise, 404 for an unknown player, 400 for a bad body.
async fn console_kick(
    State(server): State<Arc<Server>>,
    peer: Option<Extension<PeerIp>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let source = &server.source;
    if !source.console_enabled {
        return console_off();
    }
    let loopback = peer.is_some_and(|Extension(PeerIp(ip))| ip.to_canonical().is_loopback());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if !kick_allowed(loopback, &source.admin_token, authorization) {
        Stats::bump(&source.stats.console_kicks_refused);
        return plain(StatusCode::FORBIDDEN, "kicking needs the admin token\n");
    }
    if body.len() > MAX_KICK_BODY_BYTES {
        return plain(StatusCode::BAD_REQUEST, "body too large\n");
    }
    let Ok(request) = serde_json::from_slice::<KickRequest>(&body) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "expected {\"name\": NAME, \"reason\": TEXT}\n",
        );
    };
    if request.reason.len() > MAX_KICK_REASON_BYTES {
        return plain(
            StatusCode::BAD_REQUEST,
            format!("the reason is over {MAX_KICK_REASON_BYTES} bytes\n"),
        );
    }
    match source.console.kick(&request.name, request.reason).await {
        Some(name) => {
            let json = serde_json::json!({ "kicked": name }).to_string();
            ([(header::CONTENT_TYPE, "application/json")], json).into_response()
        }
        None => plain(StatusCode::NOT_FOUND, "no such player\n"),
    }
}

/// Whether a kick may go ahead: always from a loopback peer; from any other only with
/// `Authorization: Bearer TOKEN` matching a non-empty `token` setting.
pub(crate) fn kick_allowed(
    peer_is_loopback: bool,
    token: &str,
    authorization: Option<&str>,
) -> bool {
    if peer_is_loopback {
        return true;
    }
    if token.is_empty() {
        return false;
    }
    let Some(presented) = authorization.and_then(|value| value.strip_prefix("Bearer ")) else {
        return false;
    };
    constant_time_eq(presented.trim().as_bytes(), token.as_bytes())
}

/// `a == b` in time that depends only on the lengths, not on where they differ (so a
/// remote guesser learns nothing from timing but the token's length): every byte is
/// compared, the differences OR-ed together, and the result read once at the end.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// `/healthz`: 200 while the tick loop completed a tick within [`HEALTHY_TICK_AGE`].
pub(crate) fn health(since_last_tick: Duration) -> Probe {
    if since_last_tick <= HEALTHY_TICK_AGE {
        probe(StatusCode::OK, "ok\n")
    } else {
        let detail = format!(
            "tick loop stalled: no tick for {:.1} s\n",
            since_last_tick.as_secs_f64()
        );
        probe(StatusCode::SERVICE_UNAVAILABLE, detail)
    }
}

/// `/readyz`: 200 while new players are accepted; 503 while draining or full.
pub(crate) fn readiness(draining: bool, free_slots: usize) -> Probe {
    if draining {
        probe(StatusCode::SERVICE_UNAVAILABLE, "draining for shutdown\n")
    } else if free_slots == 0 {
        probe(StatusCode::SERVICE_UNAVAILABLE, "full\n")
    } else {
        probe(StatusCode::OK, "ready\n")
    }
}

fn probe(status: StatusCode, body: impl Into<String>) -> Probe {
    Probe {
        status,
        body: body.into(),
    }
}

fn plain(status: StatusCode, body: impl Into<String>) -> Response {
    let content_type = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    (status, content_type, body.into()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_answer_by_tick_age_drain_and_free_slots() {
        assert_eq!(health(Duration::from_millis(40)).status, StatusCode::OK);
        let stalled = health(Duration::from_millis(1500));
        assert_eq!(stalled.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(stalled.body.contains("1.5 s"));
        assert_eq!(readiness(false, 3).status, StatusCode::OK);
        assert_eq!(readiness(false, 0).body, "full\n");
        assert_eq!(readiness(true, 3).body, "draining for shutdown\n");
    }

    #[test]
    fn kicks_need_loopback_or_the_right_token() {
        // Loopback: always, token or not.
        assert!(kick_allowed(true, "", None));
        assert!(kick_allowed(true, "secret", Some("Bearer wrong")));
        // Remote, no token set: refused whatever is presented.
        assert!(!kick_allowed(false, "", None));
        assert!(!kick_allowed(false, "", Some("Bearer ")));
        assert!(!kick_allowed(false, "", Some("Bearer anything")));
        // Remote, token set: only the right bearer token.
        assert!(!kick_allowed(false, "secret", None));
        assert!(!kick_allowed(false, "secret", Some("Bearer wrong!")));
        assert!(!kick_allowed(false, "secret", Some("Bearer secre")));
        assert!(!kick_allowed(false, "secret", Some("secret")));
        assert!(!kick_allowed(false, "secret", Some("Basic secret")));
        assert!(kick_allowed(false, "secret", Some("Bearer secret")));
    }

    #[test]
    fn the_constant_time_compare_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokeN"));
        assert!(!constant_time_eq(b"Token", b"token"));
        assert!(!constant_time_eq(b"token", b"token2"));
        assert!(!constant_time_eq(b"tok", b"token"));
    }

    /// What the endpoint writes back to `request`, sent on a fresh connection.
    async fn exchange(request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (inbound, _queues) = crate::bridge::inbound_queues(1, 1);
        let (_draining, shutdown) = watch::channel(false);
        let server = Arc::new(Server::new(Arc::new(MetricsSource {
            stats: Arc::default(),
            inbound,
            slots: Arc::new(Semaphore::new(1)),
            shutdown,
            action_names: Arc::default(),
            console: Arc::new(Console::new(crossbeam_channel::unbounded().0, 20, 1.0, 1.0)),
            console_enabled: true,
            admin_token: String::new(),
        })));
        server.connections().insert(0, IpAddr::from([127, 0, 0, 1]));
        let held = HeldGuard {
            server: server.clone(),
            id: 0,
        };
        let (mut client, stream) = tokio::io::duplex(64 * 1024);
        client.write_all(request).await.unwrap();
        let mut reply = Vec::new();
        let ((), read) = tokio::join!(
            answer(
                stream,
                router(server.clone()),
                &held,
                IpAddr::from([127, 0, 0, 1])
            ),
            client.read_to_end(&mut reply)
        );
        read.unwrap();
        String::from_utf8(reply).unwrap()
    }

    #[tokio::test]
    async fn request_lines_are_parsed_strictly() {
        let ready = exchange(b"GET /readyz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(ready.starts_with("HTTP/1.1 200 OK\r\n"), "{ready}");
        assert!(ready.ends_with("\r\n\r\nready\n"), "{ready}");
        for malformed in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET / SPDY/3\r\n\r\n",
            b"\xff\xfe / HTTP/1.1\r\n\r\n",
        ] {
            let reply = exchange(malformed).await;
            assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
        }
        let post = exchange(b"POST /readyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.ends_with("only GET\n"), "{post}");
        let unknown = exchange(b"GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(unknown.starts_with("HTTP/1.1 404 "), "{unknown}");
        let huge = format!(
            "GET /readyz HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_REQUEST_BYTES)
        );
        let too_large = exchange(huge.as_bytes()).await;
        assert!(too_large.starts_with("HTTP/1.1 431 "), "{too_large}");
    }
}
