//! The accept loop. A new socket takes a place among the pending handshakes (a pool of
//! `max_pending_handshakes`, and `max_handshakes_per_addr` per source address), never a
//! player slot: players get theirs after a valid Hello (see [`super::admission`]). Both
//! budgets are permits and counters whose guards move with the connection, so a place comes
//! back on every exit path. Accept errors (such as running out of file descriptors) back off
//! instead of spinning.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::admission::{self, HandshakePlace};
use super::{NetContext, Transport, connection, handler, web};
use crate::protocol::{CloseReason, Refusal, ServerMessage};
use crate::stats::Stats;

/// Accepts connections until shutdown: game-port sockets become TCP players, web-listener
/// sockets are served HTTP (the page, WebSocket upgrades).
pub(crate) async fn accept_loop(listener: TcpListener, ctx: Arc<NetContext>, transport: Transport) {
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = handler::stopping(&mut shutdown) => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                (stream, peer)
            }
            Err(error) => {
                Stats::bump(&ctx.stats.accept_errors);
                tracing::warn!(%error, ?backoff, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _zone = crate::profiling::zone!("accept");
        Stats::bump(&ctx.stats.connections_accepted);
        let id = ctx
            .next_connection_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(address) = ctx.handshakes_per_addr.take(admission::source(peer.ip())) else {
            refuse(
                &ctx,
                stream,
                CloseReason::AddressLimit,
                "too many connections from this address are logging in".into(),
            );
            continue;
        };
        let Ok(pool) = ctx.handshakes.clone().try_acquire_owned() else {
            refuse(
                &ctx,
                stream,
                CloseReason::HandshakesFull,
                "too many connections are logging in; retry later".into(),
            );
            continue;
        };
        let handshake = HandshakePlace::new(pool, address, ctx.stats.clone());
        match transport {
            Transport::Tcp => {
                tokio::spawn(handler::serve_tcp(stream, peer, id, handshake, ctx.clone()))
            }
            Transport::WebSocket => {
                tokio::spawn(web::serve_web(stream, peer, id, handshake, ctx.clone()))
            }
        };
    }
}

/// Refuses a socket at once with `reason` (counted), without holding any budget.
fn refuse(ctx: &NetContext, mut stream: TcpStream, reason: CloseReason, detail: String) {
    ctx.stats.count_reject(reason);
    tokio::spawn(async move {
        let refusal = Refusal { reason, detail };
        connection::send_last(&mut stream, &ServerMessage::Reject(refusal)).await;
    });
}
