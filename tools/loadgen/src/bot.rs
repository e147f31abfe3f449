//! One bot of the crowd workload, sans event loop: the worker owns the socket readiness and
//! the clock; a bot turns readable bytes into verified frames and its schedule into inputs
//! (and, with `--actions-per-s`, `throw` actions numbered from the same seq counter).
//!
//! Verification: every frame must decode and apply cleanly to the bot's [`ViewSet`] (no update
//! or removal of an entity it never saw, no double spawn, ticks strictly increasing). The
//! first inconsistency is counted as a protocol error; the bot then stops counting errors (its
//! view can no longer be trusted) but keeps counting frames, events and acks. Frames are
//! checked straight from their bytes (`visit_state_frame`) and actions written straight as
//! bytes: no allocation per frame or per action.
//!
//! Over WebSocket (`--transport ws`) a bot first upgrades (`GET /ws`), then speaks the same
//! protocol: every message it sends is the TCP frame it would send, turned in place into a
//! masked binary frame (`ws::frame_in_place`), and every binary message it receives is
//! checked exactly like a TCP frame body.
//!
//! Zones (see [`crate::handoff`]): a `Transfer` from the server moves the bot to
//! [`Stage::Transferring`]; the worker opens a socket to the destination (the same connect
//! path as the first one), and the bot sends `Resume` where it sent Hello, then plays on
//! from its next seq with the new Welcome's player id. The handoff is complete, timed and
//! checked for continuity when a frame of the destination shows the bot's own entity.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use throng_protocol::framing::FrameReader;
use throng_protocol::visit::{is_state_frame, visit_state_frame};
use throng_protocol::websocket::{Opcode, WsFrame, WsReader};
use throng_protocol::{
    ClientMessage, FRAME_HEADER_BYTES, Hello, Input, PROTOCOL_VERSION, Resume, ServerMessage,
    Transfer, Welcome, begin_frame, decode_server_message, encode_frame, finish_frame, put_varint,
};

use crate::arrival;
use crate::handoff::{self, Handoff, MAX_ATTEMPTS, RETRY_DELAY};
use crate::tally::Tally;
use crate::view::ViewSet;
use crate::ws::{self, Transport};

/// Largest server frame body a bot accepts (a full arena view of 1,000 players is ~10 KiB).
const MAX_SERVER_FRAME: u32 = 1 << 20;
/// Inputs between changes of walking direction (the workload's "about 2 s" at 20 Hz).
const INPUTS_PER_DIRECTION: u32 = 40;
/// Inputs remembered for ack latency; older unacknowledged ones are forgotten.
const MAX_UNACKED: usize = 64;
/// Unsent bytes a bot may hold before it counts the server as not reading.
const MAX_PENDING_OUT: usize = 4096;
/// Name of the action bots send with `--actions-per-s` (the demo game's snowball throw).
pub const THROW_ACTION: &str = "throw";
/// Index of `ClientMessage::Action` on the wire.
const ACTION_MESSAGE_INDEX: u64 = 4;
/// Name of the event that tells a player its walking speed (bounds a handoff's jump).
const MOVEMENT_EVENT: &str = "movement";

/// Where a bot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// TCP connect in progress.
    Connecting,
    /// WebSocket upgrade request sent, waiting for the `101`.
    Upgrading,
    /// Hello (or Resume) sent, waiting for Welcome.
    AwaitingWelcome,
    /// Welcomed; sending inputs and receiving frames.
    Playing,
    /// Between zones: the origin's socket is closed and the worker is to open one to the
    /// destination (right after the Transfer, or between connect attempts).
    Transferring,
    /// Closed (by the server, the network, or a failed connect).
    Closed,
}

/// What the worker is to do for a bot's handoff (see [`Bot::handoff_step`]).
#[derive(Debug, PartialEq, Eq)]
pub enum HandoffStep {
    /// No handoff any more (complete or failed): forget the bot.
    Idle,
    /// Nothing yet.
    Wait,
    /// Open a socket to this address and give it to [`Bot::reconnect`].
    Connect(std::net::SocketAddr),
    /// The handoff failed (the change says why).
    Fail(Change),
}

/// How every bot of a worker behaves.
#[derive(Debug, Clone, Copy)]
pub struct BotSettings {
    /// How bots reach servers.
    pub transport: Transport,
    /// Run seed.
    pub seed: u64,
    /// `throw` actions per input, on average.
    pub actions_per_input: f64,
    /// `--max-step`: the jump allowed across a border, units (else from the speed).
    pub max_step: Option<f64>,
}

/// What happened to a bot while handling readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing that changes its stage.
    None,
    /// Welcomed.
    Joined,
    /// Closed before being welcomed (refused, reset, timed out).
    ConnectFailed(String),
    /// Closed after being welcomed, without asking.
    Disconnected(String),
    /// The run cannot go on (the server lacks what the workload needs); the bot closed.
    Fatal(String),
    /// A handoff to another zone failed for `reason` (a refusal's reason name, or one of
    /// loadgen's own: `timeout`, `connect_failed`, ...); the bot closed unless it was
    /// playing on the destination already (`own_entity_not_seen`).
    HandoffFailed {
        /// Snake-case reason (a key of the report's `handoff_failures`).
        reason: String,
        /// For humans.
        detail: String,
    },
    /// A connect to a handoff's destination failed before the Resume went out; another
    /// attempt follows.
    HandoffRetry(String),
}

/// One simulated player.
pub struct Bot {
    /// The socket.
    pub stream: TcpStream,
    /// Life stage.
    pub stage: Stage,
    /// When the connect started (for the connect timeout).
    pub connect_started: Instant,
    /// Frames received inside the measured window.
    pub window_frames: u32,
    /// Actions sent in any phase.
    pub actions_sent: u64,
    name: String,
    link: Link,
    /// The protocol's last message (`Close`/`Reject`) came over WebSocket; the close frame
    /// that follows ends the session.
    closing: Option<&'static str>,
    view: ViewSet,
    verifying: bool,
    walk: RandomWalk,
    throws: Throws,
    /// Kind index of [`THROW_ACTION`] in the server's schema (known once welcomed).
    throw_kind: Option<u16>,
    /// Seed, global index and transport: a new link per handoff needs its own key.
    settings: BotSettings,
    index: u64,
    /// Welcomed after a Hello at some point (a join).
    joined: bool,
    /// The handoff in progress, if any.
    handoff: Option<Handoff>,
    /// The worker has this bot on its list of handoffs to drive.
    handoff_listed: bool,
    /// Handoffs started so far.
    hops: u64,
    /// Side of the world and wire scale, from the last Welcome.
    world_size: f64,
    position_scale: f64,
    next_seq: u32,
    /// Inputs not yet acknowledged: seq and send time (CLOCK_REALTIME ns).
    unacked: VecDeque<(u32, i64)>,
    pending_out: Vec<u8>,
    scratch: Vec<u8>,
    /// A write the kernel refused while playing (the server closed or reset the socket).
    /// The bot writes nothing more; what the server sent before closing (a Transfer, a
    /// Close) may still wait to be read, so the read side decides whether it is lost.
    write_failed: Option<String>,
}

impl Bot {
    /// A bot whose connect is in progress on `stream` (to `peer`); the run's seed and the
    /// bot's `index` fix its walk, its throws (of which it sends `actions_per_input` per
    /// input on average) and its WebSocket key and masks.
    pub fn new(
        stream: TcpStream,
        peer: std::net::SocketAddr,
        index: usize,
        settings: BotSettings,
        now: Instant,
    ) -> Bot {
        let BotSettings {
            transport,
            seed,
            actions_per_input,
            ..
        } = settings;
        Bot {
            stream,
            stage: Stage::Connecting,
            connect_started: now,
            window_frames: 0,
            actions_sent: 0,
            name: format!("bot{index}"),
            link: Link::new(transport, &peer.to_string(), "/ws", seed, index as u64),
            closing: None,
            view: ViewSet::default(),
            verifying: true,
            walk: RandomWalk::new(seed, index as u64),
            throws: Throws::new(seed, index as u64, actions_per_input),
            throw_kind: None,
            settings,
            index: index as u64,
            joined: false,
            handoff: None,
            handoff_listed: false,
            hops: 0,
            world_size: 0.0,
            position_scale: 1.0,
            next_seq: 1,
            unacked: VecDeque::with_capacity(MAX_UNACKED),
            pending_out: Vec::new(),
            scratch: Vec::with_capacity(64),
            write_failed: None,
        }
    }

    /// The socket became writable: finish the connect (send Hello) or flush pending bytes.
    pub fn on_writable(&mut self) -> Change {
        match self.stage {
            Stage::Connecting => {
                match self.stream.take_error() {
                    Ok(None) => {}
                    Ok(Some(error)) | Err(error) => return self.close_before_join(error),
                }
                match self.stream.peer_addr() {
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotConnected => {
                        return Change::None; // spurious wake-up; still connecting
                    }
                    Err(error) => return self.close_before_join(error),
                }
                if let Link::Ws(link) = &self.link {
                    self.stage = Stage::Upgrading;
                    let request = link.upgrade_request();
                    self.scratch.clear();
                    self.scratch.extend_from_slice(request.as_bytes());
                    return self.send_scratch();
                }
                self.send_opening()
            }
            Stage::Upgrading | Stage::AwaitingWelcome | Stage::Playing => self.flush(),
            Stage::Transferring | Stage::Closed => Change::None,
        }
    }

    /// The session's first message: Resume during a handoff, Hello otherwise.
    fn send_opening(&mut self) -> Change {
        let Some(handoff) = &mut self.handoff else {
            return self.send_hello();
        };
        self.stage = Stage::AwaitingWelcome;
        handoff.resume_sent = true;
        // Once per handoff: the generic encoder (hand-written bytes are for inputs).
        let resume = ClientMessage::Resume(Resume {
            protocol_version: PROTOCOL_VERSION,
            ticket: handoff.ticket.clone(),
        });
        self.send(&resume)
    }

    fn send_hello(&mut self) -> Change {
        self.stage = Stage::AwaitingWelcome;
        let hello = ClientMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            name: self.name.clone(),
            // Deterministic per name, so a rerun against the same server's data
            // logs the same names back in.
            secret: format!("loadgen-secret-{}", self.name),
        });
        self.send(&hello)
    }

    /// The socket became readable: read everything available and apply every whole frame.
    /// Acks are timed at the kernel's arrival time of the bytes (see [`arrival`]).
    pub fn on_readable(&mut self, measuring: bool, tally: &mut Tally) -> Change {
        if matches!(self.stage, Stage::Closed | Stage::Transferring) {
            return Change::None; // no socket of this bot is open
        }
        loop {
            let fd = self.stream.as_raw_fd();
            let upgrading = self.stage == Stage::Upgrading;
            let spare = if upgrading {
                self.link.response_spare()
            } else {
                self.link.spare()
            };
            let room = spare.len();
            let (read, arrived) = match arrival::recv(fd, spare) {
                Ok((0, _)) => {
                    return match self.closing {
                        Some(reason) => {
                            self.lost(&format!("server closed: {reason} (no ws close)"))
                        }
                        None => match self.write_failed.take() {
                            Some(why) => self.lost(&format!(
                                "server closed the connection (after a failed write: {why})"
                            )),
                            None => self.lost("server closed the connection"),
                        },
                    };
                }
                Ok((n, Some(arrived))) => (n, arrived),
                Ok((n, None)) => {
                    tally.unstamped_reads += u64::from(measuring);
                    (n, arrival::realtime_ns())
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Change::None,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return self.lost(&error.to_string()),
            };
            if measuring {
                tally.bytes += read as u64;
            }
            if upgrading {
                match self.link.response_filled(read) {
                    Ok(false) => continue, // the head is not complete yet
                    Ok(true) => {
                        let change = self.send_opening();
                        if change != Change::None || self.stage == Stage::Closed {
                            return change;
                        }
                    }
                    Err(why) => return self.close_before_join(io::Error::other(why)),
                }
            } else {
                self.link.filled(read);
            }
            let change = self.take_frames(arrived, measuring, tally);
            if change != Change::None || matches!(self.stage, Stage::Closed | Stage::Transferring) {
                return change;
            }
            // A short read drained the socket; new data will raise a new edge.
            if read < room {
                return Change::None;
            }
        }
    }

    /// Sends the next input of the random walk.
    pub fn send_input(&mut self) -> Change {
        let now = arrival::realtime_ns();
        let seq = self.next_seq;
        self.next_seq += 1;
        let (dir_x, dir_y) = self.walk.direction(seq);
        if self.unacked.len() == MAX_UNACKED {
            self.unacked.pop_front(); // never acknowledged in time; keep memory bounded
        }
        self.unacked.push_back((seq, now));
        self.send(&ClientMessage::Input(Input { seq, dir_x, dir_y }))
    }

    /// Sends the `throw` actions due with this input slot (none, one or a few; on average
    /// the run's actions per input), each in a random direction and numbered from the same
    /// seq counter as inputs. Acks of actions are not timed: the input ack latency stays an
    /// input figure.
    pub fn send_actions(&mut self) -> Change {
        let Some(kind) = self.throw_kind else {
            return Change::None;
        };
        for _ in 0..self.throws.due() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let (dir_x, dir_y) = self.throws.direction();
            self.scratch.clear();
            encode_action(&mut self.scratch, seq, kind, &[dir_x as u8, dir_y as u8]);
            self.link
                .seal(&mut self.scratch, FRAME_HEADER_BYTES, Opcode::Binary);
            self.actions_sent += 1;
            let change = self.send_scratch();
            if change != Change::None || self.stage == Stage::Closed {
                return change;
            }
        }
        Change::None
    }

    /// Whether inputs are due (welcomed, open, and its socket still takes writes).
    pub fn playing(&self) -> bool {
        self.stage == Stage::Playing && self.closing.is_none() && self.write_failed.is_none()
    }

    /// Whether the bot was welcomed after its Hello (it joined, whatever came after).
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// Whether the bot joined and is not playing any more, other than between zones: the
    /// server or the network ended it, or a handoff failed.
    pub fn is_lost(&self) -> bool {
        self.joined
            && (self.stage == Stage::Closed
                || self.closing.is_some()
                || (self.stage == Stage::Playing && self.write_failed.is_some()))
    }

    /// Whether a handoff is under way (including one welcomed on the destination that has
    /// not yet seen its own entity).
    pub fn handing_off(&self) -> bool {
        self.handoff.is_some() && self.stage != Stage::Closed
    }

    /// Whether a handoff began that the worker does not drive yet; the worker then lists the
    /// bot (once) and calls [`Bot::handoff_step`] until it returns [`HandoffStep::Idle`].
    pub fn take_new_handoff(&mut self) -> bool {
        let new = self.handoff.is_some() && !self.handoff_listed;
        self.handoff_listed |= new;
        new
    }

    /// Drives the handoff's time: the next connect attempt when it is due, the failure when
    /// the handoff is not complete `timeout` after its Transfer.
    pub fn handoff_step(&mut self, now: Instant, timeout: Duration) -> HandoffStep {
        let Some(handoff) = &mut self.handoff else {
            self.handoff_listed = false;
            return HandoffStep::Idle;
        };
        if now.saturating_duration_since(handoff.started) > timeout {
            let (reason, detail) = if handoff.welcomed {
                (
                    "own_entity_not_seen",
                    "no frame of the destination showed the bot",
                )
            } else {
                ("timeout", "not welcomed by the destination in time")
            };
            self.handoff_listed = false;
            return HandoffStep::Fail(self.fail_handoff(reason, detail.to_owned()));
        }
        match handoff.retry_at {
            Some(at) if at <= now && self.stage == Stage::Transferring => {
                let addr = match &handoff.target {
                    Some(target) => target.addr,
                    None => match handoff::target(
                        self.settings.transport,
                        &handoff.address,
                        &handoff.websocket,
                    ) {
                        Ok(target) => {
                            let addr = target.addr;
                            handoff.target = Some(target);
                            addr
                        }
                        Err(reason) => {
                            let detail = format!(
                                "destination {:?} / {:?}",
                                handoff.address, handoff.websocket
                            );
                            self.handoff_listed = false;
                            return HandoffStep::Fail(self.fail_handoff(reason, detail));
                        }
                    },
                };
                handoff.retry_at = None;
                handoff.attempts += 1;
                HandoffStep::Connect(addr)
            }
            _ => HandoffStep::Wait,
        }
    }

    /// Takes the socket the worker opened to the handoff's destination (its connect in
    /// progress, registered under this bot's token): a fresh link, Resume once connected.
    pub fn reconnect(&mut self, stream: TcpStream) {
        let Some(target) = self.handoff.as_ref().and_then(|h| h.target.as_ref()) else {
            return;
        };
        let mixed = self.settings.seed ^ self.hops.wrapping_mul(0x2545_F491_4F6C_DD1D);
        self.link = Link::new(
            self.settings.transport,
            &target.host,
            &target.path,
            mixed,
            self.index,
        );
        self.stream = stream; // the origin's socket closes here
        self.stage = Stage::Connecting;
        self.closing = None;
        self.pending_out.clear();
        self.write_failed = None;
    }

    /// The worker could not even start the connect to the handoff's destination.
    pub fn connect_failed(&mut self, error: io::Error) -> Change {
        self.close_before_join(error)
    }

    /// A Transfer while playing: remembers where the bot was, then waits for the worker to
    /// connect it to the destination. A Transfer that comes before the previous handoff saw
    /// the bot's own entity continues that handoff (its start and origin position), so
    /// chained handoffs are timed and checked from the last position actually seen.
    fn begin_handoff(&mut self, transfer: Transfer, arrived: i64) {
        let prior = self.handoff.take();
        let (started, started_ns) = prior
            .as_ref()
            .map_or((Instant::now(), arrived), |p| (p.started, p.started_ns));
        let from = self.view.own_wire().or(prior.and_then(|p| p.from));
        self.handoff = Some(Handoff::new(
            transfer.address,
            transfer.websocket,
            transfer.ticket,
            started,
            started_ns,
            from,
        ));
        self.hops += 1;
        // Inputs the origin did not acknowledge are gone with it: timing them against the
        // destination's acks would count the handoff as input latency.
        self.unacked.clear();
        self.stage = Stage::Transferring;
    }

    /// Ends the handoff as failed; the bot closes unless it plays on the destination.
    fn fail_handoff(&mut self, reason: &str, detail: String) -> Change {
        self.handoff = None;
        if self.stage != Stage::Playing {
            self.stage = Stage::Closed;
        }
        Change::HandoffFailed {
            reason: reason.to_owned(),
            detail,
        }
    }

    /// A Welcome: a new session's view, with the bot's (possibly new) id.
    fn welcomed(&mut self, welcome: &Welcome) {
        self.world_size = f64::from(welcome.world_size);
        self.position_scale = f64::from(welcome.position_scale);
        let movement = welcome.schema.event_kind(MOVEMENT_EVENT);
        self.view.restart(welcome.player_id, movement);
        self.verifying = true;
    }

    /// After a frame of a resumed session: the destination's acks continue the origin's
    /// seqs (never beyond what was sent), and once the bot's own entity is in view the
    /// handoff is complete: timed, and its position checked against the origin's.
    fn check_handoff(&mut self, arrived: i64, tally: &mut Tally) {
        let Some(handoff) = &self.handoff else {
            return;
        };
        if !handoff.welcomed {
            return;
        }
        if self.view.ack_seq >= self.next_seq && self.verifying {
            tally.protocol_errors += 1;
            *tally
                .reasons
                .entry("protocol: the destination acknowledged a seq never sent".into())
                .or_default() += 1;
            self.verifying = false;
        }
        let Some(to) = self.view.own_wire() else {
            return;
        };
        let from = handoff.from;
        let started_ns = handoff.started_ns;
        self.handoff = None;
        tally.handoffs += 1;
        let nanos = u64::try_from(arrived - started_ns).unwrap_or(0);
        tally.handoff_latency.record(Duration::from_nanos(nanos));
        let Some(from) = from else {
            tally.continuity_unchecked += 1;
            return;
        };
        let jump = handoff::wrapped_distance(from, to, self.world_size, self.position_scale);
        tally.continuity_checked += 1;
        tally.continuity_worst_jump =
            Some(tally.continuity_worst_jump.map_or(jump, |w| w.max(jump)));
        if jump > handoff::allowed_jump(self.settings.max_step, self.view.speed_per_tick) {
            tally.continuity_violations += 1;
            *tally
                .reasons
                .entry("handoff: the bot's position jumped more than a step".into())
                .or_default() += 1;
        }
    }

    fn take_frames(&mut self, arrived: i64, measuring: bool, tally: &mut Tally) -> Change {
        let mut change = Change::None;
        loop {
            let body = match self.link.next() {
                Ok(Some(Inbound::Message(body))) => body,
                Ok(Some(Inbound::Ping(payload))) => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(payload);
                    self.link.seal(&mut self.scratch, 0, Opcode::Pong);
                    let pong = self.send_scratch();
                    if pong != Change::None || self.stage == Stage::Closed {
                        return pong;
                    }
                    continue;
                }
                Ok(Some(Inbound::Pong)) => continue,
                Ok(Some(Inbound::Close(code))) => {
                    return self.lost(&ws::close_reason(self.closing, code));
                }
                Ok(None) => return change,
                Err(error) => {
                    tally.protocol_errors += 1;
                    return self.lost(&format!("unreadable frame: {error}"));
                }
            };
            if self.closing.is_some() {
                tally.protocol_errors += 1;
                return self.lost("a message after the server's Close");
            }
            if self.stage == Stage::Playing && is_state_frame(body) {
                // The hot path: verify straight from the bytes, no allocation.
                let events_before = self.view.events;
                let consistent = visit_state_frame(body, &mut self.view).is_ok();
                let events = self.view.events - events_before;
                self.on_frame(consistent, events, arrived, measuring, tally);
                self.check_handoff(arrived, tally);
                continue;
            }
            let message = match decode_server_message(body) {
                Ok(message) => message,
                Err(error) => {
                    tally.protocol_errors += 1;
                    return self.lost(&format!("undecodable frame: {error}"));
                }
            };
            match message {
                ServerMessage::Welcome(welcome) if self.stage == Stage::AwaitingWelcome => {
                    self.welcomed(&welcome);
                    self.throw_kind = welcome.schema.action_kind(THROW_ACTION);
                    if self.throws.per_input > 0.0 && self.throw_kind.is_none() {
                        self.stage = Stage::Closed;
                        return Change::Fatal(format!(
                            "--actions-per-s needs a `{THROW_ACTION}` action, and the server's \
                             schema has none (its actions: {:?})",
                            welcome.schema.actions
                        ));
                    }
                    self.stage = Stage::Playing;
                    match &mut self.handoff {
                        Some(handoff) => handoff.welcomed = true,
                        None => {
                            self.joined = true;
                            change = Change::Joined;
                        }
                    }
                }
                ServerMessage::Transfer(transfer) if self.stage == Stage::Playing => {
                    // The origin closes the socket after it; what else is buffered is moot.
                    self.begin_handoff(transfer, arrived);
                    return change;
                }
                ServerMessage::Pong { .. } => {}
                ServerMessage::Reject(refusal) | ServerMessage::Close(refusal)
                    if matches!(self.link, Link::Ws(_)) =>
                {
                    // Over WebSocket, a close frame follows: it ends the session.
                    self.closing = Some(refusal.reason.as_str());
                }
                ServerMessage::Reject(refusal) | ServerMessage::Close(refusal)
                    if self.stage != Stage::Playing && self.handoff.is_some() =>
                {
                    // The destination refused the ticket: final (its reason is the key).
                    return self.fail_handoff(refusal.reason.as_str(), refusal.detail);
                }
                ServerMessage::Reject(refusal) | ServerMessage::Close(refusal) => {
                    let why = format!("server closed: {}", refusal.reason.as_str());
                    return if self.stage == Stage::Playing {
                        self.lost(&why)
                    } else {
                        self.close_before_join(io::Error::other(why))
                    };
                }
                _ => {
                    tally.protocol_errors += 1;
                    return self.lost("message out of order");
                }
            }
        }
    }

    /// Counts a state frame the view has just checked (with the `events` it carried) and
    /// times the inputs it acknowledges.
    fn on_frame(
        &mut self,
        consistent: bool,
        events: u64,
        arrived: i64,
        measuring: bool,
        tally: &mut Tally,
    ) {
        tally.live_frames += 1;
        if !consistent && self.verifying {
            tally.protocol_errors += 1;
            self.verifying = false; // the view is no longer trustworthy; keep counting
        }
        while let Some(&(seq, sent)) = self.unacked.front() {
            if seq > self.view.ack_seq {
                break;
            }
            self.unacked.pop_front();
            if measuring {
                let nanos = u64::try_from(arrived - sent).unwrap_or(0);
                tally.acks.record(Duration::from_nanos(nanos));
            }
        }
        if measuring {
            self.window_frames += 1;
            tally.frames += 1;
            tally.events += events;
            tally.visible_sum += self.view.len() as u64;
        }
    }

    fn send(&mut self, message: &ClientMessage) -> Change {
        self.scratch.clear();
        encode_frame(message, &mut self.scratch);
        self.link
            .seal(&mut self.scratch, FRAME_HEADER_BYTES, Opcode::Binary);
        self.send_scratch()
    }

    /// Sends the bytes written in `scratch` (whole frames of the transport).
    fn send_scratch(&mut self) -> Change {
        if self.write_failed.is_some() {
            return Change::None;
        }
        if !self.pending_out.is_empty() {
            self.pending_out.extend_from_slice(&self.scratch);
            return self.flush();
        }
        match self.stream.write(&self.scratch) {
            Ok(n) if n == self.scratch.len() => Change::None,
            Ok(n) => {
                self.pending_out.extend_from_slice(&self.scratch[n..]);
                Change::None
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                self.pending_out.extend_from_slice(&self.scratch);
                Change::None
            }
            Err(error) => self.write_refused(&error),
        }
    }

    fn flush(&mut self) -> Change {
        while !self.pending_out.is_empty() && self.write_failed.is_none() {
            match self.stream.write(&self.pending_out) {
                Ok(n) => {
                    self.pending_out.drain(..n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => return self.write_refused(&error),
            }
        }
        if self.pending_out.len() > MAX_PENDING_OUT {
            return self.lost("server stopped reading our inputs");
        }
        Change::None
    }

    /// A write failed. Before the session opened, that ends the bot. While playing, the
    /// server may have closed right after its last message (a Transfer, say: docs/PROTOCOL.md,
    /// inputs crossing it meet a reset socket): the bot stops writing and reads on, and the
    /// read side ends it with what it finds (the Transfer, a Close, or the end of the stream).
    fn write_refused(&mut self, error: &io::Error) -> Change {
        if self.stage != Stage::Playing {
            return self.lost(&error.to_string());
        }
        self.write_failed = Some(error.to_string());
        self.pending_out.clear();
        Change::None
    }

    fn lost(&mut self, why: &str) -> Change {
        if self.stage != Stage::Playing {
            return self.close_before_join(io::Error::other(why.to_owned()));
        }
        self.stage = Stage::Closed;
        // A handoff waiting for the bot's own entity ends with the session: the disconnect
        // is what is counted.
        self.handoff = None;
        Change::Disconnected(why.to_owned())
    }

    fn close_before_join(&mut self, error: io::Error) -> Change {
        if let Some(handoff) = &mut self.handoff {
            if let Some(reason) = self.closing {
                // Over WebSocket: the refusal came, then the close frame.
                return self.fail_handoff(reason, error.to_string());
            }
            if !handoff.resume_sent && handoff.attempts < MAX_ATTEMPTS {
                self.stage = Stage::Transferring;
                handoff.retry_at = Some(Instant::now() + RETRY_DELAY);
                return Change::HandoffRetry(error.to_string());
            }
            let reason = if handoff.resume_sent {
                "closed_before_welcome"
            } else {
                "connect_failed"
            };
            return self.fail_handoff(reason, error.to_string());
        }
        self.stage = Stage::Closed;
        Change::ConnectFailed(error.to_string())
    }
}

/// A bot's side of its transport: how received bytes become messages and how the messages
/// it writes are framed.
enum Link {
    /// Length-prefixed frames.
    Tcp(FrameReader),
    /// WebSocket.
    Ws(Box<WsLink>),
}

/// A WebSocket bot's state.
struct WsLink {
    reader: WsReader,
    /// Masks and the upgrade key.
    rng: SmallRng,
    /// The upgrade in progress (dropped once it succeeds).
    upgrade: Option<Upgrade>,
}

/// An upgrade in progress: the key sent, and the response head read so far.
struct Upgrade {
    host: String,
    path: String,
    key: String,
    head: Box<[u8]>,
    len: usize,
}

/// What a link took out of the received bytes.
enum Inbound<'a> {
    /// A protocol message's body.
    Message(&'a [u8]),
    /// A WebSocket ping, answered with a pong carrying its payload.
    Ping(&'a [u8]),
    /// A WebSocket pong (ignored).
    Pong,
    /// A WebSocket close frame, with its code if it had one.
    Close(Option<u16>),
}

impl Link {
    /// A link for a new connection; over WebSocket, its upgrade asks for `path` of `host`.
    fn new(transport: Transport, host: &str, path: &str, seed: u64, index: u64) -> Link {
        match transport {
            Transport::Tcp => Link::Tcp(FrameReader::new(MAX_SERVER_FRAME)),
            Transport::Ws => {
                let mixed = seed ^ index.wrapping_add(1).wrapping_mul(0xA076_1D64_78BD_642F);
                let mut rng = SmallRng::seed_from_u64(mixed ^ 0x7773_6d61_736b);
                let key = ws::key_of(rng.random());
                Link::Ws(Box::new(WsLink {
                    reader: WsReader::server_frames(MAX_SERVER_FRAME),
                    rng,
                    upgrade: Some(Upgrade {
                        host: host.to_owned(),
                        path: path.to_owned(),
                        key,
                        head: vec![0; ws::MAX_RESPONSE_HEAD].into_boxed_slice(),
                        len: 0,
                    }),
                }))
            }
        }
    }

    /// Free space for received frames.
    fn spare(&mut self) -> &mut [u8] {
        match self {
            Link::Tcp(reader) => reader.spare(),
            Link::Ws(link) => link.reader.spare(),
        }
    }

    /// Records `n` bytes received into [`Link::spare`].
    fn filled(&mut self, n: usize) {
        match self {
            Link::Tcp(reader) => reader.filled(n),
            Link::Ws(link) => link.reader.filled(n),
        }
    }

    /// The next whole message or WebSocket control frame, if one is buffered.
    fn next(&mut self) -> Result<Option<Inbound<'_>>, String> {
        match self {
            Link::Tcp(reader) => match reader.next_frame() {
                Ok(body) => Ok(body.map(Inbound::Message)),
                Err(error) => Err(error.to_string()),
            },
            Link::Ws(link) => match link.reader.next_frame() {
                Ok(frame) => Ok(frame.map(|frame| match frame {
                    WsFrame::Binary(body) => Inbound::Message(body),
                    WsFrame::Ping(payload) => Inbound::Ping(payload),
                    WsFrame::Pong => Inbound::Pong,
                    WsFrame::Close(code) => Inbound::Close(code),
                })),
                Err(error) => Err(format!("websocket: {error}")),
            },
        }
    }

    /// Frames the message written at the end of `out` from `start` (its payload `room`
    /// bytes further): as it is over TCP (a length-prefixed frame, `room` being the prefix),
    /// in place as a masked WebSocket frame of `opcode` otherwise.
    fn seal(&mut self, out: &mut Vec<u8>, room: usize, opcode: Opcode) {
        if let Link::Ws(link) = self {
            let mask = link.rng.random::<u32>().to_ne_bytes();
            ws::frame_in_place(out, 0, room, opcode, mask);
        }
    }

    /// Free space for the upgrade response (empty unless upgrading).
    fn response_spare(&mut self) -> &mut [u8] {
        match self {
            Link::Ws(link) => match &mut link.upgrade {
                Some(upgrade) => &mut upgrade.head[upgrade.len..],
                None => &mut [],
            },
            Link::Tcp(_) => &mut [],
        }
    }

    /// Records `n` bytes of the upgrade response; `Ok(true)` once it is a valid `101` (any
    /// bytes after its head are moved to the frame reader).
    fn response_filled(&mut self, n: usize) -> Result<bool, String> {
        let Link::Ws(link) = self else {
            return Err("not upgrading".into());
        };
        let Some(upgrade) = &mut link.upgrade else {
            return Err("not upgrading".into());
        };
        upgrade.len += n;
        let head = &upgrade.head[..upgrade.len];
        let Some(used) = ws::check_upgrade_response(head, &upgrade.key)? else {
            return Ok(false);
        };
        let rest = &head[used..];
        link.reader.spare()[..rest.len()].copy_from_slice(rest);
        link.reader.filled(rest.len());
        link.upgrade = None;
        Ok(true)
    }
}

impl WsLink {
    /// The upgrade request.
    fn upgrade_request(&self) -> String {
        self.upgrade
            .as_ref()
            .map(|upgrade| ws::upgrade_request(&upgrade.host, &upgrade.path, &upgrade.key))
            .unwrap_or_default()
    }
}

/// Appends one whole frame carrying `ClientMessage::Action(Action { seq, kind, bytes })`,
/// byte for byte what postcard writes, without building the message (no allocation).
fn encode_action(out: &mut Vec<u8>, seq: u32, kind: u16, bytes: &[u8]) {
    let start = begin_frame(out);
    put_varint(out, ACTION_MESSAGE_INDEX);
    put_varint(out, u64::from(seq));
    put_varint(out, u64::from(kind));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
    finish_frame(out, start);
}

/// When a bot throws and where: `per_input` throws per input on average (the whole part
/// every input, the fraction at random), each in a uniformly random direction. Seeded apart
/// from the walk, so the walk is the same with or without throws.
pub struct Throws {
    rng: SmallRng,
    per_input: f64,
}

impl Throws {
    /// The throws of bot `index` under run seed `seed`.
    pub fn new(seed: u64, index: u64, per_input: f64) -> Throws {
        let mixed = seed ^ index.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03);
        Throws {
            rng: SmallRng::seed_from_u64(mixed ^ 0x7468_726F_7773),
            per_input,
        }
    }

    /// Throws due with this input.
    pub fn due(&mut self) -> u32 {
        if self.per_input <= 0.0 {
            return 0;
        }
        let whole = self.per_input.floor();
        let extra = self.rng.random::<f64>() < self.per_input - whole;
        whole as u32 + u32::from(extra)
    }

    /// A uniformly random direction, quantized to the protocol's `i8` components.
    pub fn direction(&mut self) -> (i8, i8) {
        let angle: f32 = self.rng.random_range(0.0..std::f32::consts::TAU);
        (
            (angle.cos() * 127.0).round() as i8,
            (angle.sin() * 127.0).round() as i8,
        )
    }
}

/// The workload's seeded random walk: a new uniformly random direction every
/// [`INPUTS_PER_DIRECTION`] inputs, quantized to the protocol's `i8` components.
pub struct RandomWalk {
    rng: SmallRng,
    current: (i8, i8),
}

impl RandomWalk {
    /// The walk of bot `index` under run seed `seed`.
    pub fn new(seed: u64, index: u64) -> RandomWalk {
        let mixed = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        RandomWalk {
            rng: SmallRng::seed_from_u64(mixed),
            current: (0, 0),
        }
    }

    /// Direction for input `seq` (1-based).
    pub fn direction(&mut self, seq: u32) -> (i8, i8) {
        if (seq - 1).is_multiple_of(INPUTS_PER_DIRECTION) {
            let angle: f32 = self.rng.random_range(0.0..std::f32::consts::TAU);
            self.current = (
                (angle.cos() * 127.0).round() as i8,
                (angle.sin() * 127.0).round() as i8,
            );
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_protocol::{Action, frame_bytes};

    #[test]
    fn actions_are_written_as_postcard_writes_them() {
        for (seq, kind, bytes) in [
            (5, 0, vec![127, 0]),
            (300, 2, vec![]),
            (u32::MAX, 700, vec![1; 200]),
        ] {
            let mut ours = vec![9]; // appends after what is there
            encode_action(&mut ours, seq, kind, &bytes);
            let message = ClientMessage::Action(Action { seq, kind, bytes });
            assert_eq!(ours[1..], frame_bytes(&message));
        }
    }

    #[test]
    fn throws_average_their_rate_in_every_direction() {
        let mut none = Throws::new(1, 0, 0.0);
        assert_eq!((0..100).map(|_| none.due()).sum::<u32>(), 0);
        let mut some = Throws::new(1, 0, 0.25);
        let thrown: u32 = (0..4_000).map(|_| some.due()).sum();
        assert!((900..1_100).contains(&thrown), "{thrown}");
        let mut many = Throws::new(1, 0, 2.5);
        assert!((0..100).all(|_| (2..=3).contains(&many.due())));
        let directions: Vec<_> = (0..50).map(|_| some.direction()).collect();
        assert!(
            directions.iter().any(|&(x, _)| x < -60) && directions.iter().any(|&(x, _)| x > 60)
        );
        let (x, y) = directions[0];
        let length = (f32::from(x).powi(2) + f32::from(y).powi(2)).sqrt();
        assert!((length - 127.0).abs() < 1.5, "unit direction, got {length}");
    }

    #[test]
    fn the_walk_repeats_per_seed_and_turns_every_forty_inputs() {
        let mut a = RandomWalk::new(7, 3);
        let mut b = RandomWalk::new(7, 3);
        let first: Vec<_> = (1..=80).map(|s| a.direction(s)).collect();
        let again: Vec<_> = (1..=80).map(|s| b.direction(s)).collect();
        assert_eq!(first, again);
        assert!(first[..40].iter().all(|&d| d == first[0]));
        assert!(first[40..].iter().all(|&d| d == first[40]));
        assert_ne!(first[0], first[40]);
        let (x, y) = first[0];
        let length = (f32::from(x).powi(2) + f32::from(y).powi(2)).sqrt();
        assert!((length - 127.0).abs() < 1.5, "unit direction, got {length}");
        assert_ne!(RandomWalk::new(8, 3).direction(1), first[0]);
    }

    /// A zone server closes the socket right after its Transfer, so an input the bot sends
    /// before reading it meets a reset socket and the next write fails. The Transfer is still
    /// in the bot's receive queue: the bot reads it and hands off instead of counting itself
    /// lost (the zones soak lost a bot a run this way on a loaded machine).
    #[test]
    fn a_transfer_behind_a_refused_write_is_still_followed() {
        use std::io::Read;
        use throng_protocol::Schema;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = listener.local_addr().unwrap();
        let settings = BotSettings {
            transport: Transport::Tcp,
            seed: 1,
            actions_per_input: 0.0,
            max_step: None,
        };
        let mut bot = Bot::new(
            TcpStream::connect(peer).unwrap(),
            peer,
            0,
            settings,
            Instant::now(),
        );
        let (mut server, _) = listener.accept().unwrap();
        let mut tally = Tally::default();
        // The loopback connect is done once accepted: the first writable sends the Hello.
        assert_eq!(bot.on_writable(), Change::None);
        assert_eq!(bot.stage, Stage::AwaitingWelcome);
        let mut hello = [0; 256];
        assert!(server.read(&mut hello).unwrap() > 0);
        let welcome = ServerMessage::Welcome(Welcome {
            player_id: 7,
            tick_hz: 20,
            world_size: 1000.0,
            interest_radius: 50.0,
            cell_size: 50.0,
            view_cells: 1,
            position_scale: 8.0,
            max_frame_bytes: 1 << 20,
            schema: Schema::default(),
            idle_timeout_ms: 10_000,
            max_inputs_per_s: 60,
        });
        server.write_all(&frame_bytes(&welcome)).unwrap();
        while bot.stage != Stage::Playing {
            bot.on_readable(false, &mut tally);
            std::thread::sleep(Duration::from_millis(5));
        }
        let transfer = ServerMessage::Transfer(Transfer {
            zone: "east".into(),
            address: "127.0.0.1:1".into(),
            websocket: String::new(),
            ticket: b"ticket".to_vec(),
        });
        server.write_all(&frame_bytes(&transfer)).unwrap();
        drop(server);
        // The first input is answered with a reset, a later one is refused by the kernel.
        for _ in 0..100 {
            if !bot.playing() {
                break;
            }
            assert_eq!(bot.send_input(), Change::None);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!bot.playing(), "a write was refused");
        assert!(bot.is_lost(), "lost if nothing more were read");
        assert_eq!(bot.on_readable(false, &mut tally), Change::None);
        assert_eq!(bot.stage, Stage::Transferring);
        assert!(bot.handing_off());
        assert!(!bot.is_lost());
    }
}
