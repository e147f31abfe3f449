//! Recording and replay: everything the tick consumes, written tick by tick while the server
//! runs, so that a session can be run again offline, deterministically, without sockets,
//! under a debugger or Tracy (docs/RECORDING.md).
//!
//! The tick is the only writer of the world and everything it consumes comes through the
//! two inbound queues, so recording what the Ingest phase drains (joins with the saved state
//! they bring, leaves, inputs and actions in arrival order) plus the configuration and the
//! game's registered names is enough to rebuild every tick. A digest of the replicated state
//! every `record_digest_every` ticks lets a replay prove it matched, or say where it did not.
//!
//! - `format`: the file format (sans I/O), shared by the writer and the reader.
//! - `capture`: the tick's side (the Ingest hooks, the end-of-tick hand-off).
//! - `writer`: the recording thread (files, rotation, failures).
//! - `digest`: the state digest and where two digests differ.
//! - [`replay`]: running a recording again; `replay_command`: `throng replay`.
//! - `dump`: a world's entities as JSON.
//!
//! *Invariant*: the tick never touches a file, waits or wakes a thread for recording; a
//! failed recording stops with a log line and a metric, and the server keeps serving.

pub(crate) mod capture;
pub(crate) mod digest;
pub mod dump;
pub mod format;
pub mod replay;
mod replay_command;
pub(crate) mod writer;

pub use replay::{DigestCheck, Divergence, Replay, ReplayError};
pub use replay_command::{DIVERGED, MATCHED, ReplayArgs, STOPPED, UNREADABLE, run as run_replay};
