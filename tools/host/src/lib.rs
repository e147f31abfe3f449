//! What the host tells a crowd server and its load tools: the open-file limit and `/proc`
//! readings. The server raises its limit and reports its own CPU, memory and descriptors;
//! loadgen raises its limit and measures the server it drives (and itself) the same way.
//! Kept apart from the server so the load tools need not link it: only std and libc.
//!
//! - [`fd_limit`]: raising the open-file soft limit to the hard limit.
//! - [`proc_stats`]: CPU time, resident memory and open descriptors of a process, and the
//!   machine's busy time, from `/proc` (Linux).
#![warn(missing_docs, unreachable_pub)]

pub mod fd_limit;
pub mod proc_stats;
