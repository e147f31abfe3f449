//! Observability: the Prometheus metrics endpoint and what it reads.
//!
//! - [`histogram`]: lock-free fixed-bucket duration histogram (tick time).
//! - [`process`]: CPU, memory and file descriptors of a process from `/proc`.
//! - [`exposition`]: the Prometheus text format.
//! - [`http`]: the minimal HTTP server that answers scrapes on the network runtime.

pub mod exposition;
pub mod histogram;
pub mod http;
pub mod process;
