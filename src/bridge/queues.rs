//! The network-to-tick queues: what the network side tells the tick, as plain data.
//!
//! Two bounded crossbeam queues, drained by the ingest phase at the start of each tick:
//! - `lifecycle` carries joins and leaves. It can never overflow: each connection sends at
//!   most one join and one leave, and the connection's slot (its semaphore permit) travels
//!   inside the leave, so it is only released once the tick has consumed that leave. Its
//!   capacity is therefore `2 x max_players`.
//! - `inputs` carries movement inputs and player actions, in arrival order. When it is full
//!   the message is dropped and counted (`inputs_dropped_queue_full`): inputs are idempotent
//!   requests and the next one arrives within a tick, so dropping is the right backpressure for
//!   them (an action dropped this way is counted per kind as `queue_full`). The network threads
//!   never block on it.

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::Held;
use crate::bridge::outbox::OutboxWriter;
use crate::persistence::store::SavedPlayer;
use crate::protocol::{Action, Input};

/// Identifies a connection for its whole life; never reused.
pub type ConnectionId = u64;

/// A connection completed its handshake.
pub(crate) struct Join {
    /// The connection.
    pub connection: ConnectionId,
    /// Validated player name.
    pub name: String,
    /// Where the tick sends this client's frames.
    pub outbox: OutboxWriter,
    /// The player's saved state, loaded from the store before the join was sent.
    pub saved: SavedPlayer,
    /// The claim on the player's name: held for as long as the player is, and until its
    /// final record is saved (it rides on the player's entity; `None` without a store).
    pub name_claim: Option<Held>,
    /// The seq its frames acknowledge until its first input (a handed-off player's last
    /// seq on its previous zone; 0 for a login).
    pub ack_seq: u32,
}

/// A connection ended (for any reason). Dropping it releases the connection's slot.
pub(crate) struct Leave {
    /// The connection.
    pub connection: ConnectionId,
    /// The connection's player slot: keeps it counted against `max_players` (and its
    /// address's `max_players_per_addr`) until the tick has seen this leave.
    #[expect(dead_code, reason = "held for its Drop, which releases the slot")]
    pub slot: Option<Held>,
}

/// A join or a leave.
pub(crate) enum Lifecycle {
    /// See [`Join`]. Boxed: the queue's ring holds `2 x max_players` messages from the
    /// start, so its element size is fixed memory (a join is a few hundred bytes, a leave
    /// a few words).
    Join(Box<Join>),
    /// See [`Leave`].
    Leave(Leave),
}

/// What a player asked the tick for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PlayerMessage {
    /// A movement input (the latest one per tick wins).
    Input(Input),
    /// An action of a registered kind, already checked by the network side (known kind,
    /// size, rate, decodes as its type).
    Action(Action),
}

/// One input or action from one connection.
#[derive(Clone, Debug)]
pub(crate) struct InputEvent {
    /// The sender.
    pub connection: ConnectionId,
    /// The input or action.
    pub message: PlayerMessage,
}

/// The network side's ends of the queues.
#[derive(Clone)]
pub(crate) struct InboundSender {
    lifecycle: Sender<Lifecycle>,
    inputs: Sender<InputEvent>,
}

/// The tick's ends of the queues.
pub(crate) struct InboundReceiver {
    /// Joins and leaves, in the order connections sent them.
    pub lifecycle: Receiver<Lifecycle>,
    /// Inputs.
    pub inputs: Receiver<InputEvent>,
}

/// Creates both queues.
pub(crate) fn inbound_queues(
    max_players: usize,
    input_capacity: usize,
) -> (InboundSender, InboundReceiver) {
    ends(
        crossbeam_channel::bounded(2 * max_players.max(1)),
        crossbeam_channel::bounded(input_capacity.max(1)),
    )
}

/// Creates both queues without bounds: for a replay, which puts a whole recorded tick in
/// before running it (the live server's queues are always bounded).
pub(crate) fn unbounded_inbound_queues() -> (InboundSender, InboundReceiver) {
    ends(
        crossbeam_channel::unbounded(),
        crossbeam_channel::unbounded(),
    )
}

fn ends(
    (lifecycle, lifecycle_rx): (Sender<Lifecycle>, Receiver<Lifecycle>),
    (inputs, inputs_rx): (Sender<InputEvent>, Receiver<InputEvent>),
) -> (InboundSender, InboundReceiver) {
    (
        InboundSender { lifecycle, inputs },
        InboundReceiver {
            lifecycle: lifecycle_rx,
            inputs: inputs_rx,
        },
    )
}

/// What became of an input handed to [`InboundSender::send_input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputOutcome {
    /// Queued for the next tick.
    Queued,
    /// The queue was full; the input was dropped.
    DroppedQueueFull,
    /// The tick is gone (shutting down).
    Closed,
}

impl InboundSender {
    /// Queues a join or leave. Returns false only if the tick has stopped.
    pub(crate) fn send_lifecycle(&self, event: Lifecycle) -> bool {
        match self.lifecycle.try_send(event) {
            Ok(()) => true,
            // Full cannot happen (see the module docs); treat it like a stopped tick rather
            // than block a network thread.
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Queues an input without ever blocking.
    pub(crate) fn send_input(&self, event: InputEvent) -> InputOutcome {
        match self.inputs.try_send(event) {
            Ok(()) => InputOutcome::Queued,
            Err(TrySendError::Full(_)) => InputOutcome::DroppedQueueFull,
            Err(TrySendError::Disconnected(_)) => InputOutcome::Closed,
        }
    }

    /// Inputs waiting for the next tick (a gauge for the metrics endpoint).
    pub(crate) fn queued_inputs(&self) -> usize {
        self.inputs.len()
    }
}
