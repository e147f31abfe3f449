//! Observability: the Prometheus metrics endpoint and what it reads (the process's CPU,
//! memory and file descriptors come from `throng_host::proc_stats`).
//!
//! - [`console`]: the live operator console's once-a-second snapshot (JSON, Server-Sent
//!   Events) and player lookup.
//! - [`histogram`]: lock-free fixed-bucket duration histogram (tick time).
//! - [`exposition`]: the collector that encodes every metric with prometheus-client (Prometheus
//!   text 0.0.4, or OpenMetrics when asked).
//! - [`http`]: the endpoint's routes (axum on hyper) and the connection limits that keep
//!   probes answering, on the network runtime.

pub(crate) mod console;
pub(crate) mod exposition;
pub(crate) mod histogram;
pub(crate) mod http;
