//! The network side: accepting sockets, reading and decoding client frames, and writing the
//! frames the tick hands over. Runs on tokio worker threads; talks to the tick only through
//! the [`crate::bridge`] (queues in; each connection's frame ring and the tick signal out).
//!
//! # Layout
//! - [`listener`]: the accept loop and the connection cap.
//! - [`admission`]: the budgets of pending handshakes and of players, per address.
//! - [`connection`]: a connection's socket and inbound buffer (`read_message`, `write_last`).
//! - [`session`]: a connection's life as a sans-I/O state machine (handshake, login, open
//!   session, close), unit tested with a moved clock.
//! - [`handler`]: one task per connection, driving its session with its connection.
//! - [`web`]: the web listener: the playable page, and the WebSocket upgrade that turns a
//!   socket into a player's connection.
//! - [`inbound_check`]: the property the fuzz target and its corpus check on that path.
//! - [`flush`]: the once-per-tick flush tasks that write every connection's new frames.
//! - [`egress`]: a connection's write side, shared by its task and its flush task.
//! - [`rate_limit`]: the per-player message rate limit and flood kick, sans I/O.

pub(crate) mod admission;
pub(crate) mod connection;
pub(crate) mod egress;
pub(crate) mod flush;
pub(crate) mod handler;
pub mod inbound_check;
pub(crate) mod listener;
pub(crate) mod rate_limit;
pub(crate) mod session;
pub(crate) mod web;

use std::sync::Arc;

use components::actions::ActionRegistry;
use tokio::sync::watch;

use crate::bridge::InboundSender;
use crate::persistence::login::Logins;
use crate::stats::Stats;

/// How a client reaches the server: both share one world, one tick and the same limits;
/// they differ only in framing (see docs/PROTOCOL.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A TCP socket on the game port: length-prefixed frames.
    Tcp,
    /// A WebSocket on the web listener (`/ws`): one message per binary WebSocket message.
    WebSocket,
}

impl Transport {
    /// Its name in logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::WebSocket => "websocket",
        }
    }
}

/// What every connection task shares.
pub(crate) struct NetContext {
    /// The next connection's id (shared by the listeners: ids are unique across transports).
    pub(crate) next_connection_id: std::sync::atomic::AtomicU64,
    /// Queues to the tick.
    pub(crate) inbound: InboundSender,
    /// Counters.
    pub(crate) stats: Arc<Stats>,
    /// Largest inbound frame body.
    pub(crate) max_inbound_frame_bytes: u32,
    /// Frame buffers per client.
    pub(crate) outbound_buffers: usize,
    /// Kernel send buffer per player socket (0: autotuned).
    pub(crate) send_buffer_bytes: u32,
    /// The limits every session enforces (handshake and idle time, message rate).
    pub(crate) session: session::SessionLimits,
    /// Becomes true when the server shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Where open sessions register their write side, for the flush tasks.
    pub(crate) flushes: Arc<flush::FlushRegistry>,
    /// Logins (one per name, failed-login throttle, the store's answer).
    pub(crate) logins: Logins,
    /// The game's action kinds: what a client may send, its limits, and how to check it.
    pub(crate) actions: Arc<ActionRegistry>,
    /// Player slots (`max_players` permits).
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    /// The cap of players.
    pub(crate) max_players: usize,
    /// Players per source address.
    pub(crate) players_per_addr: Arc<admission::PerAddress>,
    /// The pending-handshake pool (`max_pending_handshakes` permits).
    pub(crate) handshakes: Arc<tokio::sync::Semaphore>,
    /// Pending handshakes per source address.
    pub(crate) handshakes_per_addr: Arc<admission::PerAddress>,
    /// Page origins a WebSocket upgrade may also come from: on a zone server, the pages of
    /// the world's other zones (a Transfer sends their players here); else none.
    pub(crate) zone_page_origins: Vec<String>,
}
