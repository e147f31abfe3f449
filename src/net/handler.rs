//! One task per connection: it drives the connection's [`Session`] with what its
//! [`Connection`] reads and the time, and carries out the session's answers. In order: the
//! handshake (bounded by `handshake_timeout`), a player slot, the login (persistence's
//! [`Logins`](crate::persistence::login::Logins)), the join, the Welcome, then the open
//! session until something ends it, then the leave.
//!
//! The tick's frames are written by the flush tasks (`super::flush`); this task writes only
//! what they hand over (a full socket, a busy lock), pongs and the last message. Every bad
//! input ends in a defined refusal or close with a reason, sent to the client and counted;
//! nothing here can panic on peer data or block the tick.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::NetContext;
use super::admission::{HandshakePlace, PlayerSlot, source};
use super::connection::{CLOSE_WRITE_TIMEOUT, Connection, Received, WS_CLOSE_NORMAL, ws_close_for};
use super::egress::{Egress, Flushed};
use super::flush::Registration;
use super::session::{Credentials, Ending, Last, Session, Step};
use crate::bridge::{
    ConnectionId, Held, InputEvent, InputOutcome, Join, Leave, Lifecycle, PlayerMessage, outbox,
};
use crate::persistence::login::LoggedIn;
use crate::protocol::{CloseReason, Refusal, ServerMessage, encode_frame_into, frame_bytes};
use crate::stats::{ActionDrop, Stats};

/// Counts a joined player by transport for as long as its session runs.
struct Playing<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Playing<'a> {
    fn new(stats: &'a Stats, transport: super::Transport) -> Self {
        let counter = match transport {
            super::Transport::Tcp => &stats.players_tcp,
            super::Transport::WebSocket => &stats.players_websocket,
        };
        Stats::bump(counter);
        Self(counter)
    }
}

impl Drop for Playing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Counts a live connection task (and a WebSocket one by itself) for as long as it exists.
struct LiveTask(Arc<NetContext>, super::Transport);

impl Drop for LiveTask {
    fn drop(&mut self) {
        let stats = &self.0.stats;
        stats
            .connections_live
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if self.1 == super::Transport::WebSocket {
            stats
                .websocket_sessions_live
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Sets a player socket's options: no Nagle delay (frames go out as they are written) and
/// the configured kernel send buffer.
pub(crate) fn tune_socket(stream: &TcpStream, ctx: &NetContext) {
    let _ = stream.set_nodelay(true);
    if ctx.send_buffer_bytes > 0 {
        let _ = socket2::SockRef::from(stream).set_send_buffer_size(ctx.send_buffer_bytes as usize);
    }
}

/// Serves one accepted TCP connection until it ends (see [`serve`]). A plain function
/// returning `serve`'s future, not an `async fn` around it: the spawned task is then exactly
/// that future, without a second copy of the arguments (the task lives as long as the
/// player, so its size is per-player memory).
pub(crate) fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnectionId,
    pending: HandshakePlace,
    ctx: Arc<NetContext>,
) -> impl Future<Output = ()> + Send {
    tune_socket(&stream, &ctx);
    let connection = Connection::tcp(stream, ctx.max_inbound_frame_bytes, ctx.stats.clone());
    serve(connection, peer, id, pending, ctx)
}

/// Serves one connection (TCP, or WebSocket after its upgrade) until it ends. `pending` is
/// its place among the pending handshakes, given back once it has logged in (or failed to);
/// a player slot is taken only after a valid Hello.
///
/// The task lives as long as the player, so its size is per-player memory: only what the
/// open session needs stays in it. The handshake with the login (and a refusal's last
/// write) and the session's ending run in boxed futures, allocated only while they run; a
/// plain function returning an `async move` block, because an `async fn` keeps a second copy
/// of its arguments for the whole task (measured with `-Zprint-type-sizes`: tokio's task cell
/// went from 1,920 to 1,408 bytes).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep a second copy of its arguments (see above)"
)]
pub(crate) fn serve(
    mut connection: Connection,
    peer: SocketAddr,
    id: ConnectionId,
    pending: HandshakePlace,
    ctx: Arc<NetContext>,
) -> impl Future<Output = ()> + Send {
    async move {
        let transport = connection.transport();
        Stats::bump(&ctx.stats.connections_live);
        if transport == super::Transport::WebSocket {
            Stats::bump(&ctx.stats.websocket_sessions_live);
        }
        let _live = LiveTask(ctx.clone(), transport);
        let mut session = Session::new(
            ctx.session.clone(),
            ctx.actions.clone(),
            ctx.stats.clone(),
            Instant::now().into_std(),
        );
        let Some((player, slot)) = Box::pin(admit_or_refuse(
            &mut connection,
            &mut session,
            peer,
            pending,
            &ctx,
        ))
        .await
        else {
            return;
        };

        let (egress, _registration, name, joined) =
            open_and_join(&mut connection, player, id, &ctx);
        let ending = if joined {
            tracing::info!(connection = id, %name, transport = transport.as_str(), "player joined");
            let _playing = Playing::new(&ctx.stats, transport);
            play(&mut connection, &mut session, &egress, id, &ctx).await
        } else {
            Ending::close(CloseReason::Shutdown, "server stopping")
        };
        Box::pin(end_open(
            ending,
            &mut session,
            &egress,
            id,
            &name,
            transport,
            &ctx,
        ))
        .await;
        ctx.inbound.send_lifecycle(Lifecycle::Leave(Leave {
            connection: id,
            slot: Some(Held::new(slot)),
        }));
    }
}

/// The handshake and the login ([`admit`]): the player and its slot, or `None` once the
/// refusal (if any) has been written.
async fn admit_or_refuse(
    connection: &mut Connection,
    session: &mut Session,
    peer: SocketAddr,
    pending: HandshakePlace,
    ctx: &NetContext,
) -> Option<(LoggedIn, PlayerSlot)> {
    let logged_in = admit(connection, session, peer, ctx).await;
    // Logged in or refused: no longer a pending handshake.
    drop(pending);
    match logged_in {
        Ok(logged_in) => return Some(logged_in),
        Err(Ending::Close(reason, detail)) => {
            let last = session.end();
            count_last(&ctx.stats, last, reason);
            // Debug, not info: a flood of refused sockets must not become a flood of log
            // lines (they are counted by reason in the metrics).
            tracing::debug!(reason = reason.as_str(), %detail, "connection refused");
            let refusal = Refusal { reason, detail };
            let message = last_message(last, refusal);
            connection
                .write_last(Some(&message), ws_close_for(reason))
                .await;
        }
        Err(Ending::Fault {
            reason,
            code,
            detail,
        }) => {
            count_last(&ctx.stats, session.end(), reason);
            tracing::debug!(reason = reason.as_str(), code, %detail, "websocket refused");
            connection.write_last(None, (code, "")).await;
        }
        // A session that never opened has no player to hand off.
        Err(Ending::ClientLeft | Ending::Transfer) => {
            connection.write_last(None, WS_CLOSE_NORMAL).await;
        }
        Err(Ending::Broken) => {}
    }
    None
}

/// Opens the session's output (its [`Egress`], registered with the flush tasks) and sends the
/// player's join to the tick. Not async, so that the login's result, consumed here, takes no
/// room in the task for the rest of the session. Also returns the player's name and whether
/// the tick took the join (not if it has stopped).
fn open_and_join(
    connection: &mut Connection,
    player: LoggedIn,
    id: ConnectionId,
    ctx: &Arc<NetContext>,
) -> (Arc<Egress>, Registration, String, bool) {
    let (writer, reader) = outbox(ctx.outbound_buffers);
    let egress = connection
        .open(reader)
        .expect("the session opens once, after the handshake");
    let registration = ctx.flushes.register(id, egress.clone());
    let name = player.name.clone();
    let join = Join {
        connection: id,
        name: player.name,
        outbox: writer,
        saved: player.saved,
        name_claim: Some(Held::new(player.name_claim)),
        ack_seq: player.ack_seq,
    };
    let joined = ctx.inbound.send_lifecycle(Lifecycle::Join(Box::new(join)));
    (egress, registration, name, joined)
}

/// The joined player's session: the Welcome, then the open session, until something ends it.
async fn play(
    connection: &mut Connection,
    session: &mut Session,
    egress: &Egress,
    id: ConnectionId,
    ctx: &NetContext,
) -> Ending {
    // Welcome is the first message of a session, always: nothing the client sent after
    // its Hello is read, let alone answered, before the Welcome has been written.
    if let Err(ending) = await_welcome(egress, ctx).await {
        return ending;
    }
    session.opened(Instant::now().into_std());
    let Err(ending) = open_session(connection, session, egress, id, ctx).await;
    ending
}

/// Ends an open session the way `ending` says: the Transfer of a handed-off player (or the
/// Close if its save did not commit in time), the last message, the WebSocket close.
async fn end_open(
    ending: Ending,
    session: &mut Session,
    egress: &Egress,
    id: ConnectionId,
    name: &str,
    transport: super::Transport,
    ctx: &NetContext,
) {
    // A handoff whose save did not commit in time ends like any other close by the server.
    let ending = match ending {
        Ending::Transfer => send_transfer(egress, &ctx.stats, id, name).await,
        other => other,
    };
    let last = session.end();
    match ending {
        Ending::Close(reason, detail) => {
            tracing::info!(connection = id, %name, reason = reason.as_str(), %detail, "closing player");
            count_last(&ctx.stats, last, reason);
            let message = frame_bytes(&last_message(last, Refusal { reason, detail }));
            close_open(egress, &ctx.stats, &message, ws_close_for(reason)).await;
        }
        Ending::Fault {
            reason,
            code,
            detail,
        } => {
            tracing::info!(connection = id, %name, reason = reason.as_str(), code, %detail, "closing player");
            count_last(&ctx.stats, last, reason);
            close_open(egress, &ctx.stats, &[], (code, "")).await;
        }
        // Sent by `send_transfer` above.
        Ending::Transfer => {}
        Ending::ClientLeft => {
            tracing::info!(connection = id, %name, "player left");
            if transport == super::Transport::WebSocket {
                close_open(egress, &ctx.stats, &[], WS_CLOSE_NORMAL).await;
            }
        }
        Ending::Broken => tracing::info!(connection = id, %name, "player connection broke"),
    }
}

/// The handshake, then the login: the player and its slot, or how the connection ends.
async fn admit(
    connection: &mut Connection,
    session: &mut Session,
    peer: SocketAddr,
    ctx: &NetContext,
) -> Result<(LoggedIn, PlayerSlot), Ending> {
    let mut shutdown = ctx.shutdown.clone();
    let hello = tokio::select! {
        hello = handshake(connection, session) => hello?,
        _ = stopping(&mut shutdown) => {
            return Err(Ending::close(CloseReason::Shutdown, "server stopping"));
        }
    };
    log_in(hello, source(peer.ip()), ctx).await
}

/// Reads until the session has its Hello (or Resume), or its handshake time is up.
async fn handshake(
    connection: &mut Connection,
    session: &mut Session,
) -> Result<Credentials, Ending> {
    loop {
        let deadline = session
            .deadline()
            .expect("a session in its handshake has a deadline");
        let message =
            match tokio::time::timeout_at(Instant::from_std(deadline), connection.read_message())
                .await
            {
                Ok(message) => message?,
                Err(_elapsed) => match session.timed_out(Instant::now().into_std()) {
                    Some(ending) => return Err(ending),
                    None => continue,
                },
            };
        if let Step::LogIn(hello) = session.receive(message, Instant::now().into_std())? {
            return Ok(hello);
        }
    }
}

/// A player slot for the connection, then its login (or its handoff ticket's redemption).
async fn log_in(
    credentials: Credentials,
    from: IpAddr,
    ctx: &NetContext,
) -> Result<(LoggedIn, PlayerSlot), Ending> {
    let slot = player_slot(from, ctx)?;
    let player = match credentials {
        Credentials::Hello(hello) => ctx.logins.log_in(hello, from).await,
        Credentials::Ticket(ticket) => ctx.logins.resume(&ticket).await,
    }
    .map_err(|refused| Ending::Close(refused.reason, refused.detail))?;
    Ok((player, slot))
}

/// A player slot for a connection from `address` that sent a valid Hello: one of
/// `max_players` (`ServerFull`) and one of its address's `max_players_per_addr`
/// (`AddressLimit`).
fn player_slot(address: IpAddr, ctx: &NetContext) -> Result<PlayerSlot, Ending> {
    let Ok(slot) = ctx.slots.clone().try_acquire_owned() else {
        return Err(Ending::close(
            CloseReason::ServerFull,
            format!("server holds {} players", ctx.max_players),
        ));
    };
    let Some(address) = ctx.players_per_addr.take(address) else {
        return Err(Ending::close(
            CloseReason::AddressLimit,
            "this address has the most players it may have",
        ));
    };
    Ok(PlayerSlot {
        _slot: slot,
        _address: address,
    })
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
        if !blocked && egress.waker().has_transfer() {
            // Handed off to another zone in the tick it joined (its saved position is there).
            return Err(Ending::Transfer);
        }
        if !blocked && let Some(reason) = egress.waker().requested_close() {
            // Closed before the tick published a Welcome (the tick died, or a stuck tick
            // was bypassed at shutdown): the session never opened.
            return Err(server_close(
                egress,
                reason,
                "closed by the server before the Welcome",
            ));
        }
        tokio::select! {
            _ = egress.waker().woken() => {}
            ready = egress.writable(), if blocked => ready.map_err(|_| Ending::Broken)?,
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Ending::close(
                    CloseReason::InternalError,
                    format!("no Welcome from the tick within {WELCOME_TIMEOUT:?}"),
                ));
            }
        }
    }
}

/// The open session: messages in, frames out, until something ends it. The tick's frames
/// are normally written by the flush tasks; this task writes only when woken (a full socket,
/// a busy lock, a close) and then never waits for the socket while it could read: a client
/// that stops reading is still heard, and still kicked.
async fn open_session(
    connection: &mut Connection,
    session: &mut Session,
    egress: &Egress,
    id: ConnectionId,
    ctx: &NetContext,
) -> Result<Infallible, Ending> {
    let mut read_at = Instant::now();
    // Re-armed only when it fires (at most once per idle timeout), not on every message:
    // resetting a timer per input would touch the runtime's timer wheel 20 times a second
    // per player.
    let idle = tokio::time::sleep_until(next_deadline(session));
    tokio::pin!(idle);
    let mut blocked = false;
    // A close the tick asked for together with the Welcome (a join during shutdown) may
    // have rung the doorbell before the Welcome was written.
    closed_by_server(egress)?;
    loop {
        // Everything already buffered first (frames pipelined behind the Hello included).
        {
            let _zone = crate::profiling::zone!("decode");
            while let Some(received) = connection.buffered()? {
                let message = match received {
                    Received::Message(message) => message,
                    Received::Ping(ping) => {
                        // A WebSocket ping: answered like a protocol ping, between frames.
                        egress.queue_wire(&ping.pong());
                        if !blocked {
                            blocked = flush_now(egress, &ctx.stats)?;
                        }
                        continue;
                    }
                };
                match session.receive(message, read_at.into_std())? {
                    Step::ToTick(message) => queue_for_tick(message, id, ctx)?,
                    Step::Pong(nonce) => pong(nonce, egress, &ctx.stats, &mut blocked)?,
                    Step::Nothing | Step::LogIn(_) => {}
                }
            }
        }
        // Shutdown reaches an open session through its outbox (the tick closes every
        // client), not through a channel shared by all connections: a shared waiter list
        // would be locked and unlocked by every connection on every loop iteration.
        tokio::select! {
            biased;
            _ = egress.waker().woken() => {
                // Frames queued before a close still go out first, as far as the socket
                // takes them now (the close itself waits at most CLOSE_WRITE_TIMEOUT).
                blocked = flush_now(egress, &ctx.stats)?;
                closed_by_server(egress)?;
            }
            ready = egress.writable(), if blocked => {
                ready.map_err(|_| Ending::Broken)?;
                blocked = flush_now(egress, &ctx.stats)?;
            }
            filled = connection.fill() => {
                filled?;
                read_at = Instant::now();
            }
            _ = &mut idle => {
                if let Some(ending) = session.timed_out(Instant::now().into_std()) {
                    return Err(ending);
                }
                idle.as_mut().reset(next_deadline(session));
            }
        }
    }
}

/// The session's next deadline as a tokio instant (an hour away if it has none).
fn next_deadline(session: &Session) -> Instant {
    session.deadline().map_or_else(
        || Instant::now() + Duration::from_secs(3600),
        Instant::from_std,
    )
}

/// `Err` if the tick asked this session to close (or handed the player off).
fn closed_by_server(egress: &Egress) -> Result<(), Ending> {
    if egress.waker().has_transfer() {
        return Err(Ending::Transfer);
    }
    match egress.waker().requested_close() {
        Some(reason) => Err(server_close(egress, reason, "closed by the server")),
        None => Ok(()),
    }
}

/// The ending of a close the server asked for: the detail given with it (an operator's
/// kick reason), else `what` and the reason.
fn server_close(egress: &Egress, reason: CloseReason, what: &str) -> Ending {
    let detail = egress
        .waker()
        .close_detail()
        .unwrap_or_else(|| format!("{what}: {}", reason.as_str()));
    Ending::close(reason, detail)
}

/// Answers a Ping, between frames, never inside one. A client that pings without reading
/// gets no more pongs once a few are waiting (its socket is full; it will be kicked as a
/// slow reader). `blocked` is set when the answer waits for the socket.
fn pong(nonce: u64, egress: &Egress, stats: &Stats, blocked: &mut bool) -> Result<(), Ending> {
    let mut buffer = [0u8; 16];
    let Some(frame) = encode_frame_into(&ServerMessage::Pong { nonce }, &mut buffer) else {
        return Ok(());
    };
    if egress.queue_message(frame) {
        Stats::bump(&stats.pongs);
    }
    if !*blocked {
        *blocked = flush_now(egress, stats)?;
    }
    Ok(())
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
            return Err(Ending::close(CloseReason::Shutdown, "server stopping"));
        }
    }
    Ok(())
}

/// A Reject or a Close carrying `refusal`.
fn last_message(last: Last, refusal: Refusal) -> ServerMessage {
    match last {
        Last::Reject => ServerMessage::Reject(refusal),
        Last::Close => ServerMessage::Close(refusal),
    }
}

/// Counts a last message by reason, in the metric of its kind.
fn count_last(stats: &Stats, last: Last, reason: CloseReason) {
    match last {
        Last::Reject => stats.count_reject(reason),
        Last::Close => stats.count_kick(reason),
    }
}

/// How long a handed-off player's connection waits for its final record to be committed
/// before it gives up and closes (the store is down or far behind).
const HANDOFF_SAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The player walked into another zone: once its final record (with the ticket's nonce) is
/// committed, the client gets the Transfer and the socket closes (`Ending::Transfer`:
/// done). Sending the ticket before the commit would let the destination look for a nonce
/// that is not in the store yet. If the commit does not come in time, the connection ends
/// with the `Close` this returns instead.
async fn send_transfer(egress: &Egress, stats: &Stats, id: ConnectionId, name: &str) -> Ending {
    let Some(transfer) = egress.waker().take_transfer() else {
        // A kick replaced the Transfer after this session saw it (see the outbox's close
        // note): end with that close rather than with nothing.
        return match egress.waker().requested_close() {
            Some(reason) => server_close(egress, reason, "closed by the server"),
            None => Ending::Transfer,
        };
    };
    let committed = tokio::time::timeout(HANDOFF_SAVE_TIMEOUT, transfer.committed).await;
    if matches!(committed, Ok(Ok(true))) {
        tracing::info!(connection = id, %name, to = %transfer.zone, "player handed off");
        Stats::bump(&stats.handoffs_out);
        close_open(egress, stats, &transfer.message, WS_CLOSE_NORMAL).await;
        return Ending::Transfer;
    }
    Stats::bump(&stats.handoff_failures);
    tracing::error!(connection = id, %name, to = %transfer.zone, "a handed-off player's state was not saved in time");
    Ending::close(
        CloseReason::InternalError,
        "your move to another zone could not be saved; log in again",
    )
}

/// Sends the last message of a connection whose output goes through its egress (`last`, a
/// whole TCP frame, or nothing; then, over WebSocket, a close frame with `ws_close`):
/// written after the frame in progress, and no frame follows it. Gives up after
/// `CLOSE_WRITE_TIMEOUT` and then resets the connection rather than leave unsendable bytes in
/// the kernel. The socket closes when the last holder of the egress drops it.
async fn close_open(egress: &Egress, stats: &Stats, last: &[u8], ws_close: (u16, &str)) {
    egress.close_with(last, ws_close);
    let flushed = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, flush_all(egress, stats)).await;
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

/// Resolves once shutdown has been requested.
pub(crate) async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // A closed channel means the server is gone: stop as well.
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}
