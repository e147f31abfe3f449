/**
 * The messages of the throng wire protocol, version 3 (docs/PROTOCOL.md), as TypeScript
 * types. Field names are the protocol's, in camelCase; every `u32`/`u16`/`i32`/`i8` is a
 * `number` (exact in a double), the one `u64` (a ping's nonce) a `bigint`.
 *
 * Messages are tagged unions on `type` so that a `switch` over a decoded message is checked
 * for exhaustiveness by the compiler.
 */
/** The version a client announces in Hello; the server refuses any other. */
export declare const PROTOCOL_VERSION = 3;
/** Messages a client sends. */
export type ClientMessage = Hello | Input | Ping | Goodbye | Action | Resume;
/** Must be the first message; answered by Welcome or Reject. */
export interface Hello {
    type: "hello";
    protocolVersion: number;
    /** 1 to 32 bytes of `A-Z a-z 0-9 _ -`; one player whatever the case. */
    name: string;
    /** 8 to 64 bytes: the first login of a name claims it with this secret. */
    secret: string;
}
/** Walk toward `(dirX, dirY)` (normalised by the server; `(0, 0)` stands still). */
export interface Input {
    type: "input";
    /** From the client's one counter shared with actions, starting at 1. */
    seq: number;
    /** -128..127 (i8). */
    dirX: number;
    dirY: number;
}
/** Answered by a Pong with the same nonce. */
export interface Ping {
    type: "ping";
    /** u64. */
    nonce: bigint;
}
/** The client leaves: the server closes without sending anything more. */
export interface Goodbye {
    type: "goodbye";
}
/** A player action of a kind the game registered (index into `schema.actions`). */
export interface Action {
    type: "action";
    seq: number;
    kind: number;
    /** The action's value, postcard-encoded as the game's type for this kind. */
    bytes: Uint8Array;
}
/**
 * Instead of Hello, as the first message: opens a session on the zone server a
 * {@link Transfer} named, with its single-use ticket. Answered like a Hello (Welcome, or a
 * Reject such as `ticket_used`).
 */
export interface Resume {
    type: "resume";
    protocolVersion: number;
    /** The ticket exactly as the Transfer carried it (opaque to the client). */
    ticket: Uint8Array;
}
/** Messages the server sends. */
export type ServerMessage = WelcomeMessage | Reject | FrameMessage | Pong | Close | Transfer;
export interface WelcomeMessage {
    type: "welcome";
    welcome: Welcome;
}
/** The session was refused before it opened; the socket closes after it. */
export interface Reject {
    type: "reject";
    /** Wire index of the {@link CloseReason}; may be one this client does not know. */
    reason: number;
    /** Human-readable text for logs: do not parse it. */
    detail: string;
}
export interface FrameMessage {
    type: "frame";
    frame: StateFrame;
}
export interface Pong {
    type: "pong";
    nonce: bigint;
}
/** The server ends an open session; the socket closes after it. */
export interface Close {
    type: "close";
    reason: number;
    detail: string;
}
/**
 * Zone servers only: the player walked into another zone's part of the world. Instead of
 * the next frame; the socket closes after it. Continue at `websocket` (a browser) or
 * `address` (TCP) with a {@link Resume} carrying `ticket` as the first message.
 */
export interface Transfer {
    type: "transfer";
    /** The destination zone's name. */
    zone: string;
    /** Its game listener, `HOST:PORT` (TCP). */
    address: string;
    /** Its web listener's WebSocket URL (`ws://HOST:PORT/ws`), empty if it has none. */
    websocket: string;
    /** The signed, single-use ticket (valid for about 30 s). */
    ticket: Uint8Array;
}
/** Session parameters, the first message of every session. */
export interface Welcome {
    /** The client's own entity id in frames. */
    playerId: number;
    /** Ticks, and frames, per second. */
    tickHz: number;
    /** The world is `[0, worldSize)` on both axes, in units. */
    worldSize: number;
    /** The client sees exactly the entities at most `interestRadius` units away (in wire units, rounded). */
    interestRadius: number;
    cellSize: number;
    /** Every entity the client sees is at most `viewCells` cells from its own on each axis. */
    viewCells: number;
    /** Wire positions are world units times this. */
    positionScale: number;
    /** Largest frame the server sends, its 4-byte prefix included. */
    maxFrameBytes: number;
    schema: Schema;
    /** Send something (an input, an action or a ping) at least this often. */
    idleTimeoutMs: number;
    /** Inputs, actions and pings per second the server accepts (bursts of 20). */
    maxInputsPerS: number;
}
/**
 * The game's stable names: a kind on the wire is an index into one of these lists. Map
 * kinds to your types by name once per session; indices may differ between servers.
 */
export interface Schema {
    components: string[];
    actions: string[];
    events: string[];
}
/** One tick of the client's view. Apply: reset, events, removed, spawned, updated. */
export interface StateFrame {
    tick: number;
    /** Seq of the latest input or action processed up to this tick (0: none yet). */
    ackSeq: number;
    /** Forget every entity before applying this frame. */
    reset: boolean;
    events: Event[];
    removed: number[];
    spawned: EntitySpawn[];
    updated: EntityUpdate[];
}
/** A server event: a kind (index into `schema.events`) and its value's bytes. */
export interface Event {
    kind: number;
    bytes: Uint8Array;
}
/** An entity entering the view, with its full state. */
export interface EntitySpawn {
    id: number;
    /** Wire position: world units times `positionScale`, rounded. */
    x: number;
    y: number;
    components: ComponentValue[];
}
/** An entity in view since the previous frame that changed. */
export interface EntityUpdate {
    id: number;
    /** Change of the wire position (i32). */
    dx: number;
    dy: number;
    components: ComponentChange[];
}
/** A replicated component's value: kind (index into `schema.components`) and bytes. */
export interface ComponentValue {
    kind: number;
    bytes: Uint8Array;
}
/** A component set (added or changed) or removed. */
export type ComponentChange = {
    type: "set";
    kind: number;
    bytes: Uint8Array;
} | {
    type: "removed";
    kind: number;
};
/**
 * Why a session was refused or closed, by wire index (also the WebSocket close code minus
 * 4000). New reasons may be added at the end: an unknown index is a generic close.
 */
export declare const CLOSE_REASONS: readonly ["server_full", "version_mismatch", "expected_hello", "duplicate_hello", "frame_too_large", "malformed", "unknown_message_type", "invalid_name", "handshake_timeout", "shutdown", "view_too_large", "idle_timeout", "input_flood", "slow_reader", "internal_error", "bad_credentials", "already_online", "event_backlog", "invalid_actions", "too_many_failed_logins", "handshakes_full", "address_limit", "kicked", "ticket_invalid", "ticket_expired", "ticket_used", "ticket_wrong_zone"];
/** A close reason this client knows by name. */
export type CloseReason = (typeof CLOSE_REASONS)[number];
/** The name of close reason `index`, or `unknown_N` for one newer than this client. */
export declare function closeReasonName(index: number): string;
/** The wire index of a close reason. */
export declare function closeReasonIndex(reason: CloseReason): number;
