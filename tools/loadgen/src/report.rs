//! The run's figures: the JSON report (keys fixed by docs/BENCHMARKS.md and the shared
//! workload definition) and the human summary.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// Everything a run reports; `None` is written as `null` (not measured).
#[derive(Serialize, Debug, Clone, Default)]
pub struct Report {
    /// How the bots connected: `tcp` or `ws`.
    pub transport: &'static str,
    /// Bots asked for.
    pub bots_requested: u64,
    /// Bots that were welcomed.
    pub bots_connected: u64,
    /// Bots that never were.
    pub connect_failures: u64,
    /// Closes the bots did not ask for, inside the measured window.
    pub disconnects: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// State frames per second per bot, mean over bots playing at the window's start.
    pub frames_per_s_per_bot_mean: Option<f64>,
    /// The same, minimum over those bots.
    pub frames_per_s_per_bot_min: Option<f64>,
    /// Bytes received per second per bot.
    pub recv_bytes_per_s_per_bot: Option<f64>,
    /// Server events received per second per bot (all kinds), mean over bots.
    pub events_per_s_per_bot: Option<f64>,
    /// `throw` actions sent per second per bot (human summary only; not a JSON key).
    #[serde(skip)]
    pub actions_per_s_per_bot: Option<f64>,
    /// Entities in a bot's view, averaged over frames.
    pub visible_entities_mean: Option<f64>,
    /// Input sent to first frame acknowledging it, median.
    pub input_ack_ms_p50: Option<f64>,
    /// ... 99th percentile.
    pub input_ack_ms_p99: Option<f64>,
    /// ... maximum.
    pub input_ack_ms_max: Option<f64>,
    /// Server tick duration over the window (from its metrics histogram), median.
    pub server_tick_ms_p50: Option<f64>,
    /// ... 99th percentile.
    pub server_tick_ms_p99: Option<f64>,
    /// ... maximum, to the histogram's bucket resolution.
    pub server_tick_ms_max: Option<f64>,
    /// Ticks that overran their budget in the window.
    pub server_overruns: Option<f64>,
    /// Server CPU over the window, cores.
    pub server_cpu_cores: Option<f64>,
    /// Server resident memory at the window's end, MiB.
    pub server_rss_mb: Option<f64>,
    /// This load generator's CPU over the window, cores.
    pub loadgen_cpu_cores: Option<f64>,
    /// Busy cores of the whole machine over the window.
    pub machine_busy_cores: Option<f64>,
    /// Frames that did not decode or referred to entities the bot never saw, messages out
    /// of order (a Transfer before the Welcome, anything after a Close), a destination
    /// acknowledging a seq never sent; must be 0.
    pub protocol_errors: u64,
    /// Zone handoffs complete (Transfer, Resume, Welcome, a frame showing the bot), over the
    /// whole run (every phase, like `protocol_errors`).
    pub handoffs: u64,
    /// Failed handoffs by reason: a refusal's reason (`ticket_used`, `ticket_expired`,
    /// `already_online`, ...) or loadgen's (`timeout`, `connect_failed`,
    /// `closed_before_welcome`, `own_entity_not_seen`, `no_websocket_url`,
    /// `unsupported_websocket_url`, `bad_destination`, `destination_not_loopback`).
    pub handoff_failures: BTreeMap<String, u64>,
    /// Transfer's arrival to the arrival of the destination's first frame showing the bot,
    /// median.
    pub handoff_latency_ms_p50: Option<f64>,
    /// ... 99th percentile.
    pub handoff_latency_ms_p99: Option<f64>,
    /// ... maximum.
    pub handoff_latency_ms_max: Option<f64>,
    /// Complete handoffs whose position was checked against the origin's last frame.
    pub continuity_checked: u64,
    /// Complete handoffs with no position on the origin to check (Transfer before a frame).
    pub continuity_unchecked: u64,
    /// Checked handoffs where the bot's own entity moved more than the allowed step
    /// (wrap-aware distance over `--max-step`, or 1.5 ticks of its speed, plus 1/8 unit).
    pub continuity_violations: u64,
    /// Largest such distance over the checked handoffs, units (violation or not).
    pub continuity_worst_jump: Option<f64>,
    /// Bots that joined and were not playing when the run stopped (closed by the server or
    /// the network, or by a failed handoff); handoffs under way are not counted here.
    pub bots_lost: u64,
    /// Handoffs still under way when the run stopped.
    pub handoffs_in_progress: u64,
}

impl Report {
    /// A few lines for a human.
    pub fn summary(&self, reasons: &[(String, u64)]) -> String {
        let f =
            |v: Option<f64>, digits: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.digits$}"));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "loadgen: {}/{} bots connected over {} ({} failed), {:.1} s measured",
            self.bots_connected,
            self.bots_requested,
            self.transport,
            self.connect_failures,
            self.seconds
        );
        let _ = writeln!(
            out,
            "  frames/s per bot: mean {}, min {}; {} B/s per bot; {} entities in view",
            f(self.frames_per_s_per_bot_mean, 2),
            f(self.frames_per_s_per_bot_min, 2),
            f(self.recv_bytes_per_s_per_bot, 0),
            f(self.visible_entities_mean, 1)
        );
        let _ = writeln!(
            out,
            "  events/s per bot: mean {}; actions sent/s per bot {}",
            f(self.events_per_s_per_bot, 2),
            f(self.actions_per_s_per_bot, 2)
        );
        let _ = writeln!(
            out,
            "  input ack: p50 {} ms, p99 {} ms, max {} ms",
            f(self.input_ack_ms_p50, 1),
            f(self.input_ack_ms_p99, 1),
            f(self.input_ack_ms_max, 1)
        );
        let _ = writeln!(
            out,
            "  server: tick p50 {} ms, p99 {} ms, max <= {} ms, overruns {}; {} cores, {} MiB",
            f(self.server_tick_ms_p50, 2),
            f(self.server_tick_ms_p99, 2),
            f(self.server_tick_ms_max, 1),
            f(self.server_overruns, 0),
            f(self.server_cpu_cores, 2),
            f(self.server_rss_mb, 1)
        );
        let _ = writeln!(
            out,
            "  loadgen {} cores; machine {} cores busy",
            f(self.loadgen_cpu_cores, 2),
            f(self.machine_busy_cores, 2)
        );
        let _ = writeln!(
            out,
            "  protocol errors {}, disconnects in window {}, bots lost {}",
            self.protocol_errors, self.disconnects, self.bots_lost
        );
        let failures: u64 = self.handoff_failures.values().sum();
        if self.handoffs + failures + self.handoffs_in_progress > 0 {
            let _ = writeln!(
                out,
                "  handoffs {} ({} failed, {} under way at the end): p50 {} ms, p99 {} ms, max {} ms",
                self.handoffs,
                failures,
                self.handoffs_in_progress,
                f(self.handoff_latency_ms_p50, 1),
                f(self.handoff_latency_ms_p99, 1),
                f(self.handoff_latency_ms_max, 1)
            );
            let by_reason: Vec<String> = self
                .handoff_failures
                .iter()
                .map(|(reason, count)| format!("{reason} {count}"))
                .collect();
            if !by_reason.is_empty() {
                let _ = writeln!(out, "  handoff failures: {}", by_reason.join(", "));
            }
            let _ = writeln!(
                out,
                "  continuity: {} violations in {} checked ({} unchecked), worst jump {} units",
                self.continuity_violations,
                self.continuity_checked,
                self.continuity_unchecked,
                f(self.continuity_worst_jump, 2)
            );
        }
        for (reason, count) in reasons {
            let _ = writeln!(out, "  {count} x {reason}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_has_exactly_the_agreed_keys() {
        let json = serde_json::to_value(Report::default()).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut expected = vec![
            "transport",
            "bots_requested",
            "bots_connected",
            "connect_failures",
            "disconnects",
            "seconds",
            "frames_per_s_per_bot_mean",
            "frames_per_s_per_bot_min",
            "recv_bytes_per_s_per_bot",
            "events_per_s_per_bot",
            "visible_entities_mean",
            "input_ack_ms_p50",
            "input_ack_ms_p99",
            "input_ack_ms_max",
            "server_tick_ms_p50",
            "server_tick_ms_p99",
            "server_tick_ms_max",
            "server_overruns",
            "server_cpu_cores",
            "server_rss_mb",
            "loadgen_cpu_cores",
            "machine_busy_cores",
            "protocol_errors",
            "handoffs",
            "handoff_failures",
            "handoff_latency_ms_p50",
            "handoff_latency_ms_p99",
            "handoff_latency_ms_max",
            "continuity_checked",
            "continuity_unchecked",
            "continuity_violations",
            "continuity_worst_jump",
            "bots_lost",
            "handoffs_in_progress",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert!(json["server_tick_ms_p50"].is_null());
        assert!(json["handoff_failures"].as_object().unwrap().is_empty());
    }

    #[test]
    fn handoffs_show_in_the_summary_only_when_there_were_any() {
        let quiet = Report::default().summary(&[]);
        assert!(!quiet.contains("handoff"));
        let mut report = Report {
            handoffs: 7,
            handoff_latency_ms_p50: Some(12.0),
            continuity_checked: 6,
            continuity_unchecked: 1,
            continuity_worst_jump: Some(5.25),
            ..Report::default()
        };
        report.handoff_failures.insert("ticket_used".into(), 2);
        let text = report.summary(&[]);
        assert!(
            text.contains("handoffs 7 (2 failed, 0 under way at the end)"),
            "{text}"
        );
        assert!(text.contains("handoff failures: ticket_used 2"), "{text}");
        assert!(text.contains("worst jump 5.25 units"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["handoff_failures"]["ticket_used"], 2);
    }
}
