/**
 * Postcard 1.x value encoding (docs/PROTOCOL.md, "Encoding of values"): the primitives the
 * message codec is made of, exported because a game encodes its own action values and
 * decodes its own component and event values with the same rules (a `throw`'s two `i8`s,
 * a `hit`'s two varints).
 *
 * Reading is strict, as the server's postcard is: a varint longer than its type allows or
 * overflowing it, a bool other than 0/1, invalid UTF-8 or a length past the end is a
 * {@link DecodeError}, never a silently wrong value.
 */
/** The bytes do not decode as the expected value. */
export declare class DecodeError extends Error {
    constructor(message: string);
}
/** Appends postcard values to a growing buffer. */
export declare class Writer {
    private buffer;
    private length;
    constructor(capacity?: number);
    /** The bytes written so far (a copy: the writer may be reused). */
    bytes(): Uint8Array<ArrayBuffer>;
    private reserve;
    u8(value: number): this;
    i8(value: number): this;
    bool(value: boolean): this;
    /** Unsigned LEB128, shortest form (what postcard writes). */
    u16(value: number): this;
    u32(value: number): this;
    /** u64 as a bigint: a JavaScript number cannot hold every u64. */
    u64(value: bigint): this;
    /** Zigzag, then varint: small magnitudes of either sign stay short. */
    i32(value: number): this;
    f32(value: number): this;
    /** A byte string: varint length, then the bytes. */
    byteString(value: Uint8Array): this;
    /** A string: its UTF-8 bytes as a byte string. */
    string(value: string): this;
    /** A list: varint count, then each element written by `item`. */
    list<T>(items: readonly T[], item: (writer: this, value: T) => void): this;
    /** A varint of a value already known to be a u32 (lengths, indices). */
    private varint;
}
/** Reads postcard values from the front of a byte array. */
export declare class Reader {
    private readonly bytes;
    private offset;
    private readonly view;
    constructor(bytes: Uint8Array);
    /** Bytes not read yet. */
    get remaining(): number;
    /** Fails unless every byte was read: a body is exactly one message. */
    end(): void;
    u8(): number;
    i8(): number;
    bool(): boolean;
    u16(): number;
    u32(): number;
    u64(): bigint;
    i32(): number;
    f32(): number;
    /** A byte string (a copy, so that keeping it does not pin the whole message). */
    byteString(): Uint8Array;
    string(): string;
    /** A list: a varint count, then `count` elements read by `item`. */
    list<T>(item: (reader: this) => T): T[];
    private length;
    /** Unsigned LEB128 of at most `maxBytes` bytes whose value fits `bits` bits. */
    private varint;
}
