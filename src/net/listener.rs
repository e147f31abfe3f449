//! The accept loop. The connection cap is a semaphore whose permit moves into the
//! connection's task and on into its leave event, so a slot comes back on every exit path,
//! and only once the tick has despawned the player. Accept errors (such as running out of
//! file descriptors) back off instead of spinning.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{NetContext, connection};
use crate::protocol::{CloseReason, Refusal, ServerMessage};
use crate::stats::Stats;

/// Accepts connections until shutdown.
/// `slots` holds one permit per player the server accepts (`max_players` of them).
pub async fn accept_loop(
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max_players: usize,
    ctx: Arc<NetContext>,
) {
    let mut shutdown = ctx.shutdown.clone();
    let mut next_id: u64 = 1;
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = connection::stopping(&mut shutdown) => return,
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
        Stats::bump(&ctx.stats.connections_accepted);
        let id = next_id;
        next_id += 1;
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(connection::serve(stream, peer, id, slot, ctx.clone()));
            }
            Err(_) => {
                ctx.stats.count_reject(CloseReason::ServerFull);
                tokio::spawn(reject_full(stream, max_players));
            }
        }
    }
}

async fn reject_full(mut stream: TcpStream, max_players: usize) {
    let refusal = Refusal {
        reason: CloseReason::ServerFull,
        detail: format!("server holds {max_players} players"),
    };
    connection::send_last(&mut stream, &ServerMessage::Reject(refusal)).await;
}
