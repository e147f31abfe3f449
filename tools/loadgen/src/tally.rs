//! What a worker counts inside the measured window; merged across workers at the end.

use std::collections::BTreeMap;

use crate::latency::Latencies;

/// Counts over the measured window (plus connect outcomes, which are counted always).
#[derive(Default, Clone)]
pub struct Tally {
    /// State frames received.
    pub frames: u64,
    /// State frames received in any phase (for the live display).
    pub live_frames: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Server events received.
    pub events: u64,
    /// Actions sent.
    pub actions: u64,
    /// Sum over frames of the entities in view after applying the frame.
    pub visible_sum: u64,
    /// Frames that did not decode or did not fit the bot's view.
    pub protocol_errors: u64,
    /// Unrequested closes inside the window.
    pub disconnects: u64,
    /// Unrequested closes before the window (connect phase and warm-up).
    pub disconnects_before_window: u64,
    /// Bots welcomed.
    pub connected: u64,
    /// Bots that never got a Welcome.
    pub connect_failures: u64,
    /// Why bots failed or were disconnected, with counts (for the human summary).
    pub reasons: BTreeMap<String, u64>,
    /// Input-to-ack latencies.
    pub acks: Latencies,
    /// Frames per second of each bot that was playing when the window began.
    pub per_bot_frames: Vec<u32>,
    /// Reads in the window without a kernel arrival time (acks timed at read time instead).
    pub unstamped_reads: u64,
    /// Input slots that came late because the worker was busy (skipped, not burst).
    pub late_input_slots: u64,
    /// Zone handoffs complete (the destination showed the bot), in any phase.
    pub handoffs: u64,
    /// Failed handoffs by reason, in any phase.
    pub handoff_failures: BTreeMap<String, u64>,
    /// Transfer arrival to the destination's first frame showing the bot.
    pub handoff_latency: Latencies,
    /// Complete handoffs whose position was checked (the origin had shown the bot).
    pub continuity_checked: u64,
    /// Complete handoffs with no position on the origin to check against (a Transfer right
    /// after the Welcome).
    pub continuity_unchecked: u64,
    /// Checked handoffs where the bot moved more than the allowed step.
    pub continuity_violations: u64,
    /// Largest position jump over checked handoffs, units.
    pub continuity_worst_jump: Option<f64>,
    /// Bots that joined and were not playing at the end (not counting handoffs under way).
    pub bots_lost: u64,
    /// Handoffs still under way when the run stopped.
    pub handoffs_in_progress: u64,
}

impl Tally {
    /// Adds `other` into this tally.
    pub fn merge(&mut self, other: Tally) {
        self.frames += other.frames;
        self.live_frames += other.live_frames;
        self.bytes += other.bytes;
        self.events += other.events;
        self.actions += other.actions;
        self.visible_sum += other.visible_sum;
        self.protocol_errors += other.protocol_errors;
        self.disconnects += other.disconnects;
        self.disconnects_before_window += other.disconnects_before_window;
        self.connected += other.connected;
        self.connect_failures += other.connect_failures;
        for (reason, count) in other.reasons {
            *self.reasons.entry(reason).or_default() += count;
        }
        self.acks.merge(&other.acks);
        self.per_bot_frames.extend(other.per_bot_frames);
        self.late_input_slots += other.late_input_slots;
        self.unstamped_reads += other.unstamped_reads;
        self.handoffs += other.handoffs;
        for (reason, count) in other.handoff_failures {
            *self.handoff_failures.entry(reason).or_default() += count;
        }
        self.handoff_latency.merge(&other.handoff_latency);
        self.continuity_checked += other.continuity_checked;
        self.continuity_unchecked += other.continuity_unchecked;
        self.continuity_violations += other.continuity_violations;
        self.continuity_worst_jump = match (self.continuity_worst_jump, other.continuity_worst_jump)
        {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.bots_lost += other.bots_lost;
        self.handoffs_in_progress += other.handoffs_in_progress;
    }
}
