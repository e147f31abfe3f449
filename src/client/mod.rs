//! The Rust client: what tests, tools and the load generator use to speak to a server.
//!
//! # Layout
//! - [`connection`]: an async TCP client (connect, Hello, inputs, frames).
//! - [`mirror`]: a sans-IO copy of the entities a client sees, kept by applying frames.
//! - [`visit`]: zero-allocation reading of state frame bytes (what the mirror applies).

pub mod connection;
pub mod mirror;
pub mod visit;

pub use connection::{Client, ClientError};
pub use mirror::{Mirror, MirrorError, MirroredEntity};
