//! A minimal HTTP/1.1 server for scrapes and probes, on the network runtime: `/metrics`
//! (Prometheus), `/healthz` (the tick loop is alive), `/readyz` (players are accepted). It
//! answers one request per connection and closes it, and keeps serving through a graceful
//! shutdown's drain (so orchestrators see `/readyz` turn 503) until the runtime stops. Work is bounded: a few requests at a time (more are dropped at
//! accept), a small request buffer, and a deadline per request, so a misbehaving scraper
//! cannot hold memory or tasks. The exposition is rendered off the async workers because it
//! reads `/proc`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::exposition::{Readings, render};
use super::process;
use crate::inbound::InboundSender;
use crate::stats::Stats;

/// Requests served at once; further connections are closed unanswered.
const MAX_CONCURRENT_REQUESTS: usize = 8;
/// A request must arrive and be answered within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted.
const MAX_REQUEST_BYTES: usize = 4096;

/// A tick loop that has not completed a tick for longer than this is reported unhealthy.
pub const HEALTHY_TICK_AGE: Duration = Duration::from_secs(1);

/// What the endpoint reads on each request.
pub struct MetricsSource {
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
    pub fn readings(&self) -> Readings {
        Readings {
            stats: self.stats.snapshot(),
            inbound_queue_depth: self.inbound.queued_inputs(),
            process: process::sample("self").ok(),
            open_fds: process::open_fds("self").ok(),
            runtime_tasks: tokio::runtime::Handle::try_current()
                .map_or(0, |runtime| runtime.metrics().num_alive_tasks()),
            action_names: self.action_names.clone(),
        }
    }
}

/// An HTTP answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// Status line after the version, e.g. `200 OK`.
    pub status: &'static str,
    /// Content type of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// Serves requests until the runtime stops.
pub async fn serve(listener: TcpListener, source: Arc<MetricsSource>) {
    let requests = Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = requests.clone().try_acquire_owned() else {
            continue; // too many scrapes in flight: close this one
        };
        let source = source.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, source)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, source: Arc<MetricsSource>) -> std::io::Result<()> {
    let mut head = [0u8; MAX_REQUEST_BYTES];
    let mut len = 0;
    let response = loop {
        let n = stream.read(&mut head[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        if head[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break route(&head[..len], &source).await;
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

async fn route(head: &[u8], source: &Arc<MetricsSource>) -> Response {
    match request_target(head) {
        Some(("GET", "/metrics")) => {
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
pub fn health(since_last_tick: Duration) -> Response {
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
pub fn readiness(draining: bool, free_slots: usize) -> Response {
    if draining {
        plain("503 Service Unavailable", "draining for shutdown\n")
    } else if free_slots == 0 {
        plain("503 Service Unavailable", "full\n")
    } else {
        plain("200 OK", "ready\n")
    }
}

/// Method and path of a request head, without the query string.
pub fn request_target(head: &[u8]) -> Option<(&str, &str)> {
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
