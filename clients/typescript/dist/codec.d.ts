/**
 * Message bodies to bytes and back: a body is one postcard enum (varint variant index, then
 * the variant's fields in order). Over WebSocket one binary message is one body; over TCP
 * the same body follows a 4-byte little-endian length ({@link withLengthPrefix}).
 *
 * Both directions are here for both message families: a client needs to encode
 * ClientMessage and decode ServerMessage; the other two let tests and tools play the
 * server (and check the documented examples both ways).
 */
import type { ClientMessage, ServerMessage } from "./messages.js";
/** Encodes a client message body. */
export declare function encodeClientMessage(message: ClientMessage): Uint8Array<ArrayBuffer>;
/** Decodes a client message body (what a server reads; for tests and tools). */
export declare function decodeClientMessage(body: Uint8Array): ClientMessage;
/** Encodes a server message body (for tests and tools that play the server). */
export declare function encodeServerMessage(message: ServerMessage): Uint8Array<ArrayBuffer>;
/**
 * Decodes a server message body. Throws {@link DecodeError} on anything postcard would
 * refuse (truncation, overflowing varints, bad UTF-8, trailing bytes). An unknown close
 * reason index is kept as a number: newer servers may add reasons.
 */
export declare function decodeServerMessage(body: Uint8Array): ServerMessage;
/** A TCP frame: the body behind its 4-byte little-endian length. */
export declare function withLengthPrefix(body: Uint8Array): Uint8Array<ArrayBuffer>;
