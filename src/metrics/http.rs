//! A minimal HTTP/1.1 server for scrapes and probes, on the network runtime: `/metrics`
//! (Prometheus), `/healthz` (the tick loop is alive), `/readyz` (players are accepted). It
//! answers one request per connection and closes it, and keeps serving through a graceful
//! shutdown's drain (so orchestrators see `/readyz` turn 503) until the runtime stops.
//!
//! Probes must answer while strangers hold connections open (idle, or trickling a request):
//! - at most [`MAX_CONNECTIONS`] connections are held, at most [`MAX_PER_PEER`] per peer
//!   address (an IPv6 peer counts by its /64); a new connection beyond either cap closes the **oldest idle** one (no complete
//!   request yet) of that peer, or of anyone when the total is reached, and is served. Only
//!   when every held connection is being answered is the new one closed unanswered;
//! - `/healthz` and `/readyz` are answered at once on the connection's own task; only
//!   `/metrics` renders (which read `/proc`, on a blocking thread) wait for one of
//!   [`MAX_CONCURRENT_RENDERS`], so a probe never queues behind a render;
//! - memory is bounded: a [`MAX_REQUEST_BYTES`] buffer per held connection, and every
//!   request must arrive and be answered within [`REQUEST_TIMEOUT`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ahash::AHashMap;
use throng_host::proc_stats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::AbortHandle;

use super::exposition::{Readings, render};
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
/// Largest request head accepted.
pub(crate) const MAX_REQUEST_BYTES: usize = 4096;

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

/// An HTTP answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    /// Status line after the version, e.g. `200 OK`.
    pub status: &'static str,
    /// Content type of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// One held connection.
struct Held {
    peer: IpAddr,
    /// Its request head is complete: it is being answered (never evicted).
    answering: bool,
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
    renders: Arc<Semaphore>,
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
    let server = Arc::new(Server {
        source,
        connections: Mutex::default(),
        renders: Arc::new(Semaphore::new(MAX_CONCURRENT_RENDERS)),
    });
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
        let task = tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &guard)).await;
        });
        if let Some(held) = connections.held.get_mut(&id) {
            held.task = Some(task.abort_handle());
        }
    }
}

async fn answer(mut stream: TcpStream, held: &HeldGuard) -> std::io::Result<()> {
    let mut head = [0u8; MAX_REQUEST_BYTES];
    let mut len = 0;
    let response = loop {
        let n = stream.read(&mut head[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if head[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            // No longer idle: this connection is not evicted from now on.
            if let Some(entry) = held.server.connections().held.get_mut(&held.id) {
                entry.answering = true;
            }
            break route(&head[..len], &held.server).await;
        }
        if len == head.len() {
            break plain(
                "431 Request Header Fields Too Large",
                "request head too large\n",
            );
        }
    };
    let header = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(response.body.as_bytes()).await?;
    stream.shutdown().await
}

async fn route(head: &[u8], server: &Server) -> Response {
    let source = &server.source;
    match request_target(head) {
        Some(("GET", "/metrics")) => {
            // Renders wait for each other, never the probes below.
            let Ok(_render) = server.renders.clone().acquire_owned().await else {
                return plain("503 Service Unavailable", "shutting down\n");
            };
            let source = source.clone();
            match tokio::task::spawn_blocking(move || render(&source.readings())).await {
                Ok(body) => Response {
                    status: "200 OK",
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    body,
                },
                Err(_) => plain("500 Internal Server Error", "rendering failed\n"),
            }
        }
        Some(("GET", "/healthz")) => health(source.stats.tick_heartbeat.since_last()),
        Some(("GET", "/readyz")) => {
            readiness(*source.shutdown.borrow(), source.slots.available_permits())
        }
        Some(("GET", _)) => plain(
            "404 Not Found",
            "not found; try /metrics, /healthz or /readyz\n",
        ),
        Some(_) => plain("405 Method Not Allowed", "only GET\n"),
        None => plain("400 Bad Request", "malformed request line\n"),
    }
}

/// `/healthz`: 200 while the tick loop completed a tick within [`HEALTHY_TICK_AGE`].
pub(crate) fn health(since_last_tick: Duration) -> Response {
    if since_last_tick <= HEALTHY_TICK_AGE {
        plain("200 OK", "ok\n")
    } else {
        let detail = format!(
            "tick loop stalled: no tick for {:.1} s\n",
            since_last_tick.as_secs_f64()
        );
        plain("503 Service Unavailable", &detail)
    }
}

/// `/readyz`: 200 while new players are accepted; 503 while draining or full.
pub(crate) fn readiness(draining: bool, free_slots: usize) -> Response {
    if draining {
        plain("503 Service Unavailable", "draining for shutdown\n")
    } else if free_slots == 0 {
        plain("503 Service Unavailable", "full\n")
    } else {
        plain("200 OK", "ready\n")
    }
}

/// Method and path of a request head, without the query string.
pub(crate) fn request_target(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next()?;
    Some((method, path))
}

fn plain(status: &'static str, body: &str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_answer_by_tick_age_drain_and_free_slots() {
        assert_eq!(health(Duration::from_millis(40)).status, "200 OK");
        let stalled = health(Duration::from_millis(1500));
        assert_eq!(stalled.status, "503 Service Unavailable");
        assert!(stalled.body.contains("1.5 s"));
        assert_eq!(readiness(false, 3).status, "200 OK");
        assert_eq!(readiness(false, 0).body, "full\n");
        assert_eq!(readiness(true, 3).body, "draining for shutdown\n");
    }

    #[test]
    fn request_lines_are_parsed_strictly() {
        assert_eq!(
            request_target(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(request_target(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(request_target(b"GET / SPDY/3\r\n\r\n"), None);
        assert_eq!(request_target(b"\xff\xfe / HTTP/1.1\r\n\r\n"), None);
    }
}
