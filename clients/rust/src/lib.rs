//! The Rust client of throng: what tests, tools and the load generator use to speak to a
//! server. Depends on the protocol crate only (no bevy, no server code).
//!
//! # Layout
//! - [`connection`]: an async TCP client (connect, Hello, inputs, actions, frames; Resume
//!   on the next zone server after a `Transfer`).
//! - [`mirror`]: a sans-IO copy of the entities a client sees, kept by applying frames.
#![warn(missing_docs, unreachable_pub)]

pub mod connection;
pub mod mirror;

pub use connection::{ActionKind, Client, ClientError};
pub use mirror::{Mirror, MirrorError, MirroredEntity};
