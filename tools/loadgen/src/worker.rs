//! A worker thread: one epoll instance (mio) driving a share of the bots. No task or timer
//! per bot: the loop wakes for socket readiness and for the next input slot. Inputs are
//! spread over [`SLOTS`] slots per input period, so a worker's bots do not all send in the
//! same millisecond (real players arrive at random phases of the server's tick).
//!
//! Zone handoffs: a bot that received a Transfer is listed until its handoff ends; each
//! turn of the loop the worker opens the sockets of those whose connect is due (the same
//! connect as the first one, from the bot's source address) and fails those past their
//! time bound (the connect timeout, counted from the Transfer).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use std::os::fd::AsRawFd;

use crate::arrival;
use crate::bot::{Bot, BotSettings, Change, HandoffStep, Stage};
use crate::tally::Tally;
use crate::ws::Transport;

/// Input slots per input period.
const SLOTS: usize = 10;
/// Connects (not yet welcomed) a worker keeps in flight, so the server's accept backlog is
/// never flooded.
const MAX_CONNECTS_IN_FLIGHT: usize = 32;
/// Bots per source address: a loopback address has ~28,000 ephemeral ports.
const BOTS_PER_SOURCE_ADDRESS: usize = 10_000;

/// Phases of a run, driven by the main thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Bots connect and join.
    Connecting = 0,
    /// Everyone plays; nothing is counted.
    WarmUp = 1,
    /// Everyone plays; the window's figures are counted.
    Measuring = 2,
    /// Workers stop.
    Done = 3,
}

/// Shared between the main thread and the workers: the phase, and live counts for the
/// progress display.
#[derive(Default)]
pub struct Control {
    phase: AtomicU8,
    /// Bots welcomed so far.
    pub connected: AtomicU64,
    /// Bots that failed to join.
    pub failed: AtomicU64,
    /// Frames received in any phase.
    pub frames: AtomicU64,
    /// Unrequested closes in any phase.
    pub disconnects: AtomicU64,
    /// Why the run cannot go on, once a worker found out (every worker then stops).
    fatal: OnceLock<String>,
}

impl Control {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Connecting,
            1 => Phase::WarmUp,
            2 => Phase::Measuring,
            _ => Phase::Done,
        }
    }

    /// Moves every worker to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Ends the run for `why` (the first reason given is kept).
    pub fn fail(&self, why: String) {
        let _ = self.fatal.set(why);
        self.set_phase(Phase::Done);
    }

    /// Why the run failed, if it did.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.get().map(String::as_str)
    }
}

/// A worker's share of the run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Server address: its game listener over TCP, its web listener over WebSocket.
    pub addr: SocketAddr,
    /// How bots reach it.
    pub transport: Transport,
    /// Global index of this worker's first bot.
    pub first_bot: usize,
    /// Bots this worker runs.
    pub bots: usize,
    /// Run seed.
    pub seed: u64,
    /// Inputs per second per bot.
    pub input_hz: f64,
    /// `throw` actions per second per bot, on average.
    pub actions_per_s: f64,
    /// Time a bot has to be welcomed (and a handoff to complete, from its Transfer).
    pub connect_timeout: Duration,
    /// `--max-step`: the jump allowed at a zone border (else from the movement speed).
    pub max_step: Option<f64>,
}

/// Runs `plan` until the phase is [`Phase::Done`]; returns the worker's tally.
pub fn run(plan: Plan, control: Arc<Control>) -> io::Result<Tally> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut tally = Tally::default();
    // Indexed by token; `None` where the connect failed at once.
    let mut bots: Vec<Option<Bot>> = Vec::with_capacity(plan.bots);
    let mut published_frames = 0;
    let mut joining: Vec<usize> = Vec::with_capacity(MAX_CONNECTS_IN_FLIGHT);
    // Bots between zones (or welcomed by the destination, not yet shown in its frames).
    let mut handing_off: Vec<usize> = Vec::new();
    let settings = BotSettings {
        transport: plan.transport,
        seed: plan.seed,
        actions_per_input: plan.actions_per_s / plan.input_hz,
        max_step: plan.max_step,
    };
    let mut counted: Vec<bool> = Vec::new();
    let mut window_open = false;
    let slot_period = Duration::from_secs_f64(1.0 / plan.input_hz / SLOTS as f64);
    let mut slot = 0;
    let mut next_slot_at = Instant::now() + slot_period;

    loop {
        let now = Instant::now();
        match control.phase() {
            Phase::Done => break,
            Phase::Measuring if !window_open => {
                window_open = true;
                // Bots between zones at the window's start are in the game too: their frames
                // count in the totals, so they count among the bots.
                counted = bots
                    .iter()
                    .map(|bot| bot.as_ref().is_some_and(|b| b.playing() || b.handing_off()))
                    .collect();
                for bot in bots.iter_mut().flatten() {
                    bot.window_frames = 0;
                }
            }
            _ => {}
        }

        while joining.len() < MAX_CONNECTS_IN_FLIGHT && bots.len() < plan.bots {
            let index = bots.len();
            match connect(plan.addr, plan.first_bot + index) {
                Ok(mut stream) => {
                    poll.registry().register(
                        &mut stream,
                        Token(index),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    bots.push(Some(Bot::new(
                        stream,
                        plan.addr,
                        plan.first_bot + index,
                        settings,
                        now,
                    )));
                    joining.push(index);
                }
                Err(error) => {
                    bots.push(None);
                    record(
                        Change::ConnectFailed(error.to_string()),
                        &mut tally,
                        &control,
                        window_open,
                    );
                }
            }
        }
        joining.retain(|&index| {
            let Some(bot) = bots[index].as_mut() else {
                return false;
            };
            if bot.joined() || bot.stage == Stage::Closed {
                return false;
            }
            if now - bot.connect_started > plan.connect_timeout {
                bot.stage = Stage::Closed;
                let _ = poll.registry().deregister(&mut bot.stream);
                record(
                    Change::ConnectFailed("not welcomed in time".into()),
                    &mut tally,
                    &control,
                    window_open,
                );
                return false;
            }
            true
        });

        handing_off.retain(|&index| {
            let Some(bot) = bots[index].as_mut() else {
                return false;
            };
            match bot.handoff_step(now, plan.connect_timeout) {
                HandoffStep::Idle => false,
                HandoffStep::Wait => true,
                HandoffStep::Connect(addr) => {
                    let change = match connect(addr, plan.first_bot + index) {
                        Ok(mut stream) => match poll.registry().register(
                            &mut stream,
                            Token(index),
                            Interest::READABLE | Interest::WRITABLE,
                        ) {
                            Ok(()) => {
                                bot.reconnect(stream);
                                Change::None
                            }
                            Err(error) => bot.connect_failed(error),
                        },
                        Err(error) => bot.connect_failed(error),
                    };
                    settle(bot, &poll, change, &mut tally, &control, window_open);
                    true
                }
                HandoffStep::Fail(change) => {
                    settle(bot, &poll, change, &mut tally, &control, window_open);
                    false
                }
            }
        });

        if now >= next_slot_at {
            if now - next_slot_at > slot_period * SLOTS as u32 {
                tally.late_input_slots += 1;
                next_slot_at = now; // fell a whole period behind: skip, do not burst
            }
            for bot in bots.iter_mut().skip(slot).step_by(SLOTS).flatten() {
                if bot.playing() {
                    let change = bot.send_input();
                    settle(bot, &poll, change, &mut tally, &control, window_open);
                }
                if bot.playing() {
                    let sent_before = bot.actions_sent;
                    let change = bot.send_actions();
                    if window_open {
                        tally.actions += bot.actions_sent - sent_before;
                    }
                    settle(bot, &poll, change, &mut tally, &control, window_open);
                }
            }
            slot = (slot + 1) % SLOTS;
            next_slot_at += slot_period;
        }

        let timeout = next_slot_at.saturating_duration_since(Instant::now());
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
        for event in &events {
            let Some(bot) = bots[event.token().0].as_mut() else {
                continue;
            };
            if matches!(bot.stage, Stage::Closed | Stage::Transferring) {
                continue;
            }
            if event.is_writable() {
                let change = bot.on_writable();
                settle(bot, &poll, change, &mut tally, &control, window_open);
            }
            if event.is_readable() && !matches!(bot.stage, Stage::Closed | Stage::Transferring) {
                let change = bot.on_readable(window_open, &mut tally);
                settle(bot, &poll, change, &mut tally, &control, window_open);
                if bot.take_new_handoff() {
                    handing_off.push(event.token().0);
                }
            }
        }
        control
            .frames
            .fetch_add(tally.live_frames - published_frames, Ordering::Relaxed);
        published_frames = tally.live_frames;
    }

    tally.per_bot_frames = bots
        .iter()
        .zip(&counted)
        .filter(|&(_, &was_playing)| was_playing)
        .map(|(bot, _)| bot.as_ref().map_or(0, |bot| bot.window_frames))
        .collect();
    for bot in bots.iter().flatten() {
        tally.bots_lost += u64::from(bot.is_lost());
        tally.handoffs_in_progress += u64::from(bot.handing_off());
    }
    Ok(tally)
}

/// Applies a bot's change to the counts and closes its socket if it ended (or is leaving
/// for another zone).
fn settle(
    bot: &mut Bot,
    poll: &Poll,
    change: Change,
    tally: &mut Tally,
    control: &Control,
    window_open: bool,
) {
    if matches!(bot.stage, Stage::Closed | Stage::Transferring) {
        let _ = poll.registry().deregister(&mut bot.stream);
        let _ = bot.stream.shutdown(std::net::Shutdown::Both);
    }
    record(change, tally, control, window_open);
}

fn record(change: Change, tally: &mut Tally, control: &Control, window_open: bool) {
    match change {
        Change::None => {}
        Change::Joined => {
            tally.connected += 1;
            control.connected.fetch_add(1, Ordering::Relaxed);
        }
        Change::ConnectFailed(why) => {
            tally.connect_failures += 1;
            *tally.reasons.entry(format!("connect: {why}")).or_default() += 1;
            control.failed.fetch_add(1, Ordering::Relaxed);
        }
        Change::Disconnected(why) => {
            if window_open {
                tally.disconnects += 1;
            } else {
                tally.disconnects_before_window += 1;
            }
            *tally
                .reasons
                .entry(format!("disconnect: {why}"))
                .or_default() += 1;
            control.disconnects.fetch_add(1, Ordering::Relaxed);
        }
        Change::Fatal(why) => control.fail(why),
        Change::HandoffFailed { reason, detail } => {
            *tally
                .reasons
                .entry(format!("handoff failed ({reason}): {detail}"))
                .or_default() += 1;
            *tally.handoff_failures.entry(reason).or_default() += 1;
        }
        Change::HandoffRetry(why) => {
            *tally
                .reasons
                .entry(format!("handoff connect retried: {why}"))
                .or_default() += 1;
        }
    }
}

/// Starts a non-blocking connect from the source address of bot `index`.
fn connect(addr: SocketAddr, index: usize) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    arrival::enable(socket.as_raw_fd())?;
    socket.bind(&SockAddr::from(SocketAddr::from((
        source_address(index),
        0,
    ))))?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// `127.0.0.1` for the first [`BOTS_PER_SOURCE_ADDRESS`] bots, then `127.0.0.2`, ...
pub fn source_address(index: usize) -> Ipv4Addr {
    let offset = (index / BOTS_PER_SOURCE_ADDRESS) as u32;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 1)) + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_stay_in_loopback_and_change_every_ten_thousand_bots() {
        assert_eq!(source_address(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_address(9_999), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_address(10_000), Ipv4Addr::new(127, 0, 0, 2));
        assert!(source_address(1_000_000).is_loopback());
    }
}
