//! The run's figures: the JSON report (keys fixed by docs/BENCHMARKS.md and the shared
//! workload definition) and the human summary.

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
    /// Frames that did not decode or referred to entities the bot never saw; must be 0.
    pub protocol_errors: u64,
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
            "  protocol errors {}, disconnects in window {}",
            self.protocol_errors, self.disconnects
        );
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
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert!(json["server_tick_ms_p50"].is_null());
    }
}
