//! throng: an authoritative fixed-tick game-simulation server for crowds.
//!
//! Tokio tasks decode client inputs and push them through lock-free queues into a bevy_ecs
//! world that a dedicated thread ticks at a fixed rate; each tick every changed entity is
//! encoded once, and every client gets one frame with the entities within its interest
//! radius (found through a grid of cells), written to the sockets by the network runtime's
//! flush tasks. See ARCHITECTURE.md for the whole picture.
//!
//! # Layout
//! - [`server`]: start/stop a server ([`ServerHandle`]).
//! - [`config`]: settings, defaults, TOML file and flags.
//! - [`protocol`]: the wire protocol crate (`throng-protocol`, docs/PROTOCOL.md), re-exported.
//! - [`net`]: accept loop, connection tasks, framing, the outbound hand-off.
//! - [`bridge`]: the one boundary between network and tick (queues in; frame rings and the
//!   tick signal out).
//! - [`game`]: the world and the ordered tick schedule; gameplay plugs in here.
//! - [`ingest`]: the first phase of a tick (joins, leaves, inputs).
//! - [`replication`]: grid, records encoded once, per-client frames cut by the interest rule.
//! - [`tick`]: the fixed-rate tick thread.
//! - [`token_bucket`]: the rate arithmetic every limit shares, sans I/O.
//! - [`stats`]: counters for every limit and bad input.
//! - [`system_failure`]: a failing gameplay system is logged by name; a panic stops the server.
//! - [`metrics`]: the Prometheus endpoint, tick-time histogram (`/proc` readings come from
//!   the `throng-host` crate, tools/host).
//! - [`persistence`]: identity, and write-behind of players' state to SQLite or PostgreSQL.
//! - [`profiling`]: Tracy frames, zones and plots (only with the `tracy` feature).
//! - [`recording`]: every tick recorded while serving (`--record`), replayed offline.
//! - [`zones`]: one world served by several servers (zone map, handoff tickets, borders).
//! - `embedded`: files built into the binary (page, client library, console), served over HTTP.
//! - [`harness`]: a socket-free driver for benchmarks and tests.
//! - `agones`: Ready, health pings, player counts and Shutdown to Agones (`agones` feature).
#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "agones")]
pub mod agones;
mod bridge;
pub mod config;
pub(crate) mod embedded;
mod game;
pub mod harness;
mod ingest;
mod metrics;
pub mod net;
pub mod persistence;
mod prefetch;
pub mod profiling;
pub mod recording;
mod replication;
pub mod server;
pub mod stats;
mod system_failure;
mod tick;
mod token_bucket;
pub mod zones;

pub use throng_protocol as protocol;

pub use bridge::queues::{ConnectionId, InputOutcome};
pub use config::Config;
pub use game::Simulation;
pub use metrics::console::PositionCopy;
pub use server::ServerHandle;
