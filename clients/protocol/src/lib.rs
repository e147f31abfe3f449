//! Wire types: what travels between clients and the server, and the byte-level helpers the
//! replication encoder uses to write the same layout without building these types.
//!
//! Every message is one *frame*: a 4-byte little-endian length, then that many bytes of
//! postcard-encoded [`ClientMessage`] or [`ServerMessage`]. docs/PROTOCOL.md is the full,
//! language-neutral description; this module is its executable form.
//!
//! Architecture invariant: these types exist only at the boundary. ECS components are not
//! wire types, and `components`/`systems` never see this module.
//!
//! # Layout
//! - this file: the message types, varints and the frame prefix.
//! - [`framing`]: bytes to frames, sans I/O (server and clients).
//! - [`visit`]: zero-allocation reading of state frame bytes (what mirrors apply).
#![warn(missing_docs, unreachable_pub)]

pub mod framing;
pub mod visit;
pub mod websocket;

use serde::{Deserialize, Serialize};

/// Version a client must announce in [`Hello`].
pub const PROTOCOL_VERSION: u16 = 3;

/// Bytes of the length prefix in front of every frame.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Positions on the wire are integers: world units times this (precision 1/8 unit).
pub const POSITION_SCALE: f32 = 8.0;

/// Longest accepted player name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 32;

/// Shortest and longest accepted secret, in bytes of UTF-8.
pub const SECRET_BYTES: std::ops::RangeInclusive<usize> = 8..=64;

/// Messages a client sends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum ClientMessage {
    /// Must be the first message; answered by [`ServerMessage::Welcome`] or
    /// [`ServerMessage::Reject`].
    Hello(Hello),
    /// A movement request; the latest one per tick wins.
    Input(Input),
    /// Answered by [`ServerMessage::Pong`] with the same nonce.
    Ping {
        /// Echoed back unchanged.
        nonce: u64,
    },
    /// The client is leaving; the server closes the connection and despawns the player.
    Goodbye,
    /// A player action of a kind the game registered (throw, pick up, chat, ...).
    Action(Action),
    /// Instead of [`Hello`], as the first message: opens a session on the zone server a
    /// [`ServerMessage::Transfer`] named, with its single-use ticket.
    Resume(Resume),
}

/// Number of [`ClientMessage`] variants: a first varint at or above this is an unknown type.
pub const CLIENT_MESSAGE_KINDS: u32 = 6;

/// Opens a session with a handoff ticket (see [`ServerMessage::Transfer`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// Must equal [`PROTOCOL_VERSION`].
    pub protocol_version: u16,
    /// The ticket exactly as the Transfer carried it (opaque to the client).
    pub ticket: Vec<u8>,
}

/// A player action: one of the game's registered action kinds, with its value.
///
/// Actions share the sequence space of [`Input`]: a client numbers inputs and actions from
/// one counter, and [`StateFrame::ack_seq`] acknowledges whichever came last.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// Client-chosen sequence number (shared with inputs).
    pub seq: u32,
    /// Index into [`Schema::actions`].
    pub kind: u16,
    /// The action's value, postcard-encoded as the game's type for this kind.
    pub bytes: Vec<u8>,
}

/// Opens a session.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Must equal [`PROTOCOL_VERSION`].
    pub protocol_version: u16,
    /// Display name, 1 to [`MAX_NAME_BYTES`] bytes of letters, digits, `_` or `-`.
    pub name: String,
    /// The name's secret ([`SECRET_BYTES`] long): the first login of a name claims it with
    /// this secret; later logins must present the same one. A client generates a random
    /// token once and keeps it.
    pub secret: String,
}

/// Movement input: the direction `(dir_x, dir_y) / 127`, normalised by the server; zero
/// stands still.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Input {
    /// Client-chosen sequence number, echoed as [`StateFrame::ack_seq`] once processed.
    pub seq: u32,
    /// Direction, x component, -127..=127.
    pub dir_x: i8,
    /// Direction, y component, -127..=127.
    pub dir_y: i8,
}

/// Messages the server sends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum ServerMessage {
    /// The session is open; frames follow, one per tick.
    Welcome(Welcome),
    /// The session was refused before it opened; the server closes the socket after it.
    Reject(Refusal),
    /// The state of the client's view this tick.
    Frame(StateFrame),
    /// Answer to [`ClientMessage::Ping`].
    Pong {
        /// The nonce of the ping.
        nonce: u64,
    },
    /// The server ends an open session; the socket closes after it.
    Close(Refusal),
    /// The player walked into another zone's part of the world (zone servers only): connect
    /// to `address` and send [`ClientMessage::Resume`] with `ticket` (single use, valid for
    /// 30 seconds). The player's state is saved; the socket closes after this message.
    Transfer(Transfer),
}

/// Where a player continues (see [`ServerMessage::Transfer`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The destination zone's name.
    pub zone: String,
    /// Its game listener, `HOST:PORT` (TCP).
    pub address: String,
    /// Its web listener's WebSocket URL (`ws://HOST:PORT/ws`), empty if it has none.
    pub websocket: String,
    /// The signed, single-use ticket to present there.
    pub ticket: Vec<u8>,
}

/// Index of [`ServerMessage::Frame`] in the enum: the first byte of every state frame body.
pub const SERVER_FRAME_KIND: u8 = 2;

/// Session parameters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Welcome {
    /// Entity id of this client's own player, as used in frames.
    pub player_id: u32,
    /// Ticks (and frames) per second.
    pub tick_hz: u16,
    /// Side of the square world in units.
    pub world_size: f32,
    /// Interest radius in units: a client sees exactly the entities whose wire position is
    /// at most `round(interest_radius * position_scale)` wire units from its own.
    pub interest_radius: f32,
    /// Side of a grid cell in units.
    pub cell_size: f32,
    /// Every entity a client sees is in a cell at most this many cells away on both axes
    /// from its own cell (the square of `2 * view_cells + 1` cells the server searches).
    pub view_cells: u32,
    /// Wire positions are world units times this.
    pub position_scale: f32,
    /// Largest frame the server will send, header included.
    pub max_frame_bytes: u32,
    /// The game's stable names for what travels on the wire: a kind is an index here.
    pub schema: Schema,
    /// A client that sends nothing (no input, no ping) for this long is closed with
    /// [`CloseReason::IdleTimeout`]: an idle client pings well within it.
    pub idle_timeout_ms: u32,
    /// Inputs and pings per second the server accepts from one client; beyond it (and a
    /// small burst) they are dropped, and a client that keeps it up is closed with
    /// [`CloseReason::InputFlood`].
    pub max_inputs_per_s: u32,
}

/// The names a game registered, in kind order: what a client in any language needs to map
/// kinds on the wire to the game's types. Names are chosen at registration (never Rust type
/// names), so renaming a type changes nothing on the wire or in the database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Schema {
    /// Replicated components ([`ComponentValue::kind`]).
    pub components: Vec<String>,
    /// Player actions a client may send ([`Action::kind`]).
    pub actions: Vec<String>,
    /// Server events a client may receive ([`Event::kind`]).
    pub events: Vec<String>,
}

impl Schema {
    /// Kind index of the replicated component registered as `name`.
    pub fn component_kind(&self, name: &str) -> Option<u16> {
        kind_of(&self.components, name)
    }

    /// Kind index of the action registered as `name`.
    pub fn action_kind(&self, name: &str) -> Option<u16> {
        kind_of(&self.actions, name)
    }

    /// Kind index of the event registered as `name`.
    pub fn event_kind(&self, name: &str) -> Option<u16> {
        kind_of(&self.events, name)
    }
}

fn kind_of(names: &[String], name: &str) -> Option<u16> {
    let index = names.iter().position(|n| n == name)?;
    u16::try_from(index).ok()
}

/// Why a session was refused or closed, with a human-readable detail.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable reason.
    pub reason: CloseReason,
    /// Free text for logs and humans.
    pub detail: String,
}

/// Why the server refused or closed a session.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The server holds its maximum number of players.
    ServerFull,
    /// [`Hello::protocol_version`] differs from [`PROTOCOL_VERSION`].
    VersionMismatch,
    /// The first message was not a [`Hello`].
    ExpectedHello,
    /// A second [`Hello`] on an open session.
    DuplicateHello,
    /// A frame's length prefix exceeds the server's inbound limit.
    FrameTooLarge,
    /// A frame's bytes do not decode as a message.
    Malformed,
    /// A frame names a message type this protocol version does not have.
    UnknownMessageType,
    /// The player name is empty, too long or has characters outside `[A-Za-z0-9_-]`.
    InvalidName,
    /// No Hello within the handshake timeout.
    HandshakeTimeout,
    /// The server is shutting down.
    Shutdown,
    /// A frame for this client would exceed the server's outbound frame limit.
    ViewTooLarge,
    /// The client sent nothing (no input, no ping) for [`Welcome::idle_timeout_ms`].
    IdleTimeout,
    /// The client kept sending above [`Welcome::max_inputs_per_s`].
    InputFlood,
    /// The client took no frame at all for too long (it stopped reading its socket).
    SlowReader,
    /// The server failed (a gameplay system panicked, the store failed) and is exiting or
    /// cannot serve this login.
    InternalError,
    /// The name is claimed with another secret, or the secret is not 8 to 64 bytes.
    BadCredentials,
    /// The name is logged in already (or its last session is still being saved).
    AlreadyOnline,
    /// The client fell so far behind that the server-side events kept for it exceeded their
    /// bound (events are never dropped silently: the session ends instead).
    EventBacklog,
    /// The client kept sending actions that are unknown, malformed or over their size.
    InvalidActions,
    /// Too many failed logins for this name or from this address lately: the login was not
    /// tried (see the server's login throttling policy).
    TooManyFailedLogins,
    /// The server holds its maximum of connections that have not logged in yet (pending
    /// handshakes); players already in are not affected. Retry later.
    HandshakesFull,
    /// The client's source address holds its maximum of pending handshakes or of players.
    AddressLimit,
    /// An operator closed the session (the console's kick); the detail is the operator's
    /// reason.
    Kicked,
    /// A [`Resume`] ticket that is not one a zone of this world signed (forged, damaged, or
    /// signed with another world's secret).
    TicketInvalid,
    /// A [`Resume`] ticket past its expiry: log in again with [`Hello`].
    TicketExpired,
    /// A [`Resume`] ticket that was used already (or cancelled by a login since).
    TicketUsed,
    /// A [`Resume`] ticket for another zone than this server's.
    TicketWrongZone,
}

impl CloseReason {
    /// Every reason, in wire order (for per-reason counters).
    pub const ALL: [CloseReason; 27] = [
        CloseReason::ServerFull,
        CloseReason::VersionMismatch,
        CloseReason::ExpectedHello,
        CloseReason::DuplicateHello,
        CloseReason::FrameTooLarge,
        CloseReason::Malformed,
        CloseReason::UnknownMessageType,
        CloseReason::InvalidName,
        CloseReason::HandshakeTimeout,
        CloseReason::Shutdown,
        CloseReason::ViewTooLarge,
        CloseReason::IdleTimeout,
        CloseReason::InputFlood,
        CloseReason::SlowReader,
        CloseReason::InternalError,
        CloseReason::BadCredentials,
        CloseReason::AlreadyOnline,
        CloseReason::EventBacklog,
        CloseReason::InvalidActions,
        CloseReason::TooManyFailedLogins,
        CloseReason::HandshakesFull,
        CloseReason::AddressLimit,
        CloseReason::Kicked,
        CloseReason::TicketInvalid,
        CloseReason::TicketExpired,
        CloseReason::TicketUsed,
        CloseReason::TicketWrongZone,
    ];

    /// Position in [`CloseReason::ALL`], which is also the wire index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Snake-case name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ServerFull => "server_full",
            CloseReason::VersionMismatch => "version_mismatch",
            CloseReason::ExpectedHello => "expected_hello",
            CloseReason::DuplicateHello => "duplicate_hello",
            CloseReason::FrameTooLarge => "frame_too_large",
            CloseReason::Malformed => "malformed",
            CloseReason::UnknownMessageType => "unknown_message_type",
            CloseReason::InvalidName => "invalid_name",
            CloseReason::HandshakeTimeout => "handshake_timeout",
            CloseReason::Shutdown => "shutdown",
            CloseReason::ViewTooLarge => "view_too_large",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::InputFlood => "input_flood",
            CloseReason::SlowReader => "slow_reader",
            CloseReason::InternalError => "internal_error",
            CloseReason::BadCredentials => "bad_credentials",
            CloseReason::AlreadyOnline => "already_online",
            CloseReason::EventBacklog => "event_backlog",
            CloseReason::InvalidActions => "invalid_actions",
            CloseReason::TooManyFailedLogins => "too_many_failed_logins",
            CloseReason::HandshakesFull => "handshakes_full",
            CloseReason::AddressLimit => "address_limit",
            CloseReason::Kicked => "kicked",
            CloseReason::TicketInvalid => "ticket_invalid",
            CloseReason::TicketExpired => "ticket_expired",
            CloseReason::TicketUsed => "ticket_used",
            CloseReason::TicketWrongZone => "ticket_wrong_zone",
        }
    }
}

/// One tick of a client's view. Apply in order: `removed`, then `spawned`, then `updated`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct StateFrame {
    /// Server tick this frame describes.
    pub tick: u32,
    /// Seq of the latest input or action of this client processed up to and including this
    /// tick (0: none).
    pub ack_seq: u32,
    /// When true the client must forget every entity before applying this frame
    /// (a resynchronisation after frames to it were dropped).
    pub reset: bool,
    /// Server events for this client sent during this tick (after a resynchronisation, also
    /// those of the dropped frames), in the order they were sent.
    pub events: Vec<Event>,
    /// Entities that left the view (or the world).
    pub removed: Vec<u32>,
    /// Entities that entered the view, with their full state.
    pub spawned: Vec<EntitySpawn>,
    /// Entities in view since the previous frame that changed.
    pub updated: Vec<EntityUpdate>,
}

/// Full state of an entity entering the view.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EntitySpawn {
    /// Entity id (unique among live entities; may be reused after removal).
    pub id: u32,
    /// Position x times [`POSITION_SCALE`], rounded.
    pub x: u32,
    /// Position y times [`POSITION_SCALE`], rounded.
    pub y: u32,
    /// Every replicated component the entity has.
    pub components: Vec<ComponentValue>,
}

/// Change of an entity the client already has.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EntityUpdate {
    /// Entity id.
    pub id: u32,
    /// Change of the wire x since the previous frame.
    pub dx: i32,
    /// Change of the wire y since the previous frame.
    pub dy: i32,
    /// The replicated components that changed (new values) or were removed.
    pub components: Vec<ComponentChange>,
}

/// What happened to one replicated component of an entity the client already has.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ComponentChange {
    /// The component was added or changed: its new value.
    Set(ComponentValue),
    /// The component of this kind (index into [`Schema::components`]) was removed.
    Removed(u16),
}

/// A server event: one of the game's registered event kinds, with its value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Index into [`Schema::events`].
    pub kind: u16,
    /// The event's value, postcard-encoded as the game's type for this kind.
    pub bytes: Vec<u8>,
}

/// A replicated component's value: postcard bytes of the registered type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ComponentValue {
    /// Index into [`Schema::components`].
    pub kind: u16,
    /// The component, postcard-encoded.
    pub bytes: Vec<u8>,
}

/// Converts a world coordinate to its wire integer.
pub fn quantize(coordinate: f32) -> u32 {
    (coordinate * POSITION_SCALE).round().max(0.0) as u32
}

/// Converts a wire integer back to world units.
pub fn dequantize(wire: u32) -> f32 {
    wire as f32 / POSITION_SCALE
}

/// Appends `value` as an unsigned LEB128 varint (postcard's integer encoding).
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Longest LEB128 varint of a u64, in bytes.
pub const MAX_VARINT_BYTES: usize = 10;

/// Writes `value` as an unsigned LEB128 varint at the start of `out` (at least
/// [`MAX_VARINT_BYTES`] long, or as long as the value needs); returns its length. For
/// writers that assemble a record in a fixed buffer before appending it whole.
#[inline]
pub fn put_varint_into(out: &mut [u8], mut value: u64) -> usize {
    let mut length = 0;
    while value >= 0x80 {
        out[length] = (value as u8) | 0x80;
        value >>= 7;
        length += 1;
    }
    out[length] = value as u8;
    length + 1
}

/// Appends a signed value as a zigzag varint (postcard's signed integer encoding).
#[inline]
pub fn put_signed_varint(out: &mut Vec<u8>, value: i64) {
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Reads a varint from the front of `bytes`: `(value, bytes used)`, or `None` if truncated
/// or longer than 10 bytes.
pub fn take_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Starts a frame in `out`: reserves the length prefix. Finish with [`finish_frame`].
#[inline]
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    start
}

/// Writes the length prefix of the frame begun at `start`.
#[inline]
pub fn finish_frame(out: &mut [u8], start: usize) {
    let body = (out.len() - start - FRAME_HEADER_BYTES) as u32;
    out[start..start + FRAME_HEADER_BYTES].copy_from_slice(&body.to_le_bytes());
}

/// Appends one whole frame (prefix and postcard body) carrying `message`.
pub fn encode_frame<T: Serialize>(message: &T, out: &mut Vec<u8>) {
    let start = begin_frame(out);
    let body = std::mem::take(out);
    let mut body = postcard::to_extend(message, body).expect("writing to a Vec cannot fail");
    finish_frame(&mut body, start);
    *out = body;
}

/// One whole frame carrying `message`, written at the start of `buffer` without allocating
/// (small control messages such as a Pong); `None` if it does not fit.
pub fn encode_frame_into<'a, T: Serialize>(message: &T, buffer: &'a mut [u8]) -> Option<&'a [u8]> {
    let length = postcard::to_slice(message, buffer.get_mut(FRAME_HEADER_BYTES..)?)
        .ok()?
        .len();
    buffer[..FRAME_HEADER_BYTES].copy_from_slice(&(length as u32).to_le_bytes());
    Some(&buffer[..FRAME_HEADER_BYTES + length])
}

/// One frame carrying `message`, in a fresh buffer (handshake and tests; not the tick path).
pub fn frame_bytes<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(message, &mut out);
    out
}

/// Why a frame body is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message type varint names no known message.
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// The bytes do not decode (truncated, bad varint, invalid UTF-8, trailing bytes...).
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// The close reason a server sends for this error.
    pub fn close_reason(&self) -> CloseReason {
        match self {
            DecodeError::UnknownType(_) => CloseReason::UnknownMessageType,
            DecodeError::Malformed(_) => CloseReason::Malformed,
        }
    }
}

/// Decodes a client frame body, telling unknown message types apart from other damage.
pub fn decode_client_message(body: &[u8]) -> Result<ClientMessage, DecodeError> {
    match take_varint(body) {
        Some((kind, _)) if kind >= u64::from(CLIENT_MESSAGE_KINDS) => {
            return Err(DecodeError::UnknownType(kind));
        }
        None => {
            return Err(DecodeError::Malformed(
                "empty or truncated message type".into(),
            ));
        }
        Some(_) => {}
    }
    decode_exact(body)
}

/// Decodes a server frame body (client side).
pub fn decode_server_message(body: &[u8]) -> Result<ServerMessage, DecodeError> {
    decode_exact(body)
}

fn decode_exact<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    let (message, rest) =
        postcard::take_from_bytes(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(message)
}

/// Checks a player name against the rules in [`Hello::name`].
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "name must be 1 to {MAX_NAME_BYTES} bytes, got {}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "name has a character outside [A-Za-z0-9_-]: {bad:?}"
        ));
    }
    Ok(())
}

/// The identity of a player name: names are unique regardless of ASCII case (`Ann` and
/// `ann` are one player, so nobody can pass for another by case), and shown as typed.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Checks a secret's length.
pub fn validate_secret(secret: &str) -> Result<(), String> {
    if SECRET_BYTES.contains(&secret.len()) {
        Ok(())
    } else {
        Err(format!(
            "secret must be {} to {} bytes, got {}",
            SECRET_BYTES.start(),
            SECRET_BYTES.end(),
            secret.len()
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_frame_encoded_into_a_slice_is_the_allocated_frame() {
        let pong = ServerMessage::Pong { nonce: u64::MAX };
        let mut buffer = [0u8; 16];
        let framed = encode_frame_into(&pong, &mut buffer).expect("fits");
        assert_eq!(framed, &frame_bytes(&pong)[..]);
        assert_eq!(encode_frame_into(&pong, &mut [0u8; 6]), None, "too small");
        assert_eq!(
            encode_frame_into(&pong, &mut [0u8; 2]),
            None,
            "not even the prefix"
        );
    }

    #[test]
    fn varints_match_postcard() {
        for value in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut ours = Vec::new();
            put_varint(&mut ours, u64::from(value));
            assert_eq!(ours, postcard::to_stdvec(&value).unwrap(), "{value}");
            assert_eq!(take_varint(&ours), Some((u64::from(value), ours.len())));
        }
        for value in [0i32, -1, 1, -64, 63, 64, i32::MIN, i32::MAX] {
            let mut ours = Vec::new();
            put_signed_varint(&mut ours, i64::from(value));
            assert_eq!(ours, postcard::to_stdvec(&value).unwrap(), "{value}");
        }
    }

    /// The byte examples of docs/PROTOCOL.md: each indented block (its hex digits; spaces
    /// and `|` only separate), in the order they appear.
    fn documented_examples() -> Vec<Vec<u8>> {
        let doc = include_str!("../../../docs/PROTOCOL.md");
        let mut blocks: Vec<String> = Vec::new();
        let mut in_block = false;
        for line in doc.lines() {
            let indented = line.starts_with("    ");
            if indented && !in_block {
                blocks.push(String::new());
            }
            if indented {
                blocks.last_mut().unwrap().push_str(line);
            }
            in_block = indented;
        }
        blocks
            .iter()
            .map(|block| {
                let hex: String = block
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != '|')
                    .collect();
                assert!(
                    hex.len().is_multiple_of(2),
                    "odd hex in docs/PROTOCOL.md: {block}"
                );
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
                    .collect()
            })
            .collect()
    }

    /// The byte examples in docs/PROTOCOL.md, checked: each is written out here and must be
    /// what the types encode, and the document must show exactly these, in this order.
    #[test]
    fn documented_examples_are_exact() {
        let mut examples: Vec<Vec<u8>> = Vec::new();
        let hello = ClientMessage::Hello(Hello {
            protocol_version: 3,
            name: "ann".into(),
            secret: "s3cret-token".into(),
        });
        let mut expected = vec![19, 0, 0, 0, 0x00, 0x03, 0x03, b'a', b'n', b'n', 0x0c];
        expected.extend_from_slice(b"s3cret-token");
        assert_eq!(frame_bytes(&hello), expected);
        examples.push(expected);

        let input = ClientMessage::Input(Input {
            seq: 1,
            dir_x: 127,
            dir_y: 0,
        });
        assert_eq!(frame_bytes(&input), [4, 0, 0, 0, 0x01, 0x01, 0x7f, 0x00]);
        examples.push(frame_bytes(&input));

        // The demo game's `Throw { dir_x: i8, dir_y: i8 }` is two raw bytes.
        let throw = postcard::to_stdvec(&(127i8, 0i8)).unwrap();
        assert_eq!(throw, [0x7f, 0x00]);
        let action = ClientMessage::Action(Action {
            seq: 5,
            kind: 0,
            bytes: throw,
        });
        assert_eq!(
            frame_bytes(&action),
            [6, 0, 0, 0, 0x04, 0x05, 0x00, 0x02, 0x7f, 0x00]
        );
        examples.push(frame_bytes(&action));

        let frame = ServerMessage::Frame(StateFrame {
            tick: 300,
            ack_seq: 2,
            reset: false,
            events: vec![],
            removed: vec![7],
            spawned: vec![],
            updated: vec![EntityUpdate {
                id: 3,
                dx: 40,
                dy: -40,
                components: vec![],
            }],
        });
        assert_eq!(
            frame_bytes(&frame),
            [
                14, 0, 0, 0, 0x02, 0xac, 0x02, 0x02, 0x00, 0x00, 0x01, 0x07, 0x00, 0x01, 0x03,
                0x50, 0x4f, 0x00
            ]
        );
        examples.push(frame_bytes(&frame));

        // The demo game's `Hit { thrower: u32, target: u32 }` is two varints; `score` a u32.
        let hit = postcard::to_stdvec(&(3u32, 9u32)).unwrap();
        assert_eq!(hit, [0x03, 0x09]);
        let score = postcard::to_stdvec(&1u32).unwrap();
        assert_eq!(score, [0x01]);
        let frame = ServerMessage::Frame(StateFrame {
            tick: 301,
            ack_seq: 5,
            reset: false,
            events: vec![Event {
                kind: 0,
                bytes: hit,
            }],
            removed: vec![],
            spawned: vec![],
            updated: vec![
                EntityUpdate {
                    id: 3,
                    dx: 40,
                    dy: 0,
                    components: vec![ComponentChange::Set(ComponentValue {
                        kind: 2,
                        bytes: score,
                    })],
                },
                EntityUpdate {
                    id: 9,
                    dx: 0,
                    dy: 0,
                    components: vec![ComponentChange::Removed(0)],
                },
            ],
        });
        #[rustfmt::skip]
        let expected = [
            27, 0, 0, 0,
            0x02, 0xad, 0x02, 0x05, 0x00, // Frame, tick 301, ack_seq 5, reset false
            0x01, 0x00, 0x02, 0x03, 0x09, // 1 event: kind 0 (hit), 2 bytes: thrower 3, target 9
            0x00, 0x00, // no removals, no spawns
            0x02, // 2 updates
            0x03, 0x50, 0x00, 0x01, 0x00, 0x02, 0x01, 0x01, // id 3, dx 40, dy 0, Set(score = 1)
            0x09, 0x00, 0x00, 0x01, 0x01, 0x00, // id 9, dx 0, dy 0, Removed(0: npc)
        ];
        assert_eq!(frame_bytes(&frame), expected);
        examples.push(expected.to_vec());

        let welcome = ServerMessage::Welcome(Welcome {
            player_id: 3,
            tick_hz: 20,
            world_size: 1000.0,
            interest_radius: 50.0,
            cell_size: 50.0,
            view_cells: 1,
            position_scale: 8.0,
            max_frame_bytes: 1 << 20,
            schema: Schema {
                components: vec!["npc".into(), "snowball".into(), "score".into()],
                actions: vec!["throw".into()],
                events: vec!["hit".into()],
            },
            idle_timeout_ms: 10_000,
            max_inputs_per_s: 60,
        });
        #[rustfmt::skip]
        let mut expected = vec![
            58, 0, 0, 0,
            0x00, 0x03, 0x14, // Welcome, player_id 3, tick_hz 20
            0x00, 0x00, 0x7a, 0x44, // world_size 1000.0
            0x00, 0x00, 0x48, 0x42, // interest_radius 50.0
            0x00, 0x00, 0x48, 0x42, // cell_size 50.0
            0x01, // view_cells 1
            0x00, 0x00, 0x00, 0x41, // position_scale 8.0
            0x80, 0x80, 0x40, // max_frame_bytes 1048576
            0x03, // schema.components: 3 names
        ];
        for name in ["npc", "snowball", "score"] {
            expected.push(name.len() as u8);
            expected.extend_from_slice(name.as_bytes());
        }
        expected.extend_from_slice(&[0x01, 0x05]); // schema.actions: 1 name
        expected.extend_from_slice(b"throw");
        expected.extend_from_slice(&[0x01, 0x03]); // schema.events: 1 name
        expected.extend_from_slice(b"hit");
        expected.extend_from_slice(&[0x90, 0x4e, 0x3c]); // idle_timeout_ms 10000, 60 inputs/s
        assert_eq!(frame_bytes(&welcome), expected);
        examples.push(expected);

        assert_eq!(
            documented_examples(),
            examples,
            "docs/PROTOCOL.md shows these bytes"
        );
    }

    #[test]
    fn schema_kinds_are_found_by_name() {
        let schema = Schema {
            components: vec!["npc".into(), "snowball".into(), "score".into()],
            actions: vec!["throw".into()],
            events: vec!["hit".into()],
        };
        assert_eq!(schema.component_kind("score"), Some(2));
        assert_eq!(schema.action_kind("throw"), Some(0));
        assert_eq!(schema.event_kind("hit"), Some(0));
        assert_eq!(schema.action_kind("hit"), None);
        assert_eq!(Schema::default().component_kind("npc"), None);
    }

    #[test]
    fn close_reasons_are_listed_in_wire_order() {
        for (i, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
            assert_eq!(postcard::to_stdvec(reason).unwrap(), [i as u8]);
        }
    }

    #[test]
    fn frame_index_matches_enum() {
        let bytes = postcard::to_stdvec(&ServerMessage::Frame(StateFrame::default())).unwrap();
        assert_eq!(bytes[0], SERVER_FRAME_KIND);
    }

    #[test]
    fn unknown_message_type_is_told_apart_from_damage() {
        assert_eq!(
            decode_client_message(&[9]),
            Err(DecodeError::UnknownType(9))
        );
        assert!(matches!(
            decode_client_message(&[0, 5]),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_client_message(&[]),
            Err(DecodeError::Malformed(_))
        ));
        let mut goodbye_with_junk = postcard::to_stdvec(&ClientMessage::Goodbye).unwrap();
        goodbye_with_junk.push(0);
        assert!(matches!(
            decode_client_message(&goodbye_with_junk),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("bot_17-a").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("é").is_err());
    }

    fn component_value() -> impl Strategy<Value = ComponentValue> {
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(kind, bytes)| ComponentValue { kind, bytes })
    }

    fn component_change() -> impl Strategy<Value = ComponentChange> {
        prop_oneof![
            component_value().prop_map(ComponentChange::Set),
            any::<u16>().prop_map(ComponentChange::Removed),
        ]
    }

    fn event() -> impl Strategy<Value = Event> {
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(kind, bytes)| Event { kind, bytes })
    }

    fn client_message() -> impl Strategy<Value = ClientMessage> {
        prop_oneof![
            (any::<u16>(), "[A-Za-z0-9_-]{0,40}", ".{0,70}").prop_map(|(v, name, secret)| {
                ClientMessage::Hello(Hello {
                    protocol_version: v,
                    name,
                    secret,
                })
            }),
            (any::<u32>(), any::<i8>(), any::<i8>())
                .prop_map(|(seq, dir_x, dir_y)| ClientMessage::Input(Input { seq, dir_x, dir_y })),
            any::<u64>().prop_map(|nonce| ClientMessage::Ping { nonce }),
            Just(ClientMessage::Goodbye),
            (
                any::<u32>(),
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..70)
            )
                .prop_map(|(seq, kind, bytes)| ClientMessage::Action(Action {
                    seq,
                    kind,
                    bytes
                })),
            (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..120)).prop_map(
                |(protocol_version, ticket)| ClientMessage::Resume(Resume {
                    protocol_version,
                    ticket
                })
            ),
        ]
    }

    /// Arbitrary state frames (also used by the client's frame reader tests).
    pub(crate) fn state_frame() -> impl Strategy<Value = StateFrame> {
        let spawn = (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(component_value(), 0..3),
        )
            .prop_map(|(id, x, y, components)| EntitySpawn {
                id,
                x,
                y,
                components,
            });
        let update = (
            any::<u32>(),
            any::<i32>(),
            any::<i32>(),
            proptest::collection::vec(component_change(), 0..3),
        )
            .prop_map(|(id, dx, dy, components)| EntityUpdate {
                id,
                dx,
                dy,
                components,
            });
        (
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            proptest::collection::vec(event(), 0..4),
            proptest::collection::vec(any::<u32>(), 0..5),
            proptest::collection::vec(spawn, 0..5),
            proptest::collection::vec(update, 0..5),
        )
            .prop_map(
                |(tick, ack_seq, reset, events, removed, spawned, updated)| StateFrame {
                    tick,
                    ack_seq,
                    reset,
                    events,
                    removed,
                    spawned,
                    updated,
                },
            )
    }

    fn reason() -> impl Strategy<Value = CloseReason> {
        (0..CloseReason::ALL.len()).prop_map(|i| CloseReason::ALL[i])
    }

    fn server_message() -> impl Strategy<Value = ServerMessage> {
        prop_oneof![
            (
                any::<u32>(),
                any::<u16>(),
                any::<f32>(),
                (
                    proptest::collection::vec("[a-z]{1,8}", 0..3),
                    proptest::collection::vec("[a-z]{1,8}", 0..3),
                    proptest::collection::vec("[a-z]{1,8}", 0..3),
                )
                    .prop_map(|(components, actions, events)| Schema {
                        components,
                        actions,
                        events,
                    }),
                any::<(u32, u32)>(),
            )
                .prop_map(|(player_id, tick_hz, world_size, schema, limits)| {
                    ServerMessage::Welcome(Welcome {
                        player_id,
                        tick_hz,
                        world_size: if world_size.is_nan() { 0.0 } else { world_size },
                        interest_radius: 100.0,
                        cell_size: 50.0,
                        view_cells: 2,
                        position_scale: POSITION_SCALE,
                        max_frame_bytes: 1 << 20,
                        schema,
                        idle_timeout_ms: limits.0,
                        max_inputs_per_s: limits.1,
                    })
                }),
            (reason(), ".{0,20}")
                .prop_map(|(reason, detail)| ServerMessage::Reject(Refusal { reason, detail })),
            state_frame().prop_map(ServerMessage::Frame),
            any::<u64>().prop_map(|nonce| ServerMessage::Pong { nonce }),
            (reason(), ".{0,20}")
                .prop_map(|(reason, detail)| ServerMessage::Close(Refusal { reason, detail })),
            (
                "[a-z]{1,8}",
                "[0-9.:]{0,21}",
                ".{0,30}",
                proptest::collection::vec(any::<u8>(), 0..120)
            )
                .prop_map(|(zone, address, websocket, ticket)| {
                    ServerMessage::Transfer(Transfer {
                        zone,
                        address,
                        websocket,
                        ticket,
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn client_messages_round_trip(message in client_message()) {
            let frame = frame_bytes(&message);
            let length = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
            prop_assert_eq!(length, frame.len() - FRAME_HEADER_BYTES);
            prop_assert_eq!(decode_client_message(&frame[FRAME_HEADER_BYTES..]), Ok(message));
        }

        #[test]
        fn server_messages_round_trip(message in server_message()) {
            let frame = frame_bytes(&message);
            prop_assert_eq!(decode_server_message(&frame[FRAME_HEADER_BYTES..]), Ok(message));
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_client_message(&bytes);
        }
    }
}
