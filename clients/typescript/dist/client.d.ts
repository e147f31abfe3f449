/**
 * A session with a throng server over WebSocket: Hello → Welcome, then frames applied to a
 * {@link Mirror}, inputs and actions numbered from one counter, pings, and one
 * {@link CloseInfo} saying why it ended.
 *
 * One binary WebSocket message is one protocol message (the TCP frame body without its
 * length prefix). The server ends a session with its own `Reject`/`Close` message first and
 * then a WebSocket close of code 4000 + reason index; the close info combines both, so a
 * caller learns the reason even if only one of them arrived.
 */
import type { StateFrame, Welcome } from "./messages.js";
import { Mirror } from "./mirror.js";
import type { FrameChanges, NamedEvent } from "./mirror.js";
/**
 * A WebSocket constructor: the browser's (the default: the global `WebSocket`), Node's
 * global one (Node 22+, or 20 with `--experimental-websocket`), or a stand-in for tests.
 */
export type WebSocketConstructor = new (url: string) => WebSocket;
export interface ConnectOptions {
    /** The WebSocket implementation (default: the global `WebSocket`). */
    WebSocket?: WebSocketConstructor;
    /** Give up if no Welcome within this many ms (default 10000). */
    timeoutMs?: number;
    /**
     * Ping when nothing was sent for this long, ms, so an idle player is not closed with
     * `idle_timeout` (default: a third of Welcome.idleTimeoutMs; 0 turns it off).
     */
    keepAliveMs?: number;
    /** The clock for receipt times and round trips (default `performance.now`). */
    now?: () => number;
}
/** Why a session ended (or never opened). */
export interface CloseInfo {
    /** Wire index of the server's close reason, if it gave one (message or close code). */
    reason: number | undefined;
    /**
     * The reason's name: a {@link CLOSE_REASONS} name from the server, or one of the client's:
     * `goodbye` (this client left), `connection_failed`, `connection_lost`, `timeout`,
     * `client_error` (the server sent something this client cannot apply), `normal`.
     */
    reasonName: string;
    /** Human-readable detail (the server's, or the client's error). */
    detail: string;
    /** The WebSocket close code (1006 when the connection dropped without one). */
    code: number;
    /** True if the session never opened (a Reject, or no Welcome). */
    rejected: boolean;
}
/** A failed connect: the server refused, or the connection did not open. */
export declare class ConnectError extends Error {
    readonly close: CloseInfo;
    constructor(close: CloseInfo);
}
/** A frame as the client applied it. */
export interface FrameUpdate extends FrameChanges {
    /** The decoded frame. */
    frame: StateFrame;
    /** Local time it arrived (the `now` clock), for interpolation. */
    receivedAt: number;
}
export interface ClientEvents {
    /** A frame was applied to the mirror. */
    frame: FrameUpdate;
    /** A server event, in delivery order (also in its frame's `events`). */
    event: NamedEvent & {
        tick: number;
    };
    /** A pong: the round trip of its ping, ms. */
    pong: number;
    /** The session ended. */
    close: CloseInfo;
}
type Listener<T> = (value: T) => void;
/**
 * Opens a session as `name` with `secret` at `url` (`ws://HOST:PORT/ws`); resolves once
 * the Welcome arrived. Rejects with {@link ConnectError} (a Reject, a failed connection, a
 * timeout).
 */
export declare function connect(url: string, name: string, secret: string, options?: ConnectOptions): Promise<ThrongClient>;
/** An open session. Create it with {@link connect}. */
export declare class ThrongClient {
    private readonly ws;
    private readonly now;
    /** The session parameters, with the game's schema. */
    readonly welcome: Welcome;
    /**
     * The entities in view, updated by every frame before listeners are told. Frames are
     * applied from the first timer turn after connect() resolved, so that listeners added
     * right after it see every frame.
     */
    readonly mirror: Mirror;
    /** Resolves once the session ended. */
    readonly closed: Promise<CloseInfo>;
    /** The last measured ping round trip, ms. */
    rttMs: number | undefined;
    private lastSeqSent;
    private lastSentAt;
    private nonce;
    private readonly pings;
    private readonly listeners;
    private closeInfo;
    private refusal;
    private clientError;
    private leaving;
    /**
     * What arrived before the caller of connect() could subscribe (see the constructor),
     * in order; undefined once handed over.
     */
    private backlog;
    private resolveClosed;
    private readonly keepAlive;
    /** @internal Use {@link connect}. */
    constructor(ws: WebSocket, welcome: Welcome, now: () => number, keepAliveMs?: number);
    /** The client's own entity id. */
    get playerId(): number;
    /** The seq of the last input or action sent (0: none). */
    get lastSeq(): number;
    /** Whether the session is still open. */
    get open(): boolean;
    /**
     * Walk toward `(dirX, dirY)` (each -128..127; the server normalises, `(0, 0)` stands
     * still) until the next input. Returns the input's seq (from the counter shared with
     * actions). Does nothing once the session is closed.
     */
    sendInput(dirX: number, dirY: number): number;
    /**
     * Sends an action of `kind` (its name in `schema.actions`, or an index) whose value is
     * `bytes` (postcard-encoded as the game's type). Returns its seq. Throws if the name is
     * not in the schema: the server would drop it and count it against the client.
     */
    sendAction(kind: string | number, bytes: Uint8Array): number;
    /** Sends a Ping; resolves with the round trip in ms (rejects if the session ends first). */
    ping(): Promise<number>;
    /** Leaves: Goodbye, then a normal WebSocket close. The player is removed at the next tick. */
    close(): Promise<CloseInfo>;
    /** Calls `listener` on each `type` notification; returns the function that unsubscribes. */
    on<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): () => void;
    /** The frames applied from now on, until the session ends (buffered if not awaited). */
    frames(): AsyncIterableIterator<FrameUpdate>;
    private send;
    private receive;
    private finish;
    private emit;
}
export {};
