//! One task per connection: handshake and login (the name is claimed and the player loaded
//! by the persistence thread before the join reaches the tick), then a loop that reads
//! inputs (all complete frames of each read at once), rate-limits them and watches for
//! silence. The tick's frames are written by the flush tasks (`super::flush`);
//! this task writes only what they hand over (a full socket, a busy lock), the Welcome,
//! pongs and the last close. Every bad input ends in a defined refusal or close with a reason,
//! sent to the client and counted; nothing here can panic on peer data or block the tick.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use super::NetContext;
use super::admission::{HandshakePlace, PlayerSlot, source};
use super::egress::{Egress, Flushed};
use super::login_throttle::Throttled;
use super::rate_limit::{Admit, RateLimiter};
use crate::bridge::outbox::outbox;
use crate::bridge::{
    ConnectionId, Held, InputEvent, InputOutcome, Join, Leave, Lifecycle, PlayerMessage,
};
use crate::persistence::online::NameGuard;
use crate::persistence::store::{LoginError, SavedPlayer};
use crate::persistence::writer::{LoginKind, LoginRequest};
use crate::protocol::framing::{FrameError, FrameReader};
use crate::protocol::{
    Action, ClientMessage, CloseReason, Hello, PROTOCOL_VERSION, Refusal, ServerMessage,
    decode_client_message, frame_bytes, validate_name, validate_secret,
};
use crate::stats::{ActionDrop, Stats};

/// How long a closing message may take to write before the socket is dropped anyway.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a session ended.
#[derive(Debug)]
enum Ending {
    /// The server closes it with this reason (sent to the client).
    Close(CloseReason, String),
    /// The client said Goodbye or closed its socket.
    ClientLeft,
    /// The socket failed.
    Broken,
}

/// Counts a live connection task for as long as it exists.
struct LiveTask(Arc<NetContext>);

impl Drop for LiveTask {
    fn drop(&mut self) {
        self.0
            .stats
            .connections_live
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Serves one accepted connection until it ends. `pending` is its place among the pending
/// handshakes, given back once it has logged in (or failed to); a player slot is taken only
/// after a valid Hello.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnectionId,
    pending: HandshakePlace,
    ctx: Arc<NetContext>,
) {
    Stats::bump(&ctx.stats.connections_live);
    let _live = LiveTask(ctx.clone());
    let _ = stream.set_nodelay(true);
    if ctx.send_buffer_bytes > 0 {
        let _ =
            socket2::SockRef::from(&stream).set_send_buffer_size(ctx.send_buffer_bytes as usize);
    }
    let (mut rd, mut wr) = stream.into_split();
    let mut reader = FrameReader::new(ctx.max_inbound_frame_bytes);

    let mut shutdown = ctx.shutdown.clone();
    let handshake = tokio::time::timeout(
        ctx.handshake_timeout,
        read_hello(&mut rd, &mut reader, &ctx),
    );
    let answer = tokio::select! {
        answer = handshake => answer,
        _ = stopping(&mut shutdown) => Ok(Err(Ending::Close(CloseReason::Shutdown, "server stopping".into()))),
    };
    let from = source(peer.ip());
    let login = match answer {
        Ok(Ok(hello)) => match player_slot(from, &ctx) {
            Ok(slot) => log_in(hello, from, &ctx).await.map(|login| (login, slot)),
            Err(ending) => Err(ending),
        },
        Ok(Err(ending)) => Err(ending),
        Err(_) => Err(Ending::Close(
            CloseReason::HandshakeTimeout,
            format!("no Hello within {:?}", ctx.handshake_timeout),
        )),
    };
    let ((name, name_guard, saved), slot) = match login {
        Ok(login) => login,
        Err(Ending::Close(reason, detail)) => {
            drop(pending);
            return refuse(&mut wr, &ctx, reason, detail, Last::Reject).await;
        }
        Err(_) => return,
    };
    // Logged in: the connection is a player now, no longer a pending handshake.
    drop(pending);

    let (writer, outbox) = outbox(ctx.outbound_buffers);
    let egress = Arc::new(Egress::new(wr, outbox));
    let _registration = ctx.flushes.register(id, egress.clone());
    let join = Join {
        connection: id,
        name: name.clone(),
        outbox: writer,
        saved,
        name_claim: Some(Held::new(name_guard)),
    };
    if !ctx.inbound.send_lifecycle(Lifecycle::Join(join)) {
        let detail = "server stopping".into();
        return refuse_open(&egress, &ctx, CloseReason::Shutdown, detail, Last::Reject).await;
    }
    tracing::info!(connection = id, %name, "player joined");

    // Welcome is the first message of a session, always: nothing the client sent after its
    // Hello is read, let alone answered, before the Welcome has been written.
    let (ending, last) = match await_welcome(&egress, &ctx).await {
        Ok(()) => (
            session(&mut rd, &egress, &mut reader, id, &ctx).await,
            Last::Close,
        ),
        Err(ending) => (ending, Last::Reject),
    };
    match &ending {
        Ending::Close(reason, detail) => {
            tracing::info!(connection = id, %name, reason = reason.as_str(), %detail, "closing player");
            refuse_open(&egress, &ctx, *reason, detail.clone(), last).await;
        }
        Ending::ClientLeft => tracing::info!(connection = id, %name, "player left"),
        Ending::Broken => tracing::info!(connection = id, %name, "player connection broke"),
    }
    ctx.inbound.send_lifecycle(Lifecycle::Leave(Leave {
        connection: id,
        slot: Some(Held::new(slot)),
    }));
}

/// A player slot for a connection from `address` that sent a valid Hello: one of
/// `max_players` (`ServerFull`) and one of its address's `max_players_per_addr`
/// (`AddressLimit`).
fn player_slot(address: IpAddr, ctx: &NetContext) -> Result<PlayerSlot, Ending> {
    let Ok(slot) = ctx.slots.clone().try_acquire_owned() else {
        return Err(Ending::Close(
            CloseReason::ServerFull,
            format!("server holds {} players", ctx.max_players),
        ));
    };
    let Some(address) = ctx.players_per_addr.take(address) else {
        return Err(Ending::Close(
            CloseReason::AddressLimit,
            "this address has the most players it may have".into(),
        ));
    };
    Ok(PlayerSlot {
        _slot: slot,
        _address: address,
    })
}

/// How long a login may wait for the store.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Logs a player in: refused at once if its name or address failed too often lately
/// (`TooManyFailedLogins`, before any check), then claims the name (one login per name) and
/// asks the store for the player: a new name is claimed with the secret, a known one must
/// present it. A name that is online is answered `AlreadyOnline` only to the right secret
/// (anyone else gets `BadCredentials`, and learns nothing about who is online). Off the
/// tick: the join that follows carries the saved state.
async fn log_in(
    hello: Hello,
    address: IpAddr,
    ctx: &NetContext,
) -> Result<(String, NameGuard, SavedPlayer), Ending> {
    if let Err(throttled) = ctx
        .logins
        .check(&hello.name, address, std::time::Instant::now())
    {
        let whose = match throttled {
            Throttled::Name => "for this name",
            Throttled::Address => "from this address",
        };
        return Err(Ending::Close(
            CloseReason::TooManyFailedLogins,
            format!("too many failed logins {whose}; retry later"),
        ));
    }
    let failed = |ending: Ending| {
        if matches!(ending, Ending::Close(CloseReason::BadCredentials, _)) {
            ctx.logins
                .failed(&hello.name, address, std::time::Instant::now());
        }
        ending
    };
    let Some(guard) = ctx.online.claim(&hello.name) else {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let right = ask_store(&hello, LoginKind::Verify(reply), answer, ctx).await;
        return Err(failed(match right {
            Ok(true) => Ending::Close(
                CloseReason::AlreadyOnline,
                format!("{} is logged in already", hello.name),
            ),
            Ok(false) => bad_credentials(),
            Err(ending) => ending,
        }));
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    match ask_store(&hello, LoginKind::LogIn(reply), answer, ctx).await {
        Ok(saved) => {
            Stats::bump(&ctx.stats.logins);
            ctx.logins.succeeded(&hello.name, address);
            Ok((hello.name, guard, saved))
        }
        Err(ending) => Err(failed(ending)),
    }
}

fn bad_credentials() -> Ending {
    Ending::Close(
        CloseReason::BadCredentials,
        "wrong secret for this name".into(),
    )
}

/// Sends a login request to the persistence thread and waits (bounded) for its answer.
async fn ask_store<T>(
    hello: &Hello,
    kind: LoginKind,
    answer: tokio::sync::oneshot::Receiver<Result<T, LoginError>>,
    ctx: &NetContext,
) -> Result<T, Ending> {
    let request = LoginRequest {
        name: hello.name.clone(),
        secret: hello.secret.clone(),
        kind,
    };
    if !ctx.persistence.login(request) {
        return Err(Ending::Close(
            CloseReason::InternalError,
            "the store is not taking logins".into(),
        ));
    }
    match tokio::time::timeout(LOGIN_TIMEOUT, answer).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(LoginError::BadCredentials))) => Err(bad_credentials()),
        Ok(Ok(Err(LoginError::Store(error)))) => Err(Ending::Close(
            CloseReason::InternalError,
            format!("the store failed: {error}"),
        )),
        _ => Err(Ending::Close(
            CloseReason::InternalError,
            format!("the store did not answer within {LOGIN_TIMEOUT:?}"),
        )),
    }
}

/// The last message of a connection: a Reject (the session never opened) or a Close (the
/// server ends an open session). Each is counted by reason in its own metric.
#[derive(Clone, Copy)]
enum Last {
    Reject,
    Close,
}

impl Last {
    fn message(self, refusal: Refusal) -> ServerMessage {
        match self {
            Last::Reject => ServerMessage::Reject(refusal),
            Last::Close => ServerMessage::Close(refusal),
        }
    }

    fn count(self, stats: &Stats, reason: CloseReason) {
        match self {
            Last::Reject => stats.count_reject(reason),
            Last::Close => stats.count_kick(reason),
        }
    }
}

/// Sends a refusal or close with `reason`, counts it, and shuts the socket.
async fn refuse(
    wr: &mut OwnedWriteHalf,
    ctx: &NetContext,
    reason: CloseReason,
    detail: String,
    kind: Last,
) {
    kind.count(&ctx.stats, reason);
    // Debug, not info: a flood of refused sockets must not become a flood of log lines
    // (they are counted by reason in the metrics).
    tracing::debug!(reason = reason.as_str(), %detail, "connection refused");
    send_last(wr, &kind.message(Refusal { reason, detail })).await;
}

/// Writes a connection's last message and shuts the socket, giving up after
/// `CLOSE_WRITE_TIMEOUT` so a peer that does not read cannot hold the task.
pub(super) async fn send_last(writer: &mut (impl AsyncWrite + Unpin), message: &ServerMessage) {
    let bytes = frame_bytes(message);
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
        let _ = writer.write_all(&bytes).await;
        let _ = writer.shutdown().await;
    })
    .await;
}

/// Like [`refuse`], for a session whose output goes through its egress: the message is
/// written after the frame in progress and no frame follows it; gives up after
/// `CLOSE_WRITE_TIMEOUT` and then resets the connection rather than leave unsendable bytes
/// in the kernel. The socket closes when the last holder of the egress drops it.
async fn refuse_open(
    egress: &Egress,
    ctx: &NetContext,
    reason: CloseReason,
    detail: String,
    kind: Last,
) {
    kind.count(&ctx.stats, reason);
    egress.close_with(&frame_bytes(&kind.message(Refusal { reason, detail })));
    let flushed = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, flush_all(egress, &ctx.stats)).await;
    if !matches!(flushed, Ok(Ok(()))) {
        egress.abort_on_close();
    }
}

/// Writes everything queued, waiting for the socket when it is full.
async fn flush_all(egress: &Egress, stats: &Stats) -> Result<(), Ending> {
    while flush_now(egress, stats)? {
        egress.writable().await.map_err(|_| Ending::Broken)?;
    }
    Ok(())
}

/// Reads once from the socket into `reader` (zero or more whole frames may follow).
async fn fill(
    rd: &mut OwnedReadHalf,
    reader: &mut FrameReader,
    ctx: &NetContext,
) -> Result<(), Ending> {
    match rd.read(reader.spare()).await {
        Ok(0) => Err(Ending::ClientLeft),
        Ok(n) => {
            reader.filled(n);
            Stats::add(&ctx.stats.inbound_bytes, n as u64);
            Ok(())
        }
        Err(_) => Err(Ending::Broken),
    }
}

/// Takes the next complete frame out of `reader` and decodes it.
fn next_message(
    reader: &mut FrameReader,
    ctx: &NetContext,
) -> Result<Option<ClientMessage>, Ending> {
    let body = match reader.next_frame() {
        Ok(Some(body)) => body,
        Ok(None) => return Ok(None),
        Err(FrameError::TooLarge { announced, limit }) => {
            return Err(Ending::Close(
                CloseReason::FrameTooLarge,
                format!("frame of {announced} bytes exceeds the limit of {limit}"),
            ));
        }
    };
    Stats::bump(&ctx.stats.inbound_frames);
    decode_client_message(body)
        .map(Some)
        .map_err(|e| Ending::Close(e.close_reason(), e.to_string()))
}

/// Waits for the Hello and validates it.
async fn read_hello(
    rd: &mut OwnedReadHalf,
    reader: &mut FrameReader,
    ctx: &NetContext,
) -> Result<Hello, Ending> {
    loop {
        let Some(message) = next_message(reader, ctx)? else {
            fill(rd, reader, ctx).await?;
            continue;
        };
        let ClientMessage::Hello(hello) = message else {
            return Err(Ending::Close(
                CloseReason::ExpectedHello,
                "the first message must be Hello".into(),
            ));
        };
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(Ending::Close(
                CloseReason::VersionMismatch,
                format!(
                    "server speaks protocol {PROTOCOL_VERSION}, client {}",
                    hello.protocol_version
                ),
            ));
        }
        validate_name(&hello.name).map_err(|why| Ending::Close(CloseReason::InvalidName, why))?;
        validate_secret(&hello.secret)
            .map_err(|why| Ending::Close(CloseReason::BadCredentials, why))?;
        return Ok(hello);
    }
}

/// The open session: inputs in, frames out, until something ends it. The tick's frames are
/// normally written by the flush tasks; this task writes only when woken (a full socket, a
/// busy lock, the Welcome, a close) and then never waits for the socket while it could read:
/// a client that stops reading is still heard, and still kicked.
async fn session(
    rd: &mut OwnedReadHalf,
    egress: &Egress,
    reader: &mut FrameReader,
    id: ConnectionId,
    ctx: &NetContext,
) -> Ending {
    let mut read_at = Instant::now();
    let mut heard_at = read_at;
    let mut limiter = RateLimiter::new(
        ctx.max_inputs_per_s,
        ctx.input_burst,
        ctx.flood_kick,
        read_at.into_std(),
    );
    // Re-armed only when it fires (at most once per idle timeout), not on every message:
    // resetting a timer per input would touch the runtime's timer wheel 20 times a second
    // per player.
    let idle = tokio::time::sleep_until(heard_at + ctx.idle_timeout);
    tokio::pin!(idle);
    let mut blocked = false;
    let mut actions = ActionGate::new(ctx, read_at.into_std());
    // A close the tick asked for together with the Welcome (a join during shutdown) may
    // have rung the doorbell before the Welcome was written.
    if let Some(reason) = egress.waker().requested_close() {
        return Ending::Close(reason, format!("closed by the server: {}", reason.as_str()));
    }
    loop {
        // Everything already buffered first (frames pipelined behind the Hello included).
        {
            let _zone = crate::profiling::zone!("decode");
            loop {
                let message = match next_message(reader, ctx) {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(ending) => return ending,
                };
                heard_at = read_at;
                if matches!(
                    message,
                    ClientMessage::Input(_) | ClientMessage::Ping { .. } | ClientMessage::Action(_)
                ) {
                    match limiter.admit(read_at.into_std()) {
                        Admit::Accept => {}
                        Admit::Drop => {
                            Stats::bump(&ctx.stats.inputs_dropped_rate_limited);
                            continue;
                        }
                        Admit::Kick => {
                            return Ending::Close(
                                CloseReason::InputFlood,
                                format!(
                                    "more than {} messages per second for {:?}",
                                    ctx.max_inputs_per_s, ctx.flood_kick
                                ),
                            );
                        }
                    }
                }
                let message = match message {
                    ClientMessage::Action(action) => {
                        match actions.admit(action, read_at.into_std(), ctx) {
                            Ok(Some(action)) => ClientMessage::Action(action),
                            Ok(None) => continue,
                            Err(ending) => return ending,
                        }
                    }
                    other => other,
                };
                if let Err(ending) = handle(message, egress, id, ctx, &mut blocked) {
                    return ending;
                }
            }
        }
        // Shutdown reaches an open session through its outbox (the tick closes every client),
        // not through a channel shared by all connections: a shared waiter list would be
        // locked and unlocked by every connection on every loop iteration.
        tokio::select! {
            biased;
            _ = egress.waker().woken() => {
                // Frames queued before a close still go out first, as far as the socket
                // takes them now (the close itself waits at most CLOSE_WRITE_TIMEOUT).
                match flush_now(egress, &ctx.stats) {
                    Ok(now_blocked) => blocked = now_blocked,
                    Err(ending) => return ending,
                }
                if let Some(reason) = egress.waker().requested_close() {
                    return Ending::Close(reason, format!("closed by the server: {}", reason.as_str()));
                }
            }
            ready = egress.writable(), if blocked => {
                if ready.is_err() {
                    return Ending::Broken;
                }
                match flush_now(egress, &ctx.stats) {
                    Ok(now_blocked) => blocked = now_blocked,
                    Err(ending) => return ending,
                }
            }
            filled = fill(rd, reader, ctx) => {
                if let Err(ending) = filled {
                    return ending;
                }
                read_at = Instant::now();
            }
            _ = &mut idle => {
                let deadline = heard_at + ctx.idle_timeout;
                if deadline <= Instant::now() {
                    return Ending::Close(
                        CloseReason::IdleTimeout,
                        format!("no message for {:?}", ctx.idle_timeout),
                    );
                }
                idle.as_mut().reset(deadline);
            }
        }
    }
}

/// How long a joined connection waits for the tick's Welcome before giving up (the tick
/// publishes it in the tick after the join; it is this late only if the tick is stuck).
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until the Welcome (the first frame the tick publishes into the outbox) has been
/// written to the socket, by this task or by a flush task. Until then the task does not
/// read: whatever the client pipelined behind its Hello (pings, inputs, a second Hello)
/// stays in the socket and is handled after the Welcome, so every answer follows it. `Err`:
/// the session never opened (the server closed it first, or the tick never welcomed it).
async fn await_welcome(egress: &Egress, ctx: &NetContext) -> Result<(), Ending> {
    let deadline = Instant::now() + WELCOME_TIMEOUT;
    loop {
        let blocked = flush_now(egress, &ctx.stats)?;
        if egress.welcomed() {
            return Ok(());
        }
        if !blocked && let Some(reason) = egress.waker().requested_close() {
            // Closed before the tick published a Welcome (the tick died, or a stuck tick
            // was bypassed at shutdown): the session never opened.
            return Err(Ending::Close(
                reason,
                format!(
                    "closed by the server before the Welcome: {}",
                    reason.as_str()
                ),
            ));
        }
        tokio::select! {
            _ = egress.waker().woken() => {}
            ready = egress.writable(), if blocked => ready.map_err(|_| Ending::Broken)?,
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Ending::Close(
                    CloseReason::InternalError,
                    format!("no Welcome from the tick within {WELCOME_TIMEOUT:?}"),
                ));
            }
        }
    }
}

/// Writes what the socket takes now; `Ok(true)` if it is full and more is waiting.
fn flush_now(egress: &Egress, stats: &Stats) -> Result<bool, Ending> {
    let mut written = 0;
    let flushed = egress.flush(&mut written);
    Stats::add(&stats.frames_written, written);
    match flushed {
        Flushed::Idle => Ok(false),
        Flushed::Blocked => Ok(true),
        Flushed::Failed => Err(Ending::Broken),
    }
}

/// Queues an input or an admitted action for the next tick.
fn queue_for_tick(
    message: PlayerMessage,
    id: ConnectionId,
    ctx: &NetContext,
) -> Result<(), Ending> {
    let action_kind = match &message {
        PlayerMessage::Action(action) => Some(action.kind),
        PlayerMessage::Input(_) => None,
    };
    match ctx.inbound.send_input(InputEvent {
        connection: id,
        message,
    }) {
        InputOutcome::Queued => {
            if let Some(kind) = action_kind {
                ctx.stats.count_action_queued(kind);
            }
        }
        InputOutcome::DroppedQueueFull => match action_kind {
            Some(kind) => ctx.stats.count_action_drop(kind, ActionDrop::QueueFull),
            None => Stats::bump(&ctx.stats.inputs_dropped_queue_full),
        },
        InputOutcome::Closed => {
            return Err(Ending::Close(
                CloseReason::Shutdown,
                "server stopping".into(),
            ));
        }
    }
    Ok(())
}

/// A session's checks of the actions it receives: a rate per action kind, and a budget of
/// invalid actions (unknown kind, malformed, too large: 10 at once, refilled at one per
/// second) beyond which the client is closed with `InvalidActions`.
struct ActionGate {
    per_kind: Vec<RateLimiter>,
    invalid: RateLimiter,
}

/// Invalid actions a client may send at once before it is closed.
const INVALID_ACTION_BURST: u32 = 10;

impl ActionGate {
    fn new(ctx: &NetContext, now: std::time::Instant) -> Self {
        let per_kind = ctx
            .actions
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
        now: std::time::Instant,
        ctx: &NetContext,
    ) -> Result<Option<Action>, Ending> {
        let kind = usize::from(action.kind);
        let Some(registered) = ctx.actions.kinds.get(kind) else {
            Stats::bump(&ctx.stats.actions_dropped_unknown_kind);
            return self.invalid(now, format!("unknown action kind {kind}"));
        };
        if action.bytes.len() > usize::from(registered.limits.max_bytes) {
            ctx.stats
                .count_action_drop(action.kind, ActionDrop::TooLarge);
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
            ctx.stats
                .count_action_drop(action.kind, ActionDrop::Malformed);
            return self.invalid(now, format!("{} action does not decode", registered.name));
        }
        if self.per_kind[kind].admit(now) != Admit::Accept {
            ctx.stats
                .count_action_drop(action.kind, ActionDrop::RateLimited);
            return Ok(None);
        }
        Ok(Some(action))
    }

    fn invalid(
        &mut self,
        now: std::time::Instant,
        detail: String,
    ) -> Result<Option<Action>, Ending> {
        match self.invalid.admit(now) {
            Admit::Accept => Ok(None),
            Admit::Drop | Admit::Kick => Err(Ending::Close(
                CloseReason::InvalidActions,
                format!("too many invalid actions; the last: {detail}"),
            )),
        }
    }
}

/// Resolves once shutdown has been requested.
pub(crate) async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // A closed channel means the server is gone: stop as well.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// Acts on one admitted message of an open session; `Err` ends the session. `blocked` is set
/// when a reply is waiting for the socket.
fn handle(
    message: ClientMessage,
    egress: &Egress,
    id: ConnectionId,
    ctx: &NetContext,
    blocked: &mut bool,
) -> Result<(), Ending> {
    match message {
        ClientMessage::Input(input) => queue_for_tick(PlayerMessage::Input(input), id, ctx),
        ClientMessage::Action(action) => queue_for_tick(PlayerMessage::Action(action), id, ctx),
        ClientMessage::Ping { nonce } => {
            let mut buffer = [0u8; 16];
            let Ok(body) = postcard::to_slice(&ServerMessage::Pong { nonce }, &mut buffer[4..])
            else {
                return Ok(());
            };
            let length = body.len();
            buffer[..4].copy_from_slice(&(length as u32).to_le_bytes());
            // Between frames, never inside one. A client that pings without reading gets no
            // more pongs once a few are waiting (its socket is full; it will be kicked as a
            // slow reader).
            if egress.queue_control(&buffer[..4 + length]) {
                Stats::bump(&ctx.stats.pongs);
            }
            if !*blocked {
                *blocked = flush_now(egress, &ctx.stats)?;
            }
            Ok(())
        }
        ClientMessage::Goodbye => Err(Ending::ClientLeft),
        ClientMessage::Hello(_) => Err(Ending::Close(
            CloseReason::DuplicateHello,
            "Hello on an open session".into(),
        )),
    }
}
