//! The integration tests, as one test binary (`cargo test -p throng --test it`): cargo
//! builds and links one executable that links bevy and SQLite instead of one per file, and
//! libtest runs every test of every module in parallel threads of one process.
//!
//! Every module is a former `tests/<name>.rs`; run one with its name as the filter
//! (`cargo test -p throng --test it persistence::`). Tests share this process, so none may
//! change process-wide state another test depends on. The allocation-counting test is its
//! own binary (tests/allocations.rs): its global allocator would count every thread of this
//! process.
//!
//! Conventions (helpers in `common`): a server's data lives in a temporary directory that
//! goes when the test ends (`start_server`'s `TestServer`, `fresh_data_dir`); a test waits
//! for a condition (`eventually`, `ServerProcess::until`, bounded by `HANG_GUARD`), not for
//! a fixed time, unless the time is its premise (a client staying silent, a soak's length),
//! as its comment then says; randomness comes from `seeded_rng`, whose seed is printed and
//! can be set with `THRONG_TEST_SEED`.

mod common;

mod admission;
#[cfg(feature = "agones")]
mod agones;
mod bad_input;
mod binary;
mod console;
mod events_harness;
mod fuzz_corpus;
mod gameplay;
mod hostile_clients;
mod hygiene;
mod leaks;
mod logins;
mod metrics;
mod persistence;
mod recording;
mod replication_harness;
mod session;
mod system_panic;
#[cfg(feature = "tracy")]
mod tracy;
mod websocket;
mod zones;
