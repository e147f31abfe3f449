//! Tracy profiling, compiled in only with the `tracy` cargo feature (without it every
//! function here is an empty inline function and no Tracy code exists in the binary).
//!
//! What a connected Tracy 0.14 profiler sees (port 8086, from this machine only):
//! - one frame per tick (`frame_mark` at the end of each tick);
//! - a zone per system per tick (bevy_ecs's `trace` feature opens a span per system, which
//!   tracing-tracy turns into a zone): ingest, every gameplay system, replication, frame
//!   assembly and the flush hand-off;
//! - a `tick` zone around each whole tick, and the world tasks run between ticks;
//! - plots: players, tick time (ms), outbound bytes per tick, inbound queue depth.
//!
//! The client runs `ondemand`: until a profiler connects nothing is buffered, so an
//! instrumented server can run unattended.

#[cfg(feature = "tracy")]
mod enabled {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use crate::game::Simulation;
    use crate::stats::Stats;

    /// The tracing layer that turns spans into Tracy zones, and starts the Tracy client.
    pub fn layer() -> Option<tracing_tracy::TracyLayer<tracing_tracy::DefaultConfig>> {
        Some(tracing_tracy::TracyLayer::default())
    }

    /// Opens the `tick` zone; it closes when the guard drops.
    pub fn tick_zone() -> Option<tracy_client::Span> {
        tracy_client::Client::running()
            .map(|client| client.span(tracy_client::span_location!("tick"), 0))
    }

    /// Between ticks: remembers the outbound byte counter, to plot bytes per tick.
    #[derive(Default)]
    pub struct TickPlots {
        bytes_before: u64,
    }

    impl TickPlots {
        /// Ends the tick's frame and records its plots.
        pub fn tick_finished(&mut self, stats: &Stats, took: Duration, simulation: &Simulation) {
            let Some(client) = tracy_client::Client::running() else {
                return;
            };
            let bytes = stats.bytes_submitted.load(Ordering::Relaxed);
            client.plot(
                tracy_client::plot_name!("outbound bytes per tick"),
                bytes.saturating_sub(self.bytes_before) as f64,
            );
            self.bytes_before = bytes;
            client.plot(
                tracy_client::plot_name!("players"),
                stats.players_connected.load(Ordering::Relaxed) as f64,
            );
            client.plot(
                tracy_client::plot_name!("tick ms"),
                took.as_secs_f64() * 1000.0,
            );
            client.plot(
                tracy_client::plot_name!("inbound queue depth"),
                simulation.queued_inputs() as f64,
            );
            client.frame_mark();
        }
    }
}

#[cfg(not(feature = "tracy"))]
mod enabled {
    use std::time::Duration;

    use crate::game::Simulation;
    use crate::stats::Stats;

    /// No profiler without the `tracy` feature.
    #[inline(always)]
    pub fn layer() -> Option<tracing_subscriber::layer::Identity> {
        None
    }

    /// Stands for a zone guard; never exists.
    pub struct NoZone;

    /// No zone without the `tracy` feature.
    #[inline(always)]
    pub fn tick_zone() -> Option<NoZone> {
        None
    }

    /// Nothing to plot without the `tracy` feature.
    #[derive(Default)]
    pub struct TickPlots {
        _nothing: (),
    }

    impl TickPlots {
        /// Does nothing without the `tracy` feature.
        #[inline(always)]
        pub fn tick_finished(&mut self, _stats: &Stats, _took: Duration, _simulation: &Simulation) {
        }
    }
}

pub use enabled::{TickPlots, layer, tick_zone};
