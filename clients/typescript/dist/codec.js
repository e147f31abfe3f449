/**
 * Message bodies to bytes and back: a body is one postcard enum (varint variant index, then
 * the variant's fields in order). Over WebSocket one binary message is one body; over TCP
 * the same body follows a 4-byte little-endian length ({@link withLengthPrefix}).
 *
 * Both directions are here for both message families: a client needs to encode
 * ClientMessage and decode ServerMessage; the other two let tests and tools play the
 * server (and check the documented examples both ways).
 */
import { DecodeError, Reader, Writer } from "./wire.js";
const CLIENT_INDEX = { hello: 0, input: 1, ping: 2, goodbye: 3, action: 4, resume: 5 };
const SERVER_INDEX = { welcome: 0, reject: 1, frame: 2, pong: 3, close: 4, transfer: 5 };
/** Encodes a client message body. */
export function encodeClientMessage(message) {
    const w = new Writer(message.type === "action" ? 16 + message.bytes.length : message.type === "resume" ? 16 + message.ticket.length : 64);
    w.u32(CLIENT_INDEX[message.type]);
    switch (message.type) {
        case "hello":
            w.u16(message.protocolVersion).string(message.name).string(message.secret);
            break;
        case "input":
            w.u32(message.seq).i8(message.dirX).i8(message.dirY);
            break;
        case "ping":
            w.u64(message.nonce);
            break;
        case "goodbye":
            break;
        case "action":
            w.u32(message.seq).u16(message.kind).byteString(message.bytes);
            break;
        case "resume":
            w.u16(message.protocolVersion).byteString(message.ticket);
            break;
    }
    return w.bytes();
}
/** Decodes a client message body (what a server reads; for tests and tools). */
export function decodeClientMessage(body) {
    const r = new Reader(body);
    const index = r.u32();
    let message;
    switch (index) {
        case 0:
            message = { type: "hello", protocolVersion: r.u16(), name: r.string(), secret: r.string() };
            break;
        case 1:
            message = { type: "input", seq: r.u32(), dirX: r.i8(), dirY: r.i8() };
            break;
        case 2:
            message = { type: "ping", nonce: r.u64() };
            break;
        case 3:
            message = { type: "goodbye" };
            break;
        case 4:
            message = { type: "action", seq: r.u32(), kind: r.u16(), bytes: r.byteString() };
            break;
        case 5:
            message = { type: "resume", protocolVersion: r.u16(), ticket: r.byteString() };
            break;
        default:
            throw new DecodeError(`unknown client message type ${index}`);
    }
    r.end();
    return message;
}
/** Encodes a server message body (for tests and tools that play the server). */
export function encodeServerMessage(message) {
    const w = new Writer(256);
    w.u32(SERVER_INDEX[message.type]);
    switch (message.type) {
        case "welcome":
            writeWelcome(w, message.welcome);
            break;
        case "reject":
        case "close":
            w.u32(message.reason).string(message.detail);
            break;
        case "frame":
            writeFrame(w, message.frame);
            break;
        case "pong":
            w.u64(message.nonce);
            break;
        case "transfer":
            w.string(message.zone).string(message.address).string(message.websocket).byteString(message.ticket);
            break;
    }
    return w.bytes();
}
/**
 * Decodes a server message body. Throws {@link DecodeError} on anything postcard would
 * refuse (truncation, overflowing varints, bad UTF-8, trailing bytes). An unknown close
 * reason index is kept as a number: newer servers may add reasons.
 */
export function decodeServerMessage(body) {
    const r = new Reader(body);
    const index = r.u32();
    let message;
    switch (index) {
        case 0:
            message = { type: "welcome", welcome: readWelcome(r) };
            break;
        case 1:
            message = { type: "reject", reason: r.u32(), detail: r.string() };
            break;
        case 2:
            message = { type: "frame", frame: readFrame(r) };
            break;
        case 3:
            message = { type: "pong", nonce: r.u64() };
            break;
        case 4:
            message = { type: "close", reason: r.u32(), detail: r.string() };
            break;
        case 5:
            message = { type: "transfer", zone: r.string(), address: r.string(), websocket: r.string(), ticket: r.byteString() };
            break;
        default:
            throw new DecodeError(`unknown server message type ${index}`);
    }
    r.end();
    return message;
}
/** A TCP frame: the body behind its 4-byte little-endian length. */
export function withLengthPrefix(body) {
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length, true);
    frame.set(body, 4);
    return frame;
}
function writeWelcome(w, welcome) {
    w.u32(welcome.playerId)
        .u16(welcome.tickHz)
        .f32(welcome.worldSize)
        .f32(welcome.interestRadius)
        .f32(welcome.cellSize)
        .u32(welcome.viewCells)
        .f32(welcome.positionScale)
        .u32(welcome.maxFrameBytes);
    const names = (list) => w.list(list, (w, name) => w.string(name));
    names(welcome.schema.components);
    names(welcome.schema.actions);
    names(welcome.schema.events);
    w.u32(welcome.idleTimeoutMs).u32(welcome.maxInputsPerS);
}
function readWelcome(r) {
    const playerId = r.u32();
    const tickHz = r.u16();
    const worldSize = r.f32();
    const interestRadius = r.f32();
    const cellSize = r.f32();
    const viewCells = r.u32();
    const positionScale = r.f32();
    const maxFrameBytes = r.u32();
    const names = () => r.list((r) => r.string());
    const schema = { components: names(), actions: names(), events: names() };
    return {
        playerId,
        tickHz,
        worldSize,
        interestRadius,
        cellSize,
        viewCells,
        positionScale,
        maxFrameBytes,
        schema,
        idleTimeoutMs: r.u32(),
        maxInputsPerS: r.u32(),
    };
}
function writeFrame(w, frame) {
    w.u32(frame.tick).u32(frame.ackSeq).bool(frame.reset);
    w.list(frame.events, (w, event) => w.u16(event.kind).byteString(event.bytes));
    w.list(frame.removed, (w, id) => w.u32(id));
    w.list(frame.spawned, (w, spawn) => {
        w.u32(spawn.id).u32(spawn.x).u32(spawn.y);
        w.list(spawn.components, (w, value) => w.u16(value.kind).byteString(value.bytes));
    });
    w.list(frame.updated, (w, update) => {
        w.u32(update.id).i32(update.dx).i32(update.dy);
        w.list(update.components, (w, change) => {
            w.u32(change.type === "set" ? 0 : 1).u16(change.kind);
            if (change.type === "set")
                w.byteString(change.bytes);
        });
    });
}
function readFrame(r) {
    const tick = r.u32();
    const ackSeq = r.u32();
    const reset = r.bool();
    const events = r.list((r) => ({ kind: r.u16(), bytes: r.byteString() }));
    const removed = r.list((r) => r.u32());
    const spawned = r.list((r) => ({ id: r.u32(), x: r.u32(), y: r.u32(), components: r.list(readValue) }));
    const updated = r.list((r) => ({ id: r.u32(), dx: r.i32(), dy: r.i32(), components: r.list(readChange) }));
    return { tick, ackSeq, reset, events, removed, spawned, updated };
}
function readValue(r) {
    return { kind: r.u16(), bytes: r.byteString() };
}
function readChange(r) {
    const variant = r.u32();
    switch (variant) {
        case 0:
            return { type: "set", kind: r.u16(), bytes: r.byteString() };
        case 1:
            return { type: "removed", kind: r.u16() };
        default:
            throw new DecodeError(`unknown component change ${variant}`);
    }
}
