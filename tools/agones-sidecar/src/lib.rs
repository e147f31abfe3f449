//! A local stand-in for the Agones SDK sidecar: a gRPC server on loopback that implements
//! the SDK's services (`agones.dev.sdk.SDK`, and the Counters of `agones.dev.sdk.beta.SDK`)
//! from the same protos the official SDK crate is built from, and records every call it
//! receives, in order, for a test to assert on.
//!
//! No Kubernetes runs where throng is tested, so this is what throng's Agones integration
//! (`--features agones`, src/agones.rs) is tested against (tests/it/agones.rs). It keeps the
//! parts of the real sidecar's behaviour that the game server can observe: the GameServer's
//! state moves Scheduled → Ready → Allocated → Shutdown on the lifecycle calls, Counters
//! must be declared up front (an undeclared one is `NOT_FOUND`, as on a cluster, where
//! they come from the GameServer spec) and stay within `[0, capacity]` (`OUT_OF_RANGE`).
//! What it cannot show is what Agones does with them (marking the GameServer Unhealthy
//! when pings stop, deleting the Pod after Shutdown): docs/AGONES.md lists what only a real
//! cluster checks.
//!
//! Everything is behind the `grpc` feature (which needs protoc): without it the crate is
//! empty, so the workspace's default build does not need protoc.

#[cfg(feature = "grpc")]
mod stand_in;

#[cfg(feature = "grpc")]
pub use stand_in::*;
