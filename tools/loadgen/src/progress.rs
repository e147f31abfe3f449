//! The live display: one line on stderr, refreshed in place, only when stderr is a terminal
//! (phase, time left, bots joined and failed, frames per second, disconnects).

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::worker::Control;

/// A one-line live display on stderr, only when stderr is a terminal.
pub struct Progress {
    enabled: bool,
    bots: usize,
    last: Option<(Instant, u64)>,
    rate: f64,
}

impl Progress {
    /// A display for a run of `bots` bots.
    pub fn new(bots: usize) -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            bots,
            last: None,
            rate: 0.0,
        }
    }

    /// Redraws the line.
    pub fn show(&mut self, phase: &str, control: &Control, left: Option<Duration>) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let frames = control.frames.load(Ordering::Relaxed);
        if let Some((at, before)) = self.last {
            let dt = (now - at).as_secs_f64();
            if dt >= 0.5 {
                self.rate = (frames - before) as f64 / dt;
                self.last = Some((now, frames));
            }
        } else {
            self.last = Some((now, frames));
        }
        let left = left.map_or(String::new(), |l| {
            format!(" {:>5.1} s left", l.as_secs_f64())
        });
        eprint!(
            "\r\x1b[K[{phase}{left}] bots {}/{} failed {} | {:.0} frames/s ({:.2} per bot) | disconnects {}",
            control.connected.load(Ordering::Relaxed),
            self.bots,
            control.failed.load(Ordering::Relaxed),
            self.rate,
            self.rate / self.bots as f64,
            control.disconnects.load(Ordering::Relaxed),
        );
    }

    /// Ends the line.
    pub fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}
