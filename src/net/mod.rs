//! The network side: accepting sockets, reading and decoding client frames, and writing the
//! frames the tick hands over. Runs on tokio worker threads; talks to the tick only through
//! the [`crate::bridge`] (queues in; each connection's frame ring and the tick signal out).
//!
//! # Layout
//! - [`listener`]: the accept loop and the connection cap.
//! - [`admission`]: the budgets of pending handshakes and of players, per address.
//! - [`connection`]: one task per connection: handshake, inbound frames, outbound writes.
//! - [`inbound_check`]: the property the fuzz target and its corpus check on that path.
//! - [`flush`]: the once-per-tick flush tasks that write every connection's new frames.
//! - [`egress`]: a connection's write side, shared by its task and its flush task.
//! - [`login_throttle`]: failed logins per name and per address, sans I/O.
//! - [`rate_limit`]: the per-player message rate limit and flood kick, sans I/O.

pub mod admission;
pub mod connection;
pub mod egress;
pub mod flush;
pub mod inbound_check;
pub mod listener;
pub mod login_throttle;
pub mod rate_limit;

use std::sync::Arc;
use std::time::Duration;

use components::actions::ActionRegistry;
use tokio::sync::watch;

use crate::bridge::InboundSender;
use crate::persistence::online::OnlineNames;
use crate::persistence::writer::PersistenceHandle;
use crate::stats::Stats;

/// What every connection task shares.
pub struct NetContext {
    /// Queues to the tick.
    pub inbound: InboundSender,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Largest inbound frame body.
    pub max_inbound_frame_bytes: u32,
    /// Frame buffers per client.
    pub outbound_buffers: usize,
    /// Kernel send buffer per player socket (0: autotuned).
    pub send_buffer_bytes: u32,
    /// Time allowed for the Hello.
    pub handshake_timeout: Duration,
    /// An open session that sends no message for this long is closed.
    pub idle_timeout: Duration,
    /// Inputs and pings per second per player.
    pub max_inputs_per_s: u32,
    /// Inputs and pings a player may send at once above the rate.
    pub input_burst: u32,
    /// Sustained rate-limited sending for this long is kicked.
    pub flood_kick: Duration,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Where open sessions register their write side, for the flush tasks.
    pub flushes: Arc<flush::FlushRegistry>,
    /// Names logged in now.
    pub online: Arc<OnlineNames>,
    /// Logins go to the persistence thread.
    pub persistence: PersistenceHandle,
    /// The game's action kinds: what a client may send, its limits, and how to check it.
    pub actions: Arc<ActionRegistry>,
    /// Failed logins per name and per source address.
    pub logins: login_throttle::LoginThrottle,
    /// Player slots (`max_players` permits).
    pub slots: Arc<tokio::sync::Semaphore>,
    /// The cap of players.
    pub max_players: usize,
    /// Players per source address.
    pub players_per_addr: Arc<admission::PerAddress>,
    /// The pending-handshake pool (`max_pending_handshakes` permits).
    pub handshakes: Arc<tokio::sync::Semaphore>,
    /// Pending handshakes per source address.
    pub handshakes_per_addr: Arc<admission::PerAddress>,
}
