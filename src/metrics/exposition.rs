//! The exposition of every metric, by prometheus-client: one [`Collector`] reads the server's
//! counters (relaxed atomics, [`crate::stats::Stats`]), both lock-free histograms and `/proc`
//! at scrape time and encodes them as constant metrics, so nothing a scrape does touches the
//! tick. Served in the Prometheus text format 0.0.4 (prometheus-client's `prometheus_text`,
//! the format and names Prometheus has always read here) or, to a scraper that asks for it,
//! OpenMetrics 1.0 text. Names follow the conventions: counters end in `_total` (registered
//! without it: the library appends it), durations in seconds, sizes in bytes.
//!
//! Hand-written still: the tick-duration histogram ([`super::histogram`]). prometheus-client's
//! `Histogram` keeps its buckets behind a mutex that its encoder also takes, so the tick's
//! observation could wait behind a scrape on the network side (the tick never waits on a
//! lock the network side holds). Ours is one relaxed atomic add; a scrape only loads
//! atomics. Measured (`cargo bench --bench histogram`, 2-core VM, a build running beside):
//! 5.5-7.5 ns per observation for ours vs 9.5-12.6 ns for the library's, and 9.8-11.4 vs
//! 11.8-16.7 ns while a scrape encodes in a loop: the mean per tick is negligible either way;
//! the lock is the reason. The collector hands our buckets to the library's encoder.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, MetricEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use throng_host::proc_stats::ProcessSample;

use super::histogram::{HistogramSnapshot, TICK_BUCKETS_US};
use crate::protocol::CloseReason;
use crate::stats::StatsSnapshot;

/// Everything one scrape reports.
pub(crate) struct Readings {
    /// The server's counters.
    pub stats: StatsSnapshot,
    /// Inputs waiting for the next tick.
    pub inbound_queue_depth: usize,
    /// The server process's CPU and memory, if `/proc` could be read.
    pub process: Option<ProcessSample>,
    /// The server process's open file descriptors, if `/proc` could be read.
    pub open_fds: Option<usize>,
    /// Live tasks of the network runtime (connection tasks, flush tasks, the accept loop).
    pub runtime_tasks: usize,
    /// The game's action kinds' names, by wire number (labels of the action counters).
    pub action_names: Arc<Vec<String>>,
}

/// Takes a fresh [`Readings`] on every scrape and encodes it.
pub(crate) struct ReadingsCollector<F>(pub F);

impl<F> fmt::Debug for ReadingsCollector<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadingsCollector")
    }
}

impl<F: Fn() -> Readings + Send + Sync + 'static> Collector for ReadingsCollector<F> {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> fmt::Result {
        encode_readings(&(self.0)(), encoder)
    }
}

/// A registry holding only `collector`.
pub(crate) fn registry(collector: impl Collector) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    registry
}

/// The exposition formats a scrape can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Prometheus text 0.0.4, the default.
    Prometheus,
    /// OpenMetrics 1.0 text, for a scraper whose `Accept` header names it.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for (OpenMetrics only if it is named there).
    pub(crate) fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// Its `Content-Type`, as prometheus-client documents it.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Encodes everything `registry` collects now.
pub(crate) fn render(registry: &Registry, format: Format) -> Result<String, fmt::Error> {
    let mut text = String::with_capacity(16 * 1024);
    match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, registry)?,
    }
    Ok(text)
}

fn encode_readings(readings: &Readings, encoder: DescriptorEncoder<'_>) -> fmt::Result {
    let s = &readings.stats;
    let mut out = Out(encoder);
    out.histogram(
        "throng_tick_duration_seconds",
        "Time the tick thread spent per tick (simulation, replication, hand-off).",
        &s.tick_duration,
    )?;
    out.counter("throng_ticks_total", "Ticks completed.", s.ticks)?;
    out.counter(
        "throng_tick_overruns_total",
        "Ticks that ended after their deadline.",
        s.tick_overruns,
    )?;
    out.gauge(
        "throng_players_connected",
        "Players in the world.",
        s.players_connected,
    )?;
    out.gauge(
        "throng_handshakes_pending",
        "Connections accepted that have not logged in yet (max_pending_handshakes bounds them).",
        s.handshakes_pending,
    )?;
    out.gauge(
        "throng_connection_tasks",
        "Live connection tasks (handshaking or playing).",
        s.connections_live,
    )?;
    out.gauge(
        "throng_runtime_tasks",
        "Live tasks of the network runtime: connection tasks plus a fixed few (accept loop, flush tasks, metrics).",
        readings.runtime_tasks,
    )?;
    out.gauge(
        "throng_entities",
        "Game entities (replicated: players, NPCs, game objects) after the last tick.",
        s.entities,
    )?;
    out.counter(
        "throng_connections_accepted_total",
        "TCP connections accepted.",
        s.connections_accepted,
    )?;
    out.counter(
        "throng_accept_errors_total",
        "Accept calls that failed (for example out of file descriptors).",
        s.accept_errors,
    )?;
    out.counter(
        "throng_http_connections_total",
        "Connections accepted on the metrics and probes port.",
        s.http_connections,
    )?;
    out.labelled_counter(
        "throng_http_connections_dropped_total",
        "Metrics-port connections closed unanswered: idle_evicted (no complete request yet, \
         closed to make room for a newer connection), full (every held connection was being \
         answered).",
        "cause",
        [
            ("idle_evicted", s.http_idle_evicted),
            ("full", s.http_refused_full),
        ]
        .into_iter(),
    )?;
    out.counter(
        "throng_console_kicks_refused_total",
        "Console kicks refused (from a non-loopback peer without the right admin token).",
        s.console_kicks_refused,
    )?;
    out.labelled_gauge(
        "throng_players_by_transport",
        "Players joined whose connection is still open, by transport (of throng_players_connected, counted by the network side).",
        "transport",
        [("tcp", s.players_tcp), ("websocket", s.players_websocket)].into_iter(),
    )?;
    out.gauge(
        "throng_websocket_sessions",
        "Live connection tasks of WebSocket players (of throng_connection_tasks).",
        s.websocket_sessions_live,
    )?;
    out.counter(
        "throng_websocket_upgrades_total",
        "Sockets upgraded to WebSocket on the web listener.",
        s.websocket_upgrades,
    )?;
    out.labelled_counter(
        "throng_websocket_refused_total",
        "WebSocket upgrades refused, by HTTP status.",
        "status",
        [
            ("400", s.websocket_refused_bad_key),
            ("403", s.websocket_refused_origin),
            ("426", s.websocket_refused_not_upgrade),
        ]
        .into_iter(),
    )?;
    out.labelled_counter(
        "throng_connections_rejected_total",
        "Connections refused before their session opened (Reject), by reason.",
        "reason",
        CloseReason::ALL
            .iter()
            .map(|&reason| (reason.as_str(), s.rejects_by_reason[reason.index()])),
    )?;
    out.labelled_counter(
        "throng_kicks_total",
        "Open sessions closed by the server (Close), by reason; shutdown included.",
        "reason",
        CloseReason::ALL
            .iter()
            .map(|&reason| (reason.as_str(), s.kicks_by_reason[reason.index()])),
    )?;
    out.counter(
        "throng_inbound_frames_total",
        "Frames received from clients.",
        s.inbound_frames,
    )?;
    out.counter(
        "throng_inbound_bytes_total",
        "Bytes received from clients.",
        s.inbound_bytes,
    )?;
    out.counter(
        "throng_inputs_applied_total",
        "Inputs applied by the tick.",
        s.inputs_applied,
    )?;
    out.labelled_counter(
        "throng_inputs_dropped_total",
        "Inputs not applied (and, for rate_limited, pings not answered), by cause.",
        "cause",
        [
            ("rate_limited", s.inputs_dropped_rate_limited),
            ("queue_full", s.inputs_dropped_queue_full),
            ("player_gone", s.inputs_for_unknown_connection),
        ]
        .into_iter(),
    )?;
    let kinds = readings
        .action_names
        .iter()
        .take(crate::stats::MAX_COUNTED_ACTION_KINDS)
        .enumerate();
    out.counters(
        "throng_actions_queued_total",
        "Player actions admitted and queued for the tick, by kind.",
        kinds
            .clone()
            .map(|(kind, name)| (vec![("kind", name.as_str())], s.actions_queued[kind])),
    )?;
    let unknown_kind = (
        vec![("kind", "unknown"), ("cause", "unknown_kind")],
        s.actions_dropped_unknown_kind,
    );
    out.counters(
        "throng_actions_dropped_total",
        "Player actions dropped, by kind and cause (kind=\"unknown\": a kind the game does not have).",
        std::iter::once(unknown_kind).chain(kinds.flat_map(|(kind, name)| {
            crate::stats::ActionDrop::ALL.into_iter().map(move |cause| {
                (
                    vec![("kind", name.as_str()), ("cause", cause.as_str())],
                    s.actions_dropped[kind][cause as usize],
                )
            })
        })),
    )?;
    out.counter(
        "throng_events_sent_total",
        "Server events put into frames (an event counts once per client that receives it).",
        s.events_sent,
    )?;
    out.counter(
        "throng_events_unroutable_total",
        "Server events whose target had left or was never replicated.",
        s.events_unroutable,
    )?;
    out.gauge(
        "throng_inbound_queue_depth",
        "Inputs waiting for the next tick.",
        readings.inbound_queue_depth,
    )?;
    out.counter(
        "throng_outbound_frames_total",
        "State frames handed to the network side.",
        s.frames_submitted,
    )?;
    out.counter(
        "throng_outbound_bytes_total",
        "Bytes of state frames handed to the network side.",
        s.bytes_submitted,
    )?;
    out.counter(
        "throng_frames_written_total",
        "State frames written to sockets.",
        s.frames_written,
    )?;
    out.counter(
        "throng_frames_dropped_slow_reader_total",
        "State frames dropped because the client had every buffer in flight.",
        s.frames_dropped_slow_reader,
    )?;
    out.counter(
        "throng_resyncs_total",
        "Full-view resynchronisations sent after dropped frames.",
        s.resyncs,
    )?;
    out.counter("throng_pongs_total", "Pings answered.", s.pongs)?;
    out.counter(
        "throng_persistence_batches_total",
        "Batches of player records the tick handed to the persistence thread.",
        s.persist_batches,
    )?;
    out.counter(
        "throng_persistence_transactions_total",
        "Transactions committed by the persistence thread (waiting batches are merged into one).",
        s.persist_transactions,
    )?;
    out.counter(
        "throng_persistence_rows_total",
        "Player records written to the store.",
        s.persist_rows,
    )?;
    out.counter(
        "throng_persistence_failures_total",
        "Transactions the store refused (their records are lost).",
        s.persist_failures,
    )?;
    out.gauge(
        "throng_store_holds_at_risk",
        "1 while this server could not renew its holds on its players in the shared store for most of a lease (its players are closed), else 0.",
        s.store_holds_at_risk,
    )?;
    out.counter(
        "throng_persistence_rows_dropped_total",
        "Player records given up after the store refused them for a minute (retried until then).",
        s.persist_rows_dropped,
    )?;
    out.counter(
        "throng_persistence_handoffs_delayed_total",
        "Hand-offs the persistence thread could not take yet (records merged into the next).",
        s.persist_handoffs_delayed,
    )?;
    out.gauge_f64(
        "throng_persistence_lag_seconds",
        "From the tick's hand-off to the commit, for the last transaction.",
        s.persist_lag_us as f64 / 1e6,
    )?;
    out.histogram(
        "throng_persistence_commit_duration_seconds",
        "Time each persistence transaction took.",
        &s.persist_commit_duration,
    )?;
    out.gauge(
        "throng_recording_active",
        "1 while every tick is being recorded (--record), else 0.",
        s.recording_active,
    )?;
    out.counter(
        "throng_recording_bytes_total",
        "Bytes written to recording files.",
        s.recording_bytes,
    )?;
    out.counter(
        "throng_recording_failures_total",
        "Recordings stopped by an error (full disk, unwritable directory, stuck writer); the server kept serving.",
        s.recording_failures,
    )?;
    #[cfg(feature = "agones")]
    out.counter(
        "throng_agones_errors_total",
        "Agones SDK calls that failed or timed out (sidecar unreachable, a call refused); the server kept serving.",
        s.agones_errors,
    )?;
    out.counter(
        "throng_handoffs_out_total",
        "Players handed off to another zone (saved, then sent a Transfer with their ticket).",
        s.handoffs_out,
    )?;
    out.counter(
        "throng_handoffs_in_total",
        "Players admitted with a handoff ticket from another zone.",
        s.handoffs_in,
    )?;
    out.counter(
        "throng_handoff_failures_total",
        "Handoffs whose final record could not be saved (the client was closed instead).",
        s.handoff_failures,
    )?;
    out.counter(
        "throng_ghost_strips_sent_total",
        "Border strips this zone published to its neighbours over NATS.",
        s.ghost_strips_sent,
    )?;
    out.counter(
        "throng_ghost_strips_dropped_total",
        "Border strips not published (the NATS link was behind, or publishing failed).",
        s.ghost_strips_dropped,
    )?;
    out.counter(
        "throng_ghost_strips_applied_total",
        "Neighbours' border strips applied as ghosts.",
        s.ghost_strips_applied,
    )?;
    out.counter(
        "throng_ghost_strips_refused_total",
        "Neighbours' border strips dropped: undecodable, unreadable by this game (unknown kind, zone or position), or the tick had not taken the earlier ones.",
        s.ghost_strips_refused,
    )?;
    out.gauge(
        "throng_ghosts",
        "Ghosts (read-only copies of the neighbour zones' border entities) in the world.",
        s.ghosts,
    )?;
    out.gauge_f64(
        "throng_ghost_age_seconds",
        "From a neighbour's publish of its border strip to this tick's use of it (the last one).",
        s.ghost_age_ms as f64 / 1e3,
    )?;
    out.gauge(
        "throng_nats_connected",
        "1 while the zone's NATS connection is up, else 0.",
        s.nats_connected,
    )?;
    out.counter(
        "throng_logins_total",
        "Logins answered by the store (new names claimed and returning players).",
        s.logins,
    )?;
    if let Some(process) = readings.process {
        out.counter_f64(
            "process_cpu_seconds_total",
            "User and system CPU time of the server process.",
            process.cpu_seconds,
        )?;
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory of the server process.",
            process.rss_bytes,
        )?;
    }
    if let Some(fds) = readings.open_fds {
        out.gauge(
            "process_open_fds",
            "Open file descriptors of the server process.",
            fds,
        )?;
    }
    Ok(())
}

/// Writes metric families through prometheus-client's encoder; names are given as exported
/// (a counter with its `_total`, which the library appends again).
struct Out<'a>(DescriptorEncoder<'a>);

impl Out<'_> {
    fn descriptor<'s>(
        &'s mut self,
        name: &'s str,
        help: &str,
        kind: MetricType,
    ) -> Result<MetricEncoder<'s>, fmt::Error> {
        self.0.encode_descriptor(name, help, None, kind)
    }

    fn counter(&mut self, name: &str, help: &str, value: impl EncodeCounterValue) -> fmt::Result {
        let family = counter_family(name);
        ConstCounter::new(value).encode(self.descriptor(family, help, MetricType::Counter)?)
    }

    fn counter_f64(&mut self, name: &str, help: &str, value: f64) -> fmt::Result {
        self.counter(name, help, value)
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl EncodeGaugeValue) -> fmt::Result {
        ConstGauge::new(value).encode(self.descriptor(name, help, MetricType::Gauge)?)
    }

    fn gauge_f64(&mut self, name: &str, help: &str, value: f64) -> fmt::Result {
        self.gauge(name, help, value)
    }

    /// A counter family, one sample per label set.
    fn counters<'l>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl Iterator<Item = (Vec<(&'l str, &'l str)>, u64)>,
    ) -> fmt::Result {
        let mut family = self.descriptor(counter_family(name), help, MetricType::Counter)?;
        for (labels, value) in samples {
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn labelled_counter<'l>(
        &mut self,
        name: &str,
        help: &str,
        label: &'l str,
        values: impl Iterator<Item = (&'l str, u64)>,
    ) -> fmt::Result {
        self.counters(
            name,
            help,
            values.map(|(value_label, value)| (vec![(label, value_label)], value)),
        )
    }

    fn labelled_gauge<'l>(
        &mut self,
        name: &str,
        help: &str,
        label: &'l str,
        values: impl Iterator<Item = (&'l str, u64)>,
    ) -> fmt::Result {
        let mut family = self.descriptor(name, help, MetricType::Gauge)?;
        for (value_label, value) in values {
            ConstGauge::new(value).encode(family.encode_family(&[(label, value_label)])?)?;
        }
        Ok(())
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) -> fmt::Result {
        // Per-bucket counts (the encoder accumulates them), `+Inf` included: the OpenMetrics
        // encoder writes only the buckets it is given.
        let bounds = TICK_BUCKETS_US
            .iter()
            .map(|&bound_us| bound_us as f64 / 1e6)
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(h.counts).collect();
        self.descriptor(name, help, MetricType::Histogram)?
            .encode_histogram::<NoLabelSet>(h.sum_us as f64 / 1e6, h.count(), &buckets, None)
    }
}

/// A counter's name as registered: without the `_total` the library appends.
fn counter_family(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::Histogram;
    use std::time::Duration;

    fn readings(stats: StatsSnapshot) -> Readings {
        Readings {
            stats,
            inbound_queue_depth: 4,
            process: None,
            open_fds: Some(9),
            runtime_tasks: 3,
            action_names: Arc::new(vec!["jump".to_owned()]),
        }
    }

    fn text(stats: StatsSnapshot, format: Format) -> String {
        let stats = std::sync::Mutex::new(Some(stats));
        let registry = registry(ReadingsCollector(move || {
            readings(stats.lock().unwrap().take().unwrap_or_default())
        }));
        render(&registry, format).unwrap()
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let histogram = Histogram::default();
        histogram.record(Duration::from_micros(100));
        histogram.record(Duration::from_millis(3));
        histogram.record(Duration::from_secs(2));
        let stats = StatsSnapshot {
            tick_duration: histogram.snapshot(),
            ..Default::default()
        };
        let text = text(stats, Format::Prometheus);
        let t = "throng_tick_duration_seconds";
        assert!(
            text.contains(&format!("{t}_bucket{{le=\"0.00025\"}} 1\n")),
            "{text}"
        );
        assert!(text.contains(&format!("{t}_bucket{{le=\"0.003\"}} 2\n")));
        assert!(text.contains(&format!("{t}_bucket{{le=\"1\"}} 2\n")));
        assert!(text.contains(&format!("{t}_bucket{{le=\"+Inf\"}} 3\n")));
        assert!(text.contains(&format!("{t}_count 3\n")));
        assert!(text.contains(&format!("{t}_sum 2.0031\n")));
    }

    #[test]
    fn counters_keep_their_names_labels_and_help_in_both_formats() {
        let stats = StatsSnapshot {
            ticks: 7,
            http_idle_evicted: 2,
            ..Default::default()
        };
        let prometheus = text(stats.clone(), Format::Prometheus);
        for line in [
            "# HELP throng_ticks_total Ticks completed.\n",
            "# TYPE throng_ticks_total counter\n",
            "throng_ticks_total 7\n",
            "throng_http_connections_dropped_total{cause=\"idle_evicted\"} 2\n",
            "throng_actions_dropped_total{kind=\"unknown\",cause=\"unknown_kind\"} 0\n",
            "throng_actions_queued_total{kind=\"jump\"} 0\n",
            "throng_players_connected 0\n",
            "throng_inbound_queue_depth 4\n",
            "process_open_fds 9\n",
        ] {
            assert!(prometheus.contains(line), "{line} in\n{prometheus}");
        }
        assert!(!prometheus.contains("# EOF"));
        let open_metrics = text(stats, Format::OpenMetrics);
        assert!(open_metrics.contains("# TYPE throng_ticks counter\n"));
        assert!(open_metrics.contains("throng_ticks_total 7\n"));
        assert!(open_metrics.ends_with("# EOF\n"));
        assert!(open_metrics.contains("throng_tick_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
    }

    #[test]
    fn the_format_follows_the_accept_header() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
        let prometheus_3 = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus_3)), Format::OpenMetrics);
    }
}
