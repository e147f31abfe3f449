//! Observability: the Prometheus metrics endpoint and what it reads (the process's CPU,
//! memory and file descriptors come from `throng_host::proc_stats`).
//!
//! - [`histogram`]: lock-free fixed-bucket duration histogram (tick time).
//! - [`exposition`]: the Prometheus text format.
//! - [`http`]: the minimal HTTP server that answers scrapes on the network runtime.

pub(crate) mod exposition;
pub(crate) mod histogram;
pub(crate) mod http;
