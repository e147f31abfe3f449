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
/**
 * Opens a session as `name` with `secret` at `url` (`ws://HOST:PORT/ws`); resolves once
 * the Welcome arrived. Rejects with {@link ConnectError} (a Reject, a failed connection, a
 * timeout).
 */
export function connect(url, name, secret, options = {}) {
    const Socket = options.WebSocket ?? globalThis.WebSocket;
    if (Socket === undefined)
        return Promise.reject(new Error("no WebSocket: pass options.WebSocket"));
    const now = options.now ?? (() => performance.now());
    const ws = new Socket(url);
    ws.binaryType = "arraybuffer";
    return new Promise((resolve, reject) => {
        let refusal;
        let settled = false;
        const fail = (close) => {
            if (settled)
                return;
            settled = true;
            clearTimeout(timer);
            reject(new ConnectError(close));
        };
        const timer = setTimeout(() => {
            fail({ reason: undefined, reasonName: "timeout", detail: "no Welcome in time", code: 1006, rejected: true });
            ws.close();
        }, options.timeoutMs ?? 10000);
        ws.onopen = () => {
            ws.send(encodeClientMessage({ type: "hello", protocolVersion: PROTOCOL_VERSION, name, secret }));
        };
        ws.onmessage = (event) => {
            if (settled)
                return;
            let message;
            try {
                message = decodeServerMessage(bytesOf(event.data));
            }
            catch (error) {
                fail({ reason: undefined, reasonName: "client_error", detail: String(error), code: 1006, rejected: true });
                ws.close();
                return;
            }
            if (message.type === "welcome") {
                settled = true;
                clearTimeout(timer);
                resolve(new ThrongClient(ws, message.welcome, now, options.keepAliveMs));
            }
            else if (message.type === "reject" || message.type === "close") {
                refusal = { reason: message.reason, detail: message.detail };
            }
            else {
                fail({ reason: undefined, reasonName: "client_error", detail: `${message.type} before Welcome`, code: 1006, rejected: true });
                ws.close();
            }
        };
        ws.onclose = (event) => {
            const info = closeInfo(event.code, event.reason, refusal);
            if (refusal === undefined && info.reason === undefined)
                info.reasonName = "connection_failed";
            fail({ ...info, rejected: true });
        };
        // Browsers follow an error with a close; some WebSocket implementations (Node 20's, when
        // the upgrade response is refused) report only the error.
        ws.onerror = (event) => {
            if (settled)
                return; // (closing a failed socket may report another error)
            if (refusal !== undefined) {
                fail({ ...closeInfo(1006, "", refusal), rejected: true });
            }
            else {
                const message = event.message;
                const detail = typeof message === "string" ? message : "WebSocket error";
                fail({ reason: undefined, reasonName: "connection_failed", detail, code: 1006, rejected: true });
            }
            ws.close();
        };
    });
}
/** An open session. Create it with {@link connect}. */
export class ThrongClient {
    /** @internal Use {@link connect}. */
    constructor(ws, welcome, now, keepAliveMs) {
        this.ws = ws;
        this.now = now;
        this.lastSeqSent = 0;
        this.nonce = 0n;
        this.pings = new Map();
        this.listeners = {
            frame: new Set(),
            event: new Set(),
            pong: new Set(),
            close: new Set(),
        };
        this.leaving = false;
        /**
         * What arrived before the caller of connect() could subscribe (see the constructor),
         * in order; undefined once handed over.
         */
        this.backlog = [];
        this.welcome = welcome;
        this.mirror = new Mirror(welcome);
        this.lastSentAt = now();
        this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
        // The first frames often arrive with the Welcome, and some WebSocket implementations
        // (Node's) dispatch them in the same task, before the code after `await connect()`
        // runs. They are held until a timer's turn, which comes after every pending promise
        // continuation: listeners added right after connect() resolved see every frame.
        ws.onmessage = (event) => {
            const body = bytesOf(event.data);
            if (this.backlog === undefined)
                this.receive(body, this.now());
            else
                this.backlog.push({ body, at: this.now() });
        };
        ws.onclose = (event) => {
            if (this.backlog === undefined)
                this.finish(event.code, event.reason);
            else
                this.backlog.push({ code: event.code, reason: event.reason });
        };
        setTimeout(() => {
            const backlog = this.backlog ?? [];
            this.backlog = undefined;
            for (const item of backlog) {
                if ("body" in item)
                    this.receive(item.body, item.at);
                else
                    this.finish(item.code, item.reason);
            }
        }, 0);
        // An error is normally followed by a close (which says more); if none comes, the
        // session is over anyway.
        ws.onerror = () => {
            setTimeout(() => this.finish(1006, "WebSocket error"), 1000);
        };
        const keepAlive = keepAliveMs ?? welcome.idleTimeoutMs / 3;
        if (keepAlive > 0) {
            this.keepAlive = setInterval(() => {
                if (this.now() - this.lastSentAt >= keepAlive)
                    this.ping().catch(() => { });
            }, Math.min(keepAlive, 1000));
        }
    }
    /** The client's own entity id. */
    get playerId() {
        return this.welcome.playerId;
    }
    /** The seq of the last input or action sent (0: none). */
    get lastSeq() {
        return this.lastSeqSent;
    }
    /** Whether the session is still open. */
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
            this.send({ type: "goodbye" });
            this.leaving = true;
            this.ws.close(1000, "goodbye");
        }
        return this.closed;
    }
    /** Calls `listener` on each `type` notification; returns the function that unsubscribes. */
    on(type, listener) {
        const set = this.listeners[type];
        set.add(listener);
        return () => set.delete(listener);
    }
    /** The frames applied from now on, until the session ends (buffered if not awaited). */
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
    send(message) {
        if (!this.open)
            return;
        this.ws.send(encodeClientMessage(message));
        this.lastSentAt = this.now();
    }
    receive(body, receivedAt) {
        if (this.closeInfo !== undefined || this.clientError !== undefined)
            return;
        try {
            const message = decodeServerMessage(body);
            switch (message.type) {
                case "frame": {
                    const changes = this.mirror.apply(message.frame);
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
        this.closeInfo = info;
        if (this.keepAlive !== undefined)
            clearInterval(this.keepAlive);
        for (const ping of this.pings.values())
            ping.reject(new Error(`session closed: ${info.reasonName}`));
        this.pings.clear();
        this.resolveClosed(info);
        this.emit("close", info);
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
