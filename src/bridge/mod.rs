//! The one boundary between the network runtime and the tick: everything the two sides
//! exchange, as plain data, and nothing else. The network side (`net`) and the tick side
//! (`ingest`, `replication`, `game`) both import this module and never each other.
//!
//! - In: [`queues`], two bounded lock-free queues (joins and leaves; inputs and actions),
//!   drained by the Ingest phase at the start of every tick.
//! - Out: [`outbox`], one frame ring per client, filled by the tick and written by the network
//!   side; and the [`TickSignal`], sent once per tick when every frame is published.
//!
//! Invariant: neither side ever waits for the other here. Every queue is bounded, every send
//! is a `try_send`, and what a full queue or a full outbox means is defined where it is
//! created (dropped and counted inputs; a resync for a client that does not read).

mod doorbell;
pub(crate) mod outbox;
pub(crate) mod queues;
mod tick_signal;

pub(crate) use outbox::{OutboxReader, outbox};
pub(crate) use queues::{
    ConnectionId, InboundReceiver, InboundSender, InputEvent, InputOutcome, Join, Leave, Lifecycle,
    PlayerMessage, inbound_queues, unbounded_inbound_queues,
};
pub(crate) use tick_signal::{TickSignal, tick_signals};

use std::any::Any;

/// Something the network side holds for a connection that must stay held until the tick
/// side is done with the player: its player slot (released once the tick has seen the leave)
/// or the claim on its name (released once its final record is saved). Dropping it releases
/// it. Opaque on purpose: the tick only carries it, so it needs no network or persistence
/// types to do so.
pub struct Held(#[allow(dead_code)] Box<dyn Any + Send + Sync>);

impl Held {
    /// Holds `claim` until this is dropped.
    pub fn new(claim: impl Any + Send + Sync) -> Self {
        Self(Box::new(claim))
    }
}
