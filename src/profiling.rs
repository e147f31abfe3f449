//! Tracy profiling, compiled in only with the `tracy` cargo feature (without it every
//! function here is an empty inline function and no Tracy code exists in the binary).
//!
//! What a connected Tracy 0.14 profiler sees (port 8086, from this machine only):
//! - one frame per tick (`frame_mark` at the end of each tick);
//! - a zone per system per tick (bevy_ecs's `trace` feature opens a span per system, which
//!   tracing-tracy turns into a zone): ingest, every gameplay system, replication, frame
//!   assembly and the flush hand-off;
//! - a `tick` zone around each whole tick, and the world tasks run between ticks;
//! - on the network threads (`throng-net`): `accept` (admission of an accepted socket),
//!   `decode` (the messages of one read, decoded and handled), `flush burst` (a flush
//!   task's writes of up to 200 connections' frames); on the tick thread and the
//!   `throng-worker` threads, `assemble_frames batch` (one part's clients' frames, each cut
//!   by the interest rule);
//! - plots: players, tick time (ms), outbound bytes per tick, inbound queue depth.
//!
//! The client runs `ondemand`: until a profiler connects nothing is buffered, so an
//! instrumented server can run unattended.
//!
//! Zone names of spans with fields carry their fields, formatted without colour:
//! `system{name="throng::ingest::ingest"}`. The Tracy layer formats fields with its own
//! formatter type ([`ZoneFields`]): tracing-subscriber caches a span's formatted fields per
//! formatter *type*, so a layer with the log's `DefaultFields` would reuse the coloured
//! text the log layer wrote on a terminal (a known tracing-tracy pitfall).

/// Opens a Tracy zone named `$name` (a string literal) on this thread, closed when the
/// returned guard drops; nothing without the `tracy` feature. On a tokio task, drop it
/// before the next `.await` (a zone begins and ends on one thread).
#[cfg(feature = "tracy")]
macro_rules! zone {
    ($name:literal) => {
        tracy_client::Client::running()
            .map(|client| client.span(tracy_client::span_location!($name), 0))
    };
}

/// Opens a Tracy zone (nothing without the `tracy` feature).
#[cfg(not(feature = "tracy"))]
macro_rules! zone {
    ($name:literal) => {
        crate::profiling::NoZoneGuard
    };
}

/// What [`zone!`] gives without the `tracy` feature: nothing, dropped like a zone guard.
#[cfg(not(feature = "tracy"))]
pub struct NoZoneGuard;

pub(crate) use zone;

/// Whether the log on stderr is coloured: only on a terminal, and never when `NO_COLOR` is
/// set to a non-empty value (<https://no-color.org>).
pub fn log_colours(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(feature = "tracy")]
mod enabled {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use crate::game::Simulation;
    use crate::stats::Stats;

    use tracing_subscriber::field::RecordFields;
    use tracing_subscriber::fmt::FormatFields;
    use tracing_subscriber::fmt::format::{DefaultFields, Writer};

    /// The Tracy layer's field formatter: `DefaultFields` under a type of its own, so that
    /// its formatted fields (the zone names) are never the log layer's coloured ones.
    #[derive(Default)]
    pub struct ZoneFields(DefaultFields);

    impl<'writer> FormatFields<'writer> for ZoneFields {
        fn format_fields<R: RecordFields>(
            &self,
            writer: Writer<'writer>,
            fields: R,
        ) -> std::fmt::Result {
            self.0.format_fields(writer, fields)
        }
    }

    /// The Tracy layer's configuration: tracing-tracy's defaults with [`ZoneFields`].
    #[derive(Default)]
    pub struct ZoneConfig(ZoneFields);

    impl tracing_tracy::Config for ZoneConfig {
        type Formatter = ZoneFields;

        fn formatter(&self) -> &ZoneFields {
            &self.0
        }
    }

    /// The tracing layer that turns spans into Tracy zones, and starts the Tracy client.
    pub fn layer() -> Option<tracing_tracy::TracyLayer<ZoneConfig>> {
        Some(tracing_tracy::TracyLayer::new(ZoneConfig::default()))
    }

    /// Blocks until a Tracy profiler is connected (a replay waits so that its first tick
    /// is captured). True: this build can be profiled.
    pub fn wait_for_profiler() -> bool {
        while !tracy_client::Client::is_connected() {
            std::thread::sleep(Duration::from_millis(50));
        }
        true
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

    /// No profiler can connect without the `tracy` feature: false at once.
    pub fn wait_for_profiler() -> bool {
        false
    }

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

pub use enabled::{TickPlots, layer, tick_zone, wait_for_profiler};
#[cfg(feature = "tracy")]
pub use enabled::{ZoneConfig, ZoneFields};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_coloured_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(
            log_colours(true, Some("".into())),
            "an empty NO_COLOR is unset"
        );
        assert!(!log_colours(true, Some("1".into())));
        assert!(!log_colours(false, None), "a file or a pipe");
    }

    /// Tracy zone names come from the Tracy layer's own formatted fields: with the coloured
    /// log layer beside it, they carry no ANSI codes (they did with the shared
    /// `DefaultFields`).
    #[cfg(feature = "tracy")]
    #[test]
    fn zone_names_carry_no_colour_codes_beside_a_coloured_log() {
        use tracing_subscriber::fmt::FormattedFields;
        use tracing_subscriber::prelude::*;
        use tracing_subscriber::registry::{LookupSpan, SpanData};

        /// The fields the Tracy layer `_layer` names its zones with: the span's
        /// formatted fields cached under its config's formatter type.
        fn zone_fields<C: tracing_tracy::Config>(
            _layer: &Option<tracing_tracy::TracyLayer<C>>,
            extensions: &tracing_subscriber::registry::Extensions<'_>,
        ) -> Option<String> {
            extensions
                .get::<FormattedFields<C::Formatter>>()
                .map(|fields| fields.fields.clone())
        }

        let tracy = layer();
        let zone_name_source = |extensions: &tracing_subscriber::registry::Extensions<'_>| {
            zone_fields(&tracy, extensions)
        };
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(true)
                    .with_writer(std::io::sink),
            )
            .with(layer());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("system", name = "throng::ingest::ingest");
            let id = span.id().expect("enabled");
            tracing::dispatcher::get_default(|dispatch| {
                let registry = dispatch
                    .downcast_ref::<tracing_subscriber::Registry>()
                    .expect("a registry");
                let data = registry.span_data(&id).expect("the span");
                let extensions = data.extensions();
                let log = extensions
                    .get::<FormattedFields<tracing_subscriber::fmt::format::DefaultFields>>()
                    .expect("the log layer's fields");
                assert!(log.fields.contains('\x1b'), "the log is coloured: {log:?}");
                assert_eq!(
                    zone_name_source(&extensions).as_deref(),
                    Some("name=\"throng::ingest::ingest\""),
                    "the zone is named from plain fields"
                );
            });
        });
    }
}
