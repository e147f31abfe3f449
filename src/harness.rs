//! A socket-free harness around a [`Simulation`]: joins, inputs and leaves go in through the
//! real inbound queues, frames come out of the real outboxes. Benchmarks use it to measure a
//! whole tick without the kernel; tests use it to check replication without timing.

use std::sync::Arc;

use ahash::AHashMap;

use bevy_app::App;

use crate::bridge::TickSignal;
use crate::bridge::outbox::{OutboxReader, outbox};
use crate::bridge::{
    ConnectionId, InboundReceiver, InboundSender, InputEvent, InputOutcome, Join, Leave, Lifecycle,
    PlayerMessage, inbound_queues, unbounded_inbound_queues,
};
use crate::config::Config;
use crate::game::{BuildError, EngineLinks, Simulation};
use crate::ingest::Connections;
use crate::persistence::store::SavedPlayer;
use crate::protocol::{Action, FRAME_HEADER_BYTES, Input, ServerMessage, decode_server_message};
pub use crate::replication::frames::MAX_PENDING_EVENT_BYTES;
use crate::replication::frames::Viewer;
use crate::stats::Stats;

/// A simulation driven by hand.
pub struct Harness {
    /// The simulation; tick it with [`Harness::tick`].
    pub simulation: Simulation,
    /// Its counters.
    pub stats: Arc<Stats>,
    inbound: InboundSender,
    outboxes: AHashMap<ConnectionId, OutboxReader>,
    next_connection: ConnectionId,
    outbound_buffers: usize,
}

impl Harness {
    /// A simulation with the standard gameplay.
    pub fn new(config: &Config) -> Self {
        Self::with_gameplay(config, |app| {
            app.add_plugins(systems::GamePlugins);
        })
    }

    /// A simulation whose gameplay is registered by `gameplay`.
    pub fn with_gameplay(config: &Config, gameplay: impl FnOnce(&mut App)) -> Self {
        let queues = inbound_queues(config.max_players, config.input_queue_capacity);
        Self::build(config, gameplay, queues).expect("the simulation builds")
    }

    /// Like [`Harness::with_gameplay`], with inbound queues that never refuse (a replay puts
    /// a whole recorded tick in before running it), and the build's error returned (a
    /// recording's configuration may not suit this build's gameplay).
    pub(crate) fn unbounded(
        config: &Config,
        gameplay: impl FnOnce(&mut App),
    ) -> Result<Self, BuildError> {
        Self::build(config, gameplay, unbounded_inbound_queues())
    }

    fn build(
        config: &Config,
        gameplay: impl FnOnce(&mut App),
        (inbound, receiver): (InboundSender, InboundReceiver),
    ) -> Result<Self, BuildError> {
        let stats = Arc::new(Stats::default());
        let links = EngineLinks {
            inbound: receiver,
            tick_signal: TickSignal::default(),
            stats: stats.clone(),
            store: None,
            zone: None,
            ghosts: None,
        };
        let simulation = crate::game::build(config, links, gameplay)?;
        Ok(Self {
            simulation,
            stats,
            inbound,
            outboxes: AHashMap::default(),
            next_connection: 1,
            outbound_buffers: config.outbound_buffers,
        })
    }

    /// Queues a join (it takes effect at the next tick) and returns the connection id.
    pub fn join(&mut self, name: &str) -> ConnectionId {
        let connection = self.next_connection;
        // No store here: every join is a new account (numbered like its connection).
        let saved = SavedPlayer {
            account: connection as i64,
            position: None,
            components: Vec::new(),
        };
        self.join_as(connection, name.to_owned(), saved, 0);
        connection
    }

    /// Queues the join of `connection` (an id not used before) with its saved state,
    /// acknowledging `ack_seq` until its first input.
    pub(crate) fn join_as(
        &mut self,
        connection: ConnectionId,
        name: String,
        saved: SavedPlayer,
        ack_seq: u32,
    ) {
        self.next_connection = self.next_connection.max(connection.saturating_add(1));
        let (writer, reader) = outbox(self.outbound_buffers);
        self.outboxes.insert(connection, reader);
        let join = Join {
            connection,
            name,
            outbox: writer,
            saved,
            name_claim: None,
            ack_seq,
        };
        assert!(
            self.inbound.send_lifecycle(Lifecycle::Join(Box::new(join))),
            "lifecycle queue accepts the join"
        );
    }

    /// Queues a leave.
    pub fn leave(&mut self, connection: ConnectionId) {
        self.outboxes.remove(&connection);
        assert!(self.inbound.send_lifecycle(Lifecycle::Leave(Leave {
            connection,
            slot: None,
        })));
    }

    /// Queues an input.
    pub fn input(&self, connection: ConnectionId, seq: u32, dir_x: i8, dir_y: i8) -> InputOutcome {
        self.send(
            connection,
            PlayerMessage::Input(Input { seq, dir_x, dir_y }),
        )
    }

    /// Queues an action of wire kind `kind` with the encoded value `bytes` (the network
    /// side's checks are skipped: the tick trusts what it is given).
    pub fn action(
        &self,
        connection: ConnectionId,
        seq: u32,
        kind: u16,
        bytes: Vec<u8>,
    ) -> InputOutcome {
        self.send(
            connection,
            PlayerMessage::Action(Action { seq, kind, bytes }),
        )
    }

    /// Makes the next frame the tick publishes for `connection` find its outbox full, as a
    /// slow reader's would.
    pub(crate) fn refuse_next_frame(&self, connection: ConnectionId) {
        if let Some(outbox) = self.outboxes.get(&connection) {
            outbox.refuse_next_frame();
        }
    }

    /// Queues an input or action.
    pub(crate) fn send(&self, connection: ConnectionId, message: PlayerMessage) -> InputOutcome {
        self.inbound.send_input(InputEvent {
            connection,
            message,
        })
    }

    /// Runs one tick.
    pub fn tick(&mut self) {
        self.simulation.tick();
    }

    /// Takes the messages queued for `connection`, decoded (allocates: tests only).
    pub fn messages(&mut self, connection: ConnectionId) -> Vec<ServerMessage> {
        let outbox = self
            .outboxes
            .get_mut(&connection)
            .expect("a joined connection");
        let mut messages = Vec::new();
        while let Some(slot) = outbox.front() {
            // A slot holds exactly one frame.
            messages.push(
                decode_server_message(&slot.bytes[FRAME_HEADER_BYTES..])
                    .expect("server frames decode"),
            );
            outbox.release();
        }
        messages
    }

    /// Bytes of server events kept for `connection` while its frames are dropped (it is
    /// closed with `EventBacklog` once they pass [`MAX_PENDING_EVENT_BYTES`]); `None` if it
    /// has no player.
    pub fn pending_event_bytes(&self, connection: ConnectionId) -> Option<usize> {
        let world = &self.simulation.world;
        let player = *world.resource::<Connections>().0.get(&connection)?;
        let viewer = world.get::<Viewer>(player)?;
        Some(viewer.pending_events.bytes.len())
    }

    /// The close the tick asked `connection`'s task to send, if any.
    pub fn close_requested(
        &self,
        connection: ConnectionId,
    ) -> Option<crate::protocol::CloseReason> {
        self.outboxes[&connection].requested_close()
    }

    /// Takes every queued frame, in order per connection, as the bytes a client receives
    /// (the frame's length prefix excluded).
    pub(crate) fn drain_frames(&mut self, mut each: impl FnMut(ConnectionId, &[u8])) {
        for (&connection, outbox) in &mut self.outboxes {
            while let Some(slot) = outbox.front() {
                each(connection, &slot.bytes[FRAME_HEADER_BYTES..]);
                outbox.release();
            }
        }
    }

    /// Plays the part of every connection task: takes the queued frames and releases their
    /// slots, as a socket write would. Returns the bytes "written". Does not allocate.
    pub fn write_all_frames(&mut self) -> usize {
        let mut bytes = 0;
        for outbox in self.outboxes.values_mut() {
            while let Some(slot) = outbox.front() {
                bytes += slot.bytes.len();
                outbox.release();
            }
        }
        bytes
    }
}
