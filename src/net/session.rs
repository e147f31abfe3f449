//! One connection's life as a sans-I/O state machine: what every client message means in
//! every phase, and when the connection must end and why. It reads no socket, writes none,
//! and owns no timer: the connection task (`super::handler`) feeds it decoded messages and
//! the time, and carries out its answers. So every transition and every refusal is unit
//! tested below with a clock the test moves.
//!
//! ```text
//! Handshake --valid Hello--> LoggingIn --Welcome written--> Open --+--> Closed
//!     |                          |                              |
//!     +-- bad first message, ----+-- refused login, ------------+-- Goodbye, flood,
//!         timeout: Reject            shutdown: Reject               idle, bad message: Close
//! ```
//!
//! A connection that ends before its session opened gets a `Reject`, one that ends an open
//! session a `Close` ([`Session::end`] says which); both carry a [`CloseReason`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use components::actions::ActionRegistry;

use super::rate_limit::{Admit, RateLimiter};
use crate::bridge::PlayerMessage;
use crate::protocol::{
    Action, ClientMessage, CloseReason, Hello, PROTOCOL_VERSION, validate_name, validate_secret,
};
use crate::stats::{ActionDrop, Stats};

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The server ends it with this reason (sent to the client) and detail.
    Close(CloseReason, String),
    /// The client said Goodbye or closed its socket.
    ClientLeft,
    /// The player walked into another zone: the client gets a Transfer (once the player's
    /// state is saved) instead of a Close.
    Transfer,
    /// The socket failed.
    Broken,
    /// A WebSocket-level fault (a text or fragmented message, an unmasked frame...): the
    /// client gets only a WebSocket close frame with `code`; counted under `reason`.
    Fault {
        /// The close reason it is counted under.
        reason: CloseReason,
        /// The WebSocket close code.
        code: u16,
        /// What was wrong.
        detail: String,
    },
}

impl Ending {
    /// The server ends the connection with `reason`.
    pub(crate) fn close(reason: CloseReason, detail: impl Into<String>) -> Self {
        Self::Close(reason, detail.into())
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the Hello (at most `handshake_timeout`).
    Handshake,
    /// A valid Hello arrived; the player is being logged in and welcomed. Nothing the client
    /// sends now is read: it is answered after the Welcome.
    LoggingIn,
    /// The Welcome is written: inputs, actions and pings flow.
    Open,
    /// Ended; nothing more is read.
    Closed,
}

/// What the connection must do with a message the session accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The handshake is complete: take a player slot and log this player in.
    LogIn(Credentials),
    /// Queue this for the next tick.
    ToTick(PlayerMessage),
    /// Answer with a Pong carrying this nonce.
    Pong(u64),
    /// Nothing: the message was dropped (and counted).
    Nothing,
}

/// What a client opened its session with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// A name and its secret.
    Hello(Hello),
    /// A handoff ticket from another zone (its bytes, unchecked yet).
    Ticket(Vec<u8>),
}

/// The last message a connection gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Last {
    /// `Reject`: the session never opened.
    Reject,
    /// `Close`: the server ends an open session.
    Close,
}

/// The limits a session enforces.
#[derive(Debug, Clone)]
pub(crate) struct SessionLimits {
    /// Time allowed for the Hello.
    pub handshake_timeout: Duration,
    /// An open session that sends no message for this long is closed.
    pub idle_timeout: Duration,
    /// Inputs, actions and pings per second.
    pub max_inputs_per_s: u32,
    /// Of those, how many may come at once above the rate.
    pub input_burst: u32,
    /// Sustained rate-limited sending for this long is closed (`InputFlood`).
    pub flood_kick: Duration,
}

/// `Err(VersionMismatch)` unless the client speaks our protocol.
fn check_version(version: u16) -> Result<(), Ending> {
    if version == PROTOCOL_VERSION {
        return Ok(());
    }
    Err(Ending::close(
        CloseReason::VersionMismatch,
        format!("server speaks protocol {PROTOCOL_VERSION}, client {version}"),
    ))
}

/// Invalid actions a client may send at once before it is closed.
const INVALID_ACTION_BURST: u32 = 10;

/// One connection's session.
pub(crate) struct Session {
    phase: Phase,
    limits: SessionLimits,
    /// When the Hello must have arrived.
    handshake_deadline: Instant,
    /// When the open session last heard from the client.
    heard_at: Instant,
    messages: RateLimiter,
    actions: ActionGate,
    registry: Arc<ActionRegistry>,
    stats: Arc<Stats>,
}

impl Session {
    /// A connection accepted at `now`, waiting for its Hello.
    pub(crate) fn new(
        limits: SessionLimits,
        registry: Arc<ActionRegistry>,
        stats: Arc<Stats>,
        now: Instant,
    ) -> Self {
        Self {
            phase: Phase::Handshake,
            handshake_deadline: now + limits.handshake_timeout,
            heard_at: now,
            messages: RateLimiter::new(
                limits.max_inputs_per_s,
                limits.input_burst,
                limits.flood_kick,
                now,
            ),
            actions: ActionGate::new(&registry, now),
            limits,
            registry,
            stats,
        }
    }

    /// Where the connection is.
    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The message `message`, received at `now`. `Err` ends the connection.
    pub(crate) fn receive(&mut self, message: ClientMessage, now: Instant) -> Result<Step, Ending> {
        match self.phase {
            Phase::Handshake => self.hello(message).map(Step::LogIn),
            Phase::LoggingIn | Phase::Closed => Err(Ending::close(
                CloseReason::InternalError,
                format!("a message read while {:?}", self.phase),
            )),
            Phase::Open => self.in_session(message, now),
        }
    }

    /// The Welcome is written at `now`: the session opens.
    pub(crate) fn opened(&mut self, now: Instant) {
        if self.phase == Phase::LoggingIn {
            self.phase = Phase::Open;
            self.heard_at = now;
        }
    }

    /// When [`Session::timed_out`] must next be asked: the handshake's deadline, or the end of
    /// the open session's idle time; `None` while logging in or closed (the login has its
    /// own bound).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Handshake => Some(self.handshake_deadline),
            Phase::Open => Some(self.heard_at + self.limits.idle_timeout),
            Phase::LoggingIn | Phase::Closed => None,
        }
    }

    /// Whether the connection must end at `now` for silence: `HandshakeTimeout` (no Hello
    /// in time) or `IdleTimeout` (an open session that sent nothing for `idle_timeout`).
    pub(crate) fn timed_out(&self, now: Instant) -> Option<Ending> {
        match self.phase {
            Phase::Handshake if now >= self.handshake_deadline => Some(Ending::close(
                CloseReason::HandshakeTimeout,
                format!("no Hello within {:?}", self.limits.handshake_timeout),
            )),
            Phase::Open if now >= self.heard_at + self.limits.idle_timeout => Some(Ending::close(
                CloseReason::IdleTimeout,
                format!("no message for {:?}", self.limits.idle_timeout),
            )),
            _ => None,
        }
    }

    /// The connection ends: which last message it gets (and the session is closed).
    pub(crate) fn end(&mut self) -> Last {
        let last = match self.phase {
            Phase::Open => Last::Close,
            Phase::Handshake | Phase::LoggingIn | Phase::Closed => Last::Reject,
        };
        self.phase = Phase::Closed;
        last
    }

    /// The handshake: the first message must be a Hello of our protocol with a valid name
    /// and secret, or a Resume with a ticket.
    fn hello(&mut self, message: ClientMessage) -> Result<Credentials, Ending> {
        let hello = match message {
            ClientMessage::Hello(hello) => hello,
            ClientMessage::Resume(resume) => {
                check_version(resume.protocol_version)?;
                self.phase = Phase::LoggingIn;
                return Ok(Credentials::Ticket(resume.ticket));
            }
            _ => {
                return Err(Ending::close(
                    CloseReason::ExpectedHello,
                    "the first message must be Hello",
                ));
            }
        };
        check_version(hello.protocol_version)?;
        validate_name(&hello.name).map_err(|why| Ending::close(CloseReason::InvalidName, why))?;
        validate_secret(&hello.secret)
            .map_err(|why| Ending::close(CloseReason::BadCredentials, why))?;
        self.phase = Phase::LoggingIn;
        Ok(Credentials::Hello(hello))
    }

    /// A message of an open session: rate-limited (inputs, actions and pings share one
    /// bucket; flooding it for `flood_kick` ends the session), then acted on.
    fn in_session(&mut self, message: ClientMessage, now: Instant) -> Result<Step, Ending> {
        self.heard_at = now;
        if matches!(
            message,
            ClientMessage::Input(_) | ClientMessage::Ping { .. } | ClientMessage::Action(_)
        ) {
            match self.messages.admit(now) {
                Admit::Accept => {}
                Admit::Drop => {
                    Stats::bump(&self.stats.inputs_dropped_rate_limited);
                    return Ok(Step::Nothing);
                }
                Admit::Kick => {
                    return Err(Ending::close(
                        CloseReason::InputFlood,
                        format!(
                            "more than {} messages per second for {:?}",
                            self.limits.max_inputs_per_s, self.limits.flood_kick
                        ),
                    ));
                }
            }
        }
        match message {
            ClientMessage::Input(input) => Ok(Step::ToTick(PlayerMessage::Input(input))),
            ClientMessage::Action(action) => Ok(self
                .actions
                .admit(action, now, &self.registry, &self.stats)?
                .map_or(Step::Nothing, |action| {
                    Step::ToTick(PlayerMessage::Action(action))
                })),
            ClientMessage::Ping { nonce } => Ok(Step::Pong(nonce)),
            ClientMessage::Goodbye => Err(Ending::ClientLeft),
            ClientMessage::Hello(_) | ClientMessage::Resume(_) => Err(Ending::close(
                CloseReason::DuplicateHello,
                "Hello on an open session",
            )),
        }
    }
}

/// A session's checks of the actions it receives: a rate per action kind, and a budget of
/// invalid actions (unknown kind, malformed, too large: 10 at once, refilled at one per
/// second) beyond which the client is closed with `InvalidActions`.
struct ActionGate {
    per_kind: Vec<RateLimiter>,
    invalid: RateLimiter,
}

impl ActionGate {
    fn new(registry: &ActionRegistry, now: Instant) -> Self {
        let per_kind = registry
            .kinds
            .iter()
            .map(|kind| {
                // Over its rate an action is dropped; only the message-rate flood kicks.
                RateLimiter::new(
                    kind.limits.per_second,
                    kind.limits.burst,
                    Duration::MAX,
                    now,
                )
            })
            .collect();
        Self {
            per_kind,
            invalid: RateLimiter::new(1, INVALID_ACTION_BURST, Duration::ZERO, now),
        }
    }

    /// `Ok(Some)`: queue it; `Ok(None)`: dropped (counted); `Err`: close the session.
    fn admit(
        &mut self,
        action: Action,
        now: Instant,
        registry: &ActionRegistry,
        stats: &Stats,
    ) -> Result<Option<Action>, Ending> {
        let kind = usize::from(action.kind);
        let Some(registered) = registry.kinds.get(kind) else {
            Stats::bump(&stats.actions_dropped_unknown_kind);
            return self.invalid(now, format!("unknown action kind {kind}"));
        };
        if action.bytes.len() > usize::from(registered.limits.max_bytes) {
            stats.count_action_drop(action.kind, ActionDrop::TooLarge);
            return self.invalid(
                now,
                format!(
                    "{} action of {} bytes (limit {})",
                    registered.name,
                    action.bytes.len(),
                    registered.limits.max_bytes
                ),
            );
        }
        if !(registered.decodes)(&action.bytes) {
            stats.count_action_drop(action.kind, ActionDrop::Malformed);
            return self.invalid(now, format!("{} action does not decode", registered.name));
        }
        if self.per_kind[kind].admit(now) != Admit::Accept {
            stats.count_action_drop(action.kind, ActionDrop::RateLimited);
            return Ok(None);
        }
        Ok(Some(action))
    }

    fn invalid(&mut self, now: Instant, detail: String) -> Result<Option<Action>, Ending> {
        match self.invalid.admit(now) {
            Admit::Accept => Ok(None),
            Admit::Drop | Admit::Kick => Err(Ending::close(
                CloseReason::InvalidActions,
                format!("too many invalid actions; the last: {detail}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use components::actions::ActionLimits;
    use serde::Deserialize;

    use super::*;
    use crate::protocol::Input;

    #[derive(Deserialize)]
    struct Throw {
        #[allow(dead_code)]
        angle: u16,
    }

    const LIMITS: SessionLimits = SessionLimits {
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        max_inputs_per_s: 60,
        input_burst: 20,
        flood_kick: Duration::from_secs(5),
    };

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn registry() -> Arc<ActionRegistry> {
        let mut registry = ActionRegistry::default();
        registry.register::<Throw>(
            "throw",
            ActionLimits {
                max_bytes: 8,
                per_second: 2,
                burst: 2,
            },
        );
        Arc::new(registry)
    }

    fn new_session(now: Instant) -> (Session, Arc<Stats>) {
        let stats = Arc::new(Stats::default());
        (Session::new(LIMITS, registry(), stats.clone(), now), stats)
    }

    fn hello(name: &str) -> Hello {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            name: name.into(),
            secret: "a secret of enough length".into(),
        }
    }

    /// A session that completed its handshake and was welcomed at `now`.
    fn open(now: Instant) -> (Session, Arc<Stats>) {
        let (mut session, stats) = new_session(now);
        assert_eq!(
            session.receive(ClientMessage::Hello(hello("ada")), now),
            Ok(Step::LogIn(Credentials::Hello(hello("ada"))))
        );
        session.opened(now);
        assert_eq!(session.phase(), Phase::Open);
        (session, stats)
    }

    fn input(seq: u32) -> ClientMessage {
        ClientMessage::Input(Input {
            seq,
            dir_x: 1,
            dir_y: 0,
        })
    }

    fn throw(bytes: Vec<u8>) -> ClientMessage {
        ClientMessage::Action(Action {
            seq: 1,
            kind: 0,
            bytes,
        })
    }

    fn reason(result: Result<Step, Ending>) -> CloseReason {
        match result {
            Err(Ending::Close(reason, _)) => reason,
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_hello_moves_the_handshake_to_logging_in() {
        let now = Instant::now();
        let (mut session, _) = new_session(now);
        assert_eq!(session.phase(), Phase::Handshake);
        let step = session.receive(ClientMessage::Hello(hello("ada")), now);
        assert_eq!(step, Ok(Step::LogIn(Credentials::Hello(hello("ada")))));
        assert_eq!(session.phase(), Phase::LoggingIn);
        assert_eq!(session.deadline(), None, "the login has its own bound");
    }

    #[test]
    fn any_other_first_message_is_rejected_with_expected_hello() {
        let now = Instant::now();
        for first in [
            input(1),
            ClientMessage::Ping { nonce: 1 },
            ClientMessage::Goodbye,
        ] {
            let (mut session, _) = new_session(now);
            assert_eq!(
                reason(session.receive(first, now)),
                CloseReason::ExpectedHello
            );
            assert_eq!(session.end(), Last::Reject);
        }
    }

    #[test]
    fn a_hello_of_another_protocol_version_is_rejected() {
        let now = Instant::now();
        let (mut session, _) = new_session(now);
        let mut old = hello("ada");
        old.protocol_version = PROTOCOL_VERSION - 1;
        assert_eq!(
            reason(session.receive(ClientMessage::Hello(old), now)),
            CloseReason::VersionMismatch
        );
    }

    #[test]
    fn an_invalid_name_or_secret_is_rejected_before_any_login() {
        let now = Instant::now();
        let (mut session, _) = new_session(now);
        assert_eq!(
            reason(session.receive(ClientMessage::Hello(hello("")), now)),
            CloseReason::InvalidName
        );
        let (mut session, _) = new_session(now);
        let mut no_secret = hello("ada");
        no_secret.secret.clear();
        assert_eq!(
            reason(session.receive(ClientMessage::Hello(no_secret), now)),
            CloseReason::BadCredentials
        );
    }

    #[test]
    fn the_handshake_times_out_at_its_deadline_and_not_before() {
        let now = Instant::now();
        let (session, _) = new_session(now);
        assert_eq!(session.deadline(), Some(now + LIMITS.handshake_timeout));
        assert_eq!(
            session.timed_out(now + LIMITS.handshake_timeout - ms(1)),
            None
        );
        let ending = session.timed_out(now + LIMITS.handshake_timeout);
        assert!(matches!(
            ending,
            Some(Ending::Close(CloseReason::HandshakeTimeout, _))
        ));
    }

    #[test]
    fn a_message_while_logging_in_is_an_internal_error_not_an_answer() {
        let now = Instant::now();
        let (mut session, _) = new_session(now);
        session
            .receive(ClientMessage::Hello(hello("ada")), now)
            .unwrap();
        assert_eq!(
            reason(session.receive(input(1), now)),
            CloseReason::InternalError
        );
        assert_eq!(session.end(), Last::Reject, "the session never opened");
    }

    #[test]
    fn an_open_session_queues_inputs_and_actions_and_answers_pings() {
        let now = Instant::now();
        let (mut session, _) = open(now);
        assert!(matches!(
            session.receive(input(7), now),
            Ok(Step::ToTick(PlayerMessage::Input(Input { seq: 7, .. })))
        ));
        assert_eq!(
            session.receive(ClientMessage::Ping { nonce: 9 }, now),
            Ok(Step::Pong(9))
        );
        let thrown = session.receive(throw(vec![1]), now);
        assert!(matches!(
            thrown,
            Ok(Step::ToTick(PlayerMessage::Action(Action { kind: 0, .. })))
        ));
    }

    #[test]
    fn goodbye_ends_an_open_session_as_the_clients_choice() {
        let now = Instant::now();
        let (mut session, _) = open(now);
        assert_eq!(
            session.receive(ClientMessage::Goodbye, now),
            Err(Ending::ClientLeft)
        );
    }

    #[test]
    fn a_second_hello_closes_an_open_session() {
        let now = Instant::now();
        let (mut session, _) = open(now);
        assert_eq!(
            reason(session.receive(ClientMessage::Hello(hello("ada")), now)),
            CloseReason::DuplicateHello
        );
        assert_eq!(session.end(), Last::Close);
        assert_eq!(session.phase(), Phase::Closed);
    }

    #[test]
    fn an_open_session_is_closed_after_idle_timeout_of_silence_and_any_message_resets_it() {
        let now = Instant::now();
        let (mut session, _) = open(now);
        let later = now + ms(20_000);
        session
            .receive(ClientMessage::Ping { nonce: 1 }, later)
            .unwrap();
        assert_eq!(session.deadline(), Some(later + LIMITS.idle_timeout));
        assert_eq!(session.timed_out(now + LIMITS.idle_timeout), None);
        assert!(matches!(
            session.timed_out(later + LIMITS.idle_timeout),
            Some(Ending::Close(CloseReason::IdleTimeout, _))
        ));
    }

    #[test]
    fn messages_over_the_rate_are_dropped_and_counted_then_a_flood_is_closed() {
        let now = Instant::now();
        let (mut session, stats) = open(now);
        let steps: Vec<_> = (0..LIMITS.input_burst + 5)
            .map(|seq| session.receive(input(seq), now))
            .collect();
        let dropped = steps.iter().filter(|s| **s == Ok(Step::Nothing)).count();
        assert_eq!(dropped, 5, "the burst passes, the rest is dropped");
        assert_eq!(stats.snapshot().inputs_dropped_rate_limited, 5);
        // Twice the rate, without a pause, until the kick time has passed.
        let every = Duration::from_secs(1) / (2 * LIMITS.max_inputs_per_s);
        let mut at = now;
        let ending = loop {
            at += every;
            match session.receive(input(1), at) {
                Ok(_) => assert!(at < now + LIMITS.flood_kick + ms(1000), "never kicked"),
                Err(ending) => break ending,
            }
        };
        assert!(at >= now + LIMITS.flood_kick, "not before the kick time");
        assert!(matches!(ending, Ending::Close(CloseReason::InputFlood, _)));
    }

    #[test]
    fn actions_over_their_kinds_rate_are_dropped_not_closed() {
        let now = Instant::now();
        let (mut session, stats) = open(now);
        let steps: Vec<_> = (0..4)
            .map(|_| session.receive(throw(vec![1]), now))
            .collect();
        assert_eq!(steps.iter().filter(|s| **s == Ok(Step::Nothing)).count(), 2);
        assert_eq!(
            stats.snapshot().actions_dropped[0][ActionDrop::RateLimited as usize],
            2
        );
    }

    #[test]
    fn invalid_actions_are_dropped_until_their_budget_is_spent_then_closed() {
        let now = Instant::now();
        let (mut session, stats) = open(now);
        let unknown = ClientMessage::Action(Action {
            seq: 1,
            kind: 9,
            bytes: vec![],
        });
        let too_large = throw(vec![0; 9]);
        // One byte short of a u16 varint continuation: does not decode.
        let malformed = throw(vec![0x80]);
        let mut sent = 0;
        let ending = loop {
            let message = [&unknown, &too_large, &malformed][sent % 3].clone();
            // Spaced within the message rate so only the invalid-action budget is spent.
            let at = now + ms(20 * sent as u64);
            sent += 1;
            match session.receive(message, at) {
                Ok(step) => assert_eq!(step, Step::Nothing),
                Err(ending) => break ending,
            }
        };
        assert_eq!(sent, INVALID_ACTION_BURST as usize + 1);
        assert!(matches!(
            ending,
            Ending::Close(CloseReason::InvalidActions, _)
        ));
        let counted = stats.snapshot();
        assert_eq!(counted.actions_dropped_unknown_kind, 4);
        assert_eq!(counted.actions_dropped[0][ActionDrop::TooLarge as usize], 4);
        assert_eq!(
            counted.actions_dropped[0][ActionDrop::Malformed as usize],
            3
        );
    }

    #[test]
    fn a_closed_session_reads_nothing_more() {
        let now = Instant::now();
        let (mut session, _) = open(now);
        session.end();
        assert_eq!(
            reason(session.receive(input(1), now)),
            CloseReason::InternalError
        );
        assert_eq!(session.deadline(), None);
    }
}
