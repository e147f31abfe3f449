//! Player persistence: identity (a name claimed by its first secret), and write-behind of
//! players' state that never blocks the tick.
//!
//! # Layout
//! - [`store`]: the `Store` trait (login, save a batch) and its records.
//! - [`sqlite`]: the embedded SQLite store (WAL, migrations, exclusive lock).
//! - [`postgres`]: the PostgreSQL store several zone servers share (`--store postgres://`):
//!   batched saves, online holds per zone, handoff tickets.
//! - [`credentials`]: salted hashes of secrets, constant-time checks.
//! - [`online`]: one login per name at a time.
//! - [`login`]: logging a player in for the network side (throttle, name claim, the store).
//! - [`login_throttle`]: failed logins per name and per address, sans I/O.
//! - [`writer`]: the persistence thread (logins, batched transactions, coalescing, lag).
//! - [`handoff`]: the tick's side: dirty collection once per interval, final records on
//!   leave, restore on join.
//!
//! # Durability
//! Every `save_interval_s` the tick hands the players that changed to the persistence
//! thread, which commits them in one transaction. After `kill -9` a restarted server has
//! every committed transaction: a player loses at most the last interval of progress (plus
//! the batch being committed). A player who leaves is saved at once. A graceful shutdown
//! saves everyone before it exits.

/// Milliseconds since the Unix epoch, from this host's clock (saved-at stamps, hold leases,
/// ticket expiry).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// [`unix_ms`] as the databases store it (a signed 64-bit column).
pub(crate) fn db_now_ms() -> i64 {
    unix_ms() as i64
}

pub(crate) mod credentials;
pub mod handoff;
pub(crate) mod login;
pub(crate) mod login_throttle;
pub(crate) mod online;
pub mod postgres;
pub mod sqlite;
pub mod store;
pub mod writer;
