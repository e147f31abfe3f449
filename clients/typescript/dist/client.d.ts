/**
 * A session with a throng server over WebSocket: Hello → Welcome, then frames applied to a
 * {@link Mirror}, inputs and actions numbered from one counter, pings, and one
 * {@link CloseInfo} saying why it ended.
 *
 * On zone servers (docs/SCALING.md) the session follows the player across borders: a
 * `Transfer` from the server makes the client open the destination's WebSocket, present the
 * ticket with `Resume` and carry on there (a new Welcome and player id, a fresh mirror, the
 * same seq counter), telling listeners with `transfer` and `welcome` events.
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
    /**
     * Give up if no Welcome within this many ms (default 10000): at connect, and at each
     * zone a Transfer sends the session to.
     */
    timeoutMs?: number;
    /**
     * Ping when nothing was sent for this long, ms, so an idle player is not closed with
     * `idle_timeout` (default: a third of Welcome.idleTimeoutMs; 0 turns it off).
     */
    keepAliveMs?: number;
    /** The clock for receipt times and round trips (default `performance.now`). */
    now?: () => number;
}
/** Where a {@link Transfer} sends the player (the Transfer without its ticket). */
export interface ZoneAddress {
    /** The destination zone's name. */
    zone: string;
    /** Its TCP game listener, `HOST:PORT`. */
    address: string;
    /** Its WebSocket URL, empty if it has no web listener (a browser cannot follow then). */
    websocket: string;
}
/** Why a session ended (or never opened). */
export interface CloseInfo {
    /** Wire index of the server's close reason, if it gave one (message or close code). */
    reason: number | undefined;
    /**
     * The reason's name: a {@link CLOSE_REASONS} name from the server (after a Transfer, e.g.
     * `ticket_expired` or `already_online`: the destination refused the Resume), or one of
     * the client's: `goodbye` (this client left), `connection_failed`, `connection_lost`,
     * `timeout`, `client_error` (the server sent something this client cannot apply),
     * `transfer_failed` (a Transfer this client cannot follow: no WebSocket URL, or too many
     * in a row), `normal`.
     */
    reasonName: string;
    /** Human-readable detail (the server's, or the client's error). */
    detail: string;
    /** The WebSocket close code (1006 when the connection dropped without one). */
    code: number;
    /** True if the session never opened (a Reject, or no Welcome). */
    rejected: boolean;
    /**
     * Set if it ended while following a Transfer (before the destination's Welcome): where
     * the player was being sent. The player can log in again with Hello (a new connect).
     */
    transfer?: ZoneAddress;
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
/** The session continues on another zone after a Transfer (the `welcome` event). */
export interface ZoneWelcome {
    /** The destination's Welcome (also `client.welcome` from now on). */
    welcome: Welcome;
    /** The fresh mirror of the new zone's frames (also `client.mirror` from now on). */
    mirror: Mirror;
    /** The zone's name, from the Transfer (also `client.zone`). */
    zone: string;
    /** The player's id in the previous zone (ids are per server: `welcome.playerId` is new). */
    previousPlayerId: number;
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
    /**
     * The server moves the session to another zone: the current mirror got its last frame.
     * Inputs and actions sent until `welcome` are held and sent there (the latest input only).
     */
    transfer: ZoneAddress;
    /**
     * After a `transfer` (not at connect, which resolves with the first Welcome), the
     * session continues on another zone: new Welcome, new player id, a fresh mirror
     * whose frames start over (at that server's ticks). Entity ids are the new server's:
     * forget per-id state, clear interpolation and restart prediction here.
     */
    welcome: ZoneWelcome;
    /** The session ended. */
    close: CloseInfo;
}
type Listener<T> = (value: T) => void;
/**
 * Opens a session as `name` with `secret` at `url` (`ws://HOST:PORT/ws`); resolves once
 * the Welcome arrived (following a Transfer that comes first, on zone servers). Rejects
 * with {@link ConnectError} (a Reject, a failed connection, a timeout).
 */
export declare function connect(url: string, name: string, secret: string, options?: ConnectOptions): Promise<ThrongClient>;
/** An open session. Create it with {@link connect}. */
export declare class ThrongClient {
    private readonly now;
    /** Resolves once the session ended. */
    readonly closed: Promise<CloseInfo>;
    /** The last measured ping round trip, ms. */
    rttMs: number | undefined;
    private ws;
    private currentWelcome;
    private currentMirror;
    private currentZone;
    /** Bumped whenever a socket stops being the session's: its late events are ignored. */
    private generation;
    /** The handshake with the zone a Transfer named, while it runs. */
    private following;
    /** Messages sent while following a Transfer, sent once the destination welcomed us. */
    private held;
    private readonly Socket;
    private readonly timeoutMs;
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
    constructor(ws: WebSocket, welcome: Welcome, now: () => number, keepAliveMs: number | undefined, zones: {
        Socket: WebSocketConstructor;
        timeoutMs: number;
        zone: string | undefined;
    });
    /**
     * The session parameters, with the game's schema: the current zone's (a Transfer brings
     * a new Welcome, see the `welcome` event).
     */
    get welcome(): Welcome;
    /**
     * The entities in view, updated by every frame before listeners are told. Frames are
     * applied from the first timer turn after connect() resolved, so that listeners added
     * right after it see every frame. A Transfer replaces it with a fresh one (the `welcome`
     * event): read it from the client, do not keep it.
     */
    get mirror(): Mirror;
    /** The client's own entity id (the current zone's: a Transfer changes it). */
    get playerId(): number;
    /** The zone the session is on, once a Transfer named one (a Welcome does not). */
    get zone(): string | undefined;
    /** Whether a Transfer is being followed (between the `transfer` and `welcome` events). */
    get transferring(): boolean;
    /** The seq of the last input or action sent (0: none). */
    get lastSeq(): number;
    /** Whether the session is still open (it is while following a Transfer). */
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
    /**
     * The frames applied from now on, until the session ends (buffered if not awaited),
     * across zones (a `welcome` event marks the switch).
     */
    frames(): AsyncIterableIterator<FrameUpdate>;
    /** Makes `ws` the session's socket: its messages and close are the session's. */
    private attach;
    private send;
    /**
     * Keeps a message sent between zones for the destination: the latest input only (the
     * latest wins anyway), actions and pings in order, at most {@link MAX_HELD}.
     */
    private hold;
    private receive;
    /** The server hands the player to another zone: continue there with the ticket. */
    private follow;
    /** The destination welcomed the player: the session goes on there. */
    private resumed;
    private finish;
    private end;
    private rejectPings;
    private emit;
}
export {};
