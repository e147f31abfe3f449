//! The Prometheus text exposition format (version 0.0.4): every metric with its `# HELP` and
//! `# TYPE` lines, counters named `_total`, durations in seconds, sizes in bytes.

use std::fmt::Write;

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
    pub action_names: std::sync::Arc<Vec<String>>,
}

/// Renders `readings` as exposition text.
pub(crate) fn render(readings: &Readings) -> String {
    let s = &readings.stats;
    let mut out = Exposition::default();
    out.histogram(
        "throng_tick_duration_seconds",
        "Time the tick thread spent per tick (simulation, replication, hand-off).",
        &s.tick_duration,
    );
    out.counter("throng_ticks_total", "Ticks completed.", s.ticks);
    out.counter(
        "throng_tick_overruns_total",
        "Ticks that ended after their deadline.",
        s.tick_overruns,
    );
    out.gauge(
        "throng_players_connected",
        "Players in the world.",
        s.players_connected as f64,
    );
    out.gauge(
        "throng_handshakes_pending",
        "Connections accepted that have not logged in yet (max_pending_handshakes bounds them).",
        s.handshakes_pending as f64,
    );
    out.gauge(
        "throng_connection_tasks",
        "Live connection tasks (handshaking or playing).",
        s.connections_live as f64,
    );
    out.gauge(
        "throng_runtime_tasks",
        "Live tasks of the network runtime: connection tasks plus a fixed few (accept loop, flush tasks, metrics).",
        readings.runtime_tasks as f64,
    );
    out.gauge(
        "throng_entities",
        "Entities in the world after the last tick.",
        s.entities as f64,
    );
    out.counter(
        "throng_connections_accepted_total",
        "TCP connections accepted.",
        s.connections_accepted,
    );
    out.counter(
        "throng_accept_errors_total",
        "Accept calls that failed (for example out of file descriptors).",
        s.accept_errors,
    );
    out.counter(
        "throng_http_connections_total",
        "Connections accepted on the metrics and probes port.",
        s.http_connections,
    );
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
    );
    out.labelled_gauge(
        "throng_players_by_transport",
        "Players joined whose connection is still open, by transport (of throng_players_connected, counted by the network side).",
        "transport",
        [("tcp", s.players_tcp), ("websocket", s.players_websocket)].into_iter(),
    );
    out.gauge(
        "throng_websocket_sessions",
        "Live connection tasks of WebSocket players (of throng_connection_tasks).",
        s.websocket_sessions_live as f64,
    );
    out.counter(
        "throng_websocket_upgrades_total",
        "Sockets upgraded to WebSocket on the web listener.",
        s.websocket_upgrades,
    );
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
    );
    out.labelled_counter(
        "throng_connections_rejected_total",
        "Connections refused before their session opened (Reject), by reason.",
        "reason",
        CloseReason::ALL
            .iter()
            .map(|&reason| (reason.as_str(), s.rejects_by_reason[reason.index()])),
    );
    out.labelled_counter(
        "throng_kicks_total",
        "Open sessions closed by the server (Close), by reason; shutdown included.",
        "reason",
        CloseReason::ALL
            .iter()
            .map(|&reason| (reason.as_str(), s.kicks_by_reason[reason.index()])),
    );
    out.counter(
        "throng_inbound_frames_total",
        "Frames received from clients.",
        s.inbound_frames,
    );
    out.counter(
        "throng_inbound_bytes_total",
        "Bytes received from clients.",
        s.inbound_bytes,
    );
    out.counter(
        "throng_inputs_applied_total",
        "Inputs applied by the tick.",
        s.inputs_applied,
    );
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
    );
    let kinds = readings
        .action_names
        .iter()
        .take(crate::stats::MAX_COUNTED_ACTION_KINDS)
        .enumerate();
    out.header(
        "throng_actions_queued_total",
        "counter",
        "Player actions admitted and queued for the tick, by kind.",
    );
    for (kind, name) in kinds.clone() {
        out.sample(
            "throng_actions_queued_total",
            &[("kind", name)],
            s.actions_queued[kind],
        );
    }
    out.header(
        "throng_actions_dropped_total",
        "counter",
        "Player actions dropped, by kind and cause (kind=\"unknown\": a kind the game does not have).",
    );
    out.sample(
        "throng_actions_dropped_total",
        &[("kind", "unknown"), ("cause", "unknown_kind")],
        s.actions_dropped_unknown_kind,
    );
    for (kind, name) in kinds {
        for cause in crate::stats::ActionDrop::ALL {
            out.sample(
                "throng_actions_dropped_total",
                &[("kind", name), ("cause", cause.as_str())],
                s.actions_dropped[kind][cause as usize],
            );
        }
    }
    out.counter(
        "throng_events_sent_total",
        "Server events put into frames (an event counts once per client that receives it).",
        s.events_sent,
    );
    out.counter(
        "throng_events_unroutable_total",
        "Server events whose target had left or was never replicated.",
        s.events_unroutable,
    );
    out.gauge(
        "throng_inbound_queue_depth",
        "Inputs waiting for the next tick.",
        readings.inbound_queue_depth as f64,
    );
    out.counter(
        "throng_outbound_frames_total",
        "State frames handed to the network side.",
        s.frames_submitted,
    );
    out.counter(
        "throng_outbound_bytes_total",
        "Bytes of state frames handed to the network side.",
        s.bytes_submitted,
    );
    out.counter(
        "throng_frames_written_total",
        "State frames written to sockets.",
        s.frames_written,
    );
    out.counter(
        "throng_frames_dropped_slow_reader_total",
        "State frames dropped because the client had every buffer in flight.",
        s.frames_dropped_slow_reader,
    );
    out.counter(
        "throng_resyncs_total",
        "Full-view resynchronisations sent after dropped frames.",
        s.resyncs,
    );
    out.counter("throng_pongs_total", "Pings answered.", s.pongs);
    out.counter(
        "throng_persistence_batches_total",
        "Batches of player records the tick handed to the persistence thread.",
        s.persist_batches,
    );
    out.counter(
        "throng_persistence_transactions_total",
        "Transactions committed by the persistence thread (waiting batches are merged into one).",
        s.persist_transactions,
    );
    out.counter(
        "throng_persistence_rows_total",
        "Player records written to the store.",
        s.persist_rows,
    );
    out.counter(
        "throng_persistence_failures_total",
        "Transactions the store refused (their records are lost).",
        s.persist_failures,
    );
    out.counter(
        "throng_persistence_handoffs_delayed_total",
        "Hand-offs the persistence thread could not take yet (records merged into the next).",
        s.persist_handoffs_delayed,
    );
    out.gauge(
        "throng_persistence_lag_seconds",
        "From the tick's hand-off to the commit, for the last transaction.",
        s.persist_lag_us as f64 / 1e6,
    );
    out.histogram(
        "throng_persistence_commit_duration_seconds",
        "Time each persistence transaction took.",
        &s.persist_commit_duration,
    );
    out.counter(
        "throng_logins_total",
        "Logins answered by the store (new names claimed and returning players).",
        s.logins,
    );
    if let Some(process) = readings.process {
        out.counter_f64(
            "process_cpu_seconds_total",
            "User and system CPU time of the server process.",
            process.cpu_seconds,
        );
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory of the server process.",
            process.rss_bytes as f64,
        );
    }
    if let Some(fds) = readings.open_fds {
        out.gauge(
            "process_open_fds",
            "Open file descriptors of the server process.",
            fds as f64,
        );
    }
    out.text
}

#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.header(name, "counter", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    fn counter_f64(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "counter", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.header(name, "gauge", help);
        let _ = writeln!(self.text, "{name} {value}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(label, value)| format!("{label}=\"{value}\""))
            .collect();
        let _ = writeln!(self.text, "{name}{{{}}} {value}", labels.join(","));
    }

    fn labelled_counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl Iterator<Item = (&'a str, u64)>,
    ) {
        self.header(name, "counter", help);
        for (value_label, value) in values {
            let _ = writeln!(self.text, "{name}{{{label}=\"{value_label}\"}} {value}");
        }
    }

    fn labelled_gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl Iterator<Item = (&'a str, u64)>,
    ) {
        self.header(name, "gauge", help);
        for (value_label, value) in values {
            let _ = writeln!(self.text, "{name}{{{label}=\"{value_label}\"}} {value}");
        }
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.header(name, "histogram", help);
        let mut cumulative = 0;
        for (bound_us, count) in TICK_BUCKETS_US.iter().zip(&h.counts) {
            cumulative += count;
            let le = *bound_us as f64 / 1e6;
            let _ = writeln!(self.text, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let total = h.count();
        let _ = writeln!(self.text, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(self.text, "{name}_sum {}", h.sum_us as f64 / 1e6);
        let _ = writeln!(self.text, "{name}_count {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::Histogram;
    use std::time::Duration;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let histogram = Histogram::default();
        histogram.record(Duration::from_micros(100));
        histogram.record(Duration::from_millis(3));
        histogram.record(Duration::from_secs(2));
        let mut out = Exposition::default();
        out.histogram("t_seconds", "help", &histogram.snapshot());
        assert!(out.text.contains("t_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(out.text.contains("t_seconds_bucket{le=\"0.003\"} 2\n"));
        assert!(out.text.contains("t_seconds_bucket{le=\"1\"} 2\n"));
        assert!(out.text.contains("t_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.text.contains("t_seconds_count 3\n"));
        assert!(out.text.contains("t_seconds_sum 2.0031\n"));
    }
}
