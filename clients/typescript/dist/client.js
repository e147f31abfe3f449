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
import { decodeServerMessage, encodeClientMessage } from "./codec.js";
import { PROTOCOL_VERSION, closeReasonName } from "./messages.js";
import { Mirror } from "./mirror.js";
/** A failed connect: the server refused, or the connection did not open. */
export class ConnectError extends Error {
    constructor(close) {
        super(`throng: ${close.reasonName}${close.detail ? `: ${close.detail}` : ""} (code ${close.code})`);
        this.close = close;
        this.name = "ConnectError";
    }
}
/** Transfers followed before a Welcome (a zone that hands the player straight on) at most. */
const MAX_TRANSFERS_IN_A_ROW = 4;
/** Messages held while a Transfer is followed, at most (the server's burst is 20). */
const MAX_HELD = 16;
/**
 * Opens a session: a socket at a URL, a first message (Hello, or Resume after a Transfer),
 * then the Welcome, following any Transfer that comes instead of it (a login at a zone
 * that does not own the player's saved position). Reports once: `opened` synchronously in
 * the Welcome's message handler (so the caller installs its own handlers before the next
 * message is dispatched), or `failed`.
 */
class Handshake {
    constructor(Socket, timeoutMs, opened, failed) {
        this.Socket = Socket;
        this.timeoutMs = timeoutMs;
        this.opened = opened;
        this.failed = failed;
        this.done = false;
        this.hops = 0;
    }
    /** Connects to `url` and sends `first` once open. */
    start(url, first) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.fail({ reason: undefined, reasonName: "timeout", detail: "no Welcome in time", code: 1006, rejected: true }), this.timeoutMs);
        let ws;
        try {
            ws = new this.Socket(url);
        }
        catch (error) {
            // A URL the WebSocket refuses (a browser throws a SyntaxError).
            this.fail({ reason: undefined, reasonName: "connection_failed", detail: String(error), code: 1006, rejected: true });
            return;
        }
        this.ws = ws;
        ws.binaryType = "arraybuffer";
        let refusal;
        const current = () => !this.done && this.ws === ws;
        ws.onopen = () => {
            if (current())
                ws.send(encodeClientMessage(first));
        };
        ws.onmessage = (event) => {
            if (!current())
                return;
            let message;
            try {
                message = decodeServerMessage(bytesOf(event.data));
            }
            catch (error) {
                this.fail({ reason: undefined, reasonName: "client_error", detail: String(error), code: 1006, rejected: true });
                return;
            }
            switch (message.type) {
                case "welcome":
                    this.done = true;
                    this.ws = undefined;
                    clearTimeout(this.timer);
                    this.opened(ws, message.welcome, this.zone);
                    break;
                case "reject":
                case "close":
                    refusal = { reason: message.reason, detail: message.detail };
                    break;
                case "transfer":
                    this.follow(message);
                    break;
                default:
                    this.fail({ reason: undefined, reasonName: "client_error", detail: `${message.type} before Welcome`, code: 1006, rejected: true });
            }
        };
        ws.onclose = (event) => {
            if (!current())
                return;
            const info = closeInfo(event.code, event.reason, refusal);
            if (refusal === undefined && info.reason === undefined)
                info.reasonName = "connection_failed";
            this.fail({ ...info, rejected: true });
        };
        // Browsers follow an error with a close; some WebSocket implementations (Node 20's, when
        // the upgrade response is refused) report only the error.
        ws.onerror = (event) => {
            if (!current())
                return; // (closing a failed socket may report another error)
            if (refusal !== undefined) {
                this.fail({ ...closeInfo(1006, "", refusal), rejected: true });
            }
            else {
                const message = event.message;
                const detail = typeof message === "string" ? message : "WebSocket error";
                this.fail({ reason: undefined, reasonName: "connection_failed", detail, code: 1006, rejected: true });
            }
        };
    }
    /**
     * Continues at the zone `transfer` names, with its ticket (the socket it came on, if
     * this handshake's, is done).
     */
    follow(transfer) {
        const old = this.ws;
        this.ws = undefined;
        old?.close(1000, "transfer");
        this.hops++;
        this.zone = transfer.zone;
        this.transfer = { zone: transfer.zone, address: transfer.address, websocket: transfer.websocket };
        if (transfer.websocket === "") {
            this.fail({
                reason: undefined,
                reasonName: "transfer_failed",
                detail: `zone ${transfer.zone} has no WebSocket listener (TCP only: ${transfer.address})`,
                code: 1000,
                rejected: true,
            });
        }
        else if (this.hops > MAX_TRANSFERS_IN_A_ROW) {
            this.fail({
                reason: undefined,
                reasonName: "transfer_failed",
                detail: `${this.hops} transfers without a Welcome (the last to zone ${transfer.zone})`,
                code: 1000,
                rejected: true,
            });
        }
        else {
            this.start(transfer.websocket, { type: "resume", protocolVersion: PROTOCOL_VERSION, ticket: transfer.ticket });
        }
    }
    /** Gives up (the client leaves): a Goodbye if the socket is open, then closes it. */
    abort() {
        if (this.done)
            return;
        this.done = true;
        clearTimeout(this.timer);
        const ws = this.ws;
        this.ws = undefined;
        if (ws === undefined)
            return;
        if (ws.readyState === 1 /* OPEN */)
            ws.send(encodeClientMessage({ type: "goodbye" }));
        ws.close(1000, "goodbye");
    }
    fail(info) {
        if (this.done)
            return;
        this.done = true;
        clearTimeout(this.timer);
        const ws = this.ws;
        this.ws = undefined;
        if (this.transfer !== undefined)
            info.transfer = this.transfer;
        this.failed(info);
        ws?.close();
    }
}
/**
 * Opens a session as `name` with `secret` at `url` (`ws://HOST:PORT/ws`); resolves once
 * the Welcome arrived (following a Transfer that comes first, on zone servers). Rejects
 * with {@link ConnectError} (a Reject, a failed connection, a timeout).
 */
export function connect(url, name, secret, options = {}) {
    const Socket = options.WebSocket ?? globalThis.WebSocket;
    if (Socket === undefined)
        return Promise.reject(new Error("no WebSocket: pass options.WebSocket"));
    const now = options.now ?? (() => performance.now());
    const timeoutMs = options.timeoutMs ?? 10000;
    return new Promise((resolve, reject) => {
        const handshake = new Handshake(Socket, timeoutMs, (ws, welcome, zone) => resolve(new ThrongClient(ws, welcome, now, options.keepAliveMs, { Socket, timeoutMs, zone })), (close) => reject(new ConnectError(close)));
        handshake.start(url, { type: "hello", protocolVersion: PROTOCOL_VERSION, name, secret });
    });
}
/** An open session. Create it with {@link connect}. */
export class ThrongClient {
    /** @internal Use {@link connect}. */
    constructor(ws, welcome, now, keepAliveMs, zones) {
        this.now = now;
        /** Bumped whenever a socket stops being the session's: its late events are ignored. */
        this.generation = 0;
        /** Messages sent while following a Transfer, sent once the destination welcomed us. */
        this.held = [];
        this.lastSeqSent = 0;
        this.nonce = 0n;
        this.pings = new Map();
        this.listeners = {
            frame: new Set(),
            event: new Set(),
            pong: new Set(),
            transfer: new Set(),
            welcome: new Set(),
            close: new Set(),
        };
        this.leaving = false;
        /**
         * What arrived before the caller of connect() could subscribe (see the constructor),
         * in order; undefined once handed over.
         */
        this.backlog = [];
        this.ws = ws;
        this.currentWelcome = welcome;
        this.currentMirror = new Mirror(welcome);
        this.currentZone = zones.zone;
        this.Socket = zones.Socket;
        this.timeoutMs = zones.timeoutMs;
        this.lastSentAt = now();
        this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
        this.attach(ws);
        // The first frames often arrive with the Welcome, and some WebSocket implementations
        // (Node's) dispatch them in the same task, before the code after `await connect()`
        // runs. They are held until a timer's turn, which comes after every pending promise
        // continuation: listeners added right after connect() resolved see every frame.
        setTimeout(() => {
            const backlog = this.backlog ?? [];
            this.backlog = undefined;
            for (const item of backlog) {
                if (item.generation !== this.generation)
                    continue; // a socket left behind by a Transfer
                if ("body" in item)
                    this.receive(item.body, item.at);
                else
                    this.finish(item.code, item.reason);
            }
        }, 0);
        const keepAlive = keepAliveMs ?? welcome.idleTimeoutMs / 3;
        if (keepAlive > 0) {
            this.keepAlive = setInterval(() => {
                if (this.following === undefined && this.now() - this.lastSentAt >= keepAlive)
                    this.ping().catch(() => { });
            }, Math.min(keepAlive, 1000));
        }
    }
    /**
     * The session parameters, with the game's schema: the current zone's (a Transfer brings
     * a new Welcome, see the `welcome` event).
     */
    get welcome() {
        return this.currentWelcome;
    }
    /**
     * The entities in view, updated by every frame before listeners are told. Frames are
     * applied from the first timer turn after connect() resolved, so that listeners added
     * right after it see every frame. A Transfer replaces it with a fresh one (the `welcome`
     * event): read it from the client, do not keep it.
     */
    get mirror() {
        return this.currentMirror;
    }
    /** The client's own entity id (the current zone's: a Transfer changes it). */
    get playerId() {
        return this.currentWelcome.playerId;
    }
    /** The zone the session is on, once a Transfer named one (a Welcome does not). */
    get zone() {
        return this.currentZone;
    }
    /** Whether a Transfer is being followed (between the `transfer` and `welcome` events). */
    get transferring() {
        return this.following !== undefined;
    }
    /** The seq of the last input or action sent (0: none). */
    get lastSeq() {
        return this.lastSeqSent;
    }
    /** Whether the session is still open (it is while following a Transfer). */
    get open() {
        return this.closeInfo === undefined && !this.leaving;
    }
    /**
     * Walk toward `(dirX, dirY)` (each -128..127; the server normalises, `(0, 0)` stands
     * still) until the next input. Returns the input's seq (from the counter shared with
     * actions). Does nothing once the session is closed.
     */
    sendInput(dirX, dirY) {
        const seq = this.lastSeqSent + 1;
        this.send({ type: "input", seq, dirX, dirY });
        this.lastSeqSent = seq;
        return seq;
    }
    /**
     * Sends an action of `kind` (its name in `schema.actions`, or an index) whose value is
     * `bytes` (postcard-encoded as the game's type). Returns its seq. Throws if the name is
     * not in the schema: the server would drop it and count it against the client.
     */
    sendAction(kind, bytes) {
        const index = typeof kind === "number" ? kind : this.welcome.schema.actions.indexOf(kind);
        if (index < 0)
            throw new Error(`the server has no action named ${JSON.stringify(kind)}`);
        const seq = this.lastSeqSent + 1;
        this.send({ type: "action", seq, kind: index, bytes });
        this.lastSeqSent = seq;
        return seq;
    }
    /** Sends a Ping; resolves with the round trip in ms (rejects if the session ends first). */
    ping() {
        const nonce = ++this.nonce;
        return new Promise((resolve, reject) => {
            if (!this.open) {
                reject(new Error("session closed"));
                return;
            }
            this.pings.set(nonce, { sentAt: this.now(), resolve, reject });
            this.send({ type: "ping", nonce });
        });
    }
    /** Leaves: Goodbye, then a normal WebSocket close. The player is removed at the next tick. */
    close() {
        if (this.open) {
            const following = this.following;
            if (following !== undefined) {
                // Between zones: the destination's socket (if open) gets the Goodbye.
                this.following = undefined;
                this.leaving = true;
                following.abort();
                this.end({ reason: undefined, reasonName: "goodbye", detail: "left while changing zones", code: 1000, rejected: false });
            }
            else {
                this.send({ type: "goodbye" });
                this.leaving = true;
                this.ws.close(1000, "goodbye");
            }
        }
        return this.closed;
    }
    /** Calls `listener` on each `type` notification; returns the function that unsubscribes. */
    on(type, listener) {
        const set = this.listeners[type];
        set.add(listener);
        return () => set.delete(listener);
    }
    /**
     * The frames applied from now on, until the session ends (buffered if not awaited),
     * across zones (a `welcome` event marks the switch).
     */
    frames() {
        const queue = [];
        let wake;
        let done = false;
        const unsubscribe = this.on("frame", (update) => {
            queue.push(update);
            wake?.();
        });
        void this.closed.then(() => {
            done = true;
            wake?.();
        });
        const iterator = {
            next: async () => {
                while (queue.length === 0 && !done)
                    await new Promise((resolve) => (wake = resolve));
                const value = queue.shift();
                if (value !== undefined)
                    return { value, done: false };
                unsubscribe();
                return { value: undefined, done: true };
            },
            return: async () => {
                unsubscribe();
                done = true;
                return { value: undefined, done: true };
            },
            [Symbol.asyncIterator]: () => iterator,
        };
        return iterator;
    }
    /** Makes `ws` the session's socket: its messages and close are the session's. */
    attach(ws) {
        const generation = ++this.generation;
        ws.onmessage = (event) => {
            if (generation !== this.generation)
                return;
            const body = bytesOf(event.data);
            if (this.backlog === undefined)
                this.receive(body, this.now());
            else
                this.backlog.push({ generation, body, at: this.now() });
        };
        ws.onclose = (event) => {
            if (generation !== this.generation)
                return;
            if (this.backlog === undefined)
                this.finish(event.code, event.reason);
            else
                this.backlog.push({ generation, code: event.code, reason: event.reason });
        };
        // An error is normally followed by a close (which says more); if none comes, the
        // session is over anyway.
        ws.onerror = () => {
            if (generation !== this.generation)
                return;
            setTimeout(() => {
                if (generation === this.generation)
                    this.finish(1006, "WebSocket error");
            }, 1000);
        };
    }
    send(message) {
        if (!this.open)
            return;
        if (this.following !== undefined) {
            this.hold(message);
            return;
        }
        this.ws.send(encodeClientMessage(message));
        this.lastSentAt = this.now();
    }
    /**
     * Keeps a message sent between zones for the destination: the latest input only (the
     * latest wins anyway), actions and pings in order, at most {@link MAX_HELD}.
     */
    hold(message) {
        if (message.type === "input")
            this.held = this.held.filter((held) => held.type !== "input");
        this.held.push(message);
        if (this.held.length > MAX_HELD)
            this.held.shift();
    }
    receive(body, receivedAt) {
        if (this.closeInfo !== undefined || this.clientError !== undefined)
            return;
        try {
            const message = decodeServerMessage(body);
            switch (message.type) {
                case "frame": {
                    const changes = this.currentMirror.apply(message.frame);
                    const update = { ...changes, frame: message.frame, receivedAt };
                    this.emit("frame", update);
                    for (const event of changes.events)
                        this.emit("event", { ...event, tick: changes.tick });
                    break;
                }
                case "pong": {
                    const ping = this.pings.get(message.nonce);
                    if (ping === undefined)
                        break;
                    this.pings.delete(message.nonce);
                    this.rttMs = receivedAt - ping.sentAt;
                    ping.resolve(this.rttMs);
                    this.emit("pong", this.rttMs);
                    break;
                }
                case "close":
                case "reject":
                    this.refusal = { reason: message.reason, detail: message.detail };
                    break;
                case "transfer":
                    this.follow(message);
                    break;
                case "welcome":
                    throw new Error("a second Welcome");
            }
        }
        catch (error) {
            // The server broke a promise (undecodable bytes, a frame that contradicts the view):
            // the mirror cannot be trusted any more, so the session ends.
            this.clientError = error instanceof Error ? error.message : String(error);
            this.send({ type: "goodbye" });
            this.leaving = true;
            this.ws.close(1000, "client error");
        }
    }
    /** The server hands the player to another zone: continue there with the ticket. */
    follow(transfer) {
        if (!this.open || this.following !== undefined)
            return; // leaving anyway
        // The old socket is done (the server closes it after the Transfer): its close and
        // anything after the Transfer mean nothing now. Pongs will not come from it.
        this.generation++;
        this.rejectPings("the session moved to another zone");
        const following = new Handshake(this.Socket, this.timeoutMs, (ws, welcome, zone) => this.resumed(ws, welcome, zone ?? transfer.zone), (info) => {
            if (this.following !== following)
                return;
            this.following = undefined;
            this.end({ ...info, rejected: false });
        });
        this.following = following;
        this.ws.close(1000, "transfer");
        this.emit("transfer", { zone: transfer.zone, address: transfer.address, websocket: transfer.websocket });
        if (this.following !== following)
            return; // a listener closed the client
        following.follow(transfer);
    }
    /** The destination welcomed the player: the session goes on there. */
    resumed(ws, welcome, zone) {
        this.following = undefined;
        const previousPlayerId = this.currentWelcome.playerId;
        this.ws = ws;
        this.currentWelcome = welcome;
        this.currentMirror = new Mirror(welcome);
        this.currentZone = zone;
        this.refusal = undefined;
        this.attach(ws);
        this.lastSentAt = this.now();
        const held = this.held;
        this.held = [];
        for (const message of held) {
            // A ping's round trip counts from now, not from before the move.
            const ping = message.type === "ping" ? this.pings.get(message.nonce) : undefined;
            if (ping !== undefined)
                ping.sentAt = this.now();
            this.send(message);
        }
        this.emit("welcome", { welcome, mirror: this.currentMirror, zone, previousPlayerId });
    }
    finish(code, reason) {
        if (this.closeInfo !== undefined)
            return;
        const info = closeInfo(code, reason, this.refusal);
        if (this.clientError !== undefined) {
            Object.assign(info, { reason: undefined, reasonName: "client_error", detail: this.clientError });
        }
        else if (info.reason === undefined && this.leaving) {
            info.reasonName = "goodbye";
        }
        this.end(info);
    }
    end(info) {
        if (this.closeInfo !== undefined)
            return;
        this.closeInfo = info;
        this.held = [];
        if (this.keepAlive !== undefined)
            clearInterval(this.keepAlive);
        this.rejectPings(`session closed: ${info.reasonName}`);
        this.resolveClosed(info);
        this.emit("close", info);
    }
    rejectPings(why) {
        for (const ping of this.pings.values())
            ping.reject(new Error(why));
        this.pings.clear();
    }
    emit(type, value) {
        for (const listener of this.listeners[type])
            listener(value);
    }
}
/** Names of the WebSocket-level close codes the protocol uses (no protocol message first). */
const WS_CODES = {
    1000: "normal",
    1002: "malformed",
    1003: "malformed",
    1006: "connection_lost",
    1009: "frame_too_large",
};
/** The close info of a WebSocket close, preferring the server's own Reject/Close message. */
function closeInfo(code, wsReason, refusal) {
    if (refusal !== undefined) {
        return { reason: refusal.reason, reasonName: closeReasonName(refusal.reason), detail: refusal.detail, code, rejected: false };
    }
    if (code >= 4000 && code < 5000) {
        const reason = code - 4000;
        return { reason, reasonName: closeReasonName(reason), detail: wsReason, code, rejected: false };
    }
    return { reason: undefined, reasonName: WS_CODES[code] ?? `ws_${code}`, detail: wsReason, code, rejected: false };
}
function bytesOf(data) {
    if (data instanceof ArrayBuffer)
        return new Uint8Array(data);
    if (ArrayBuffer.isView(data))
        return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new Error(`a non-binary WebSocket message (${typeof data})`);
}
