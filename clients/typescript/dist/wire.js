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
export class DecodeError extends Error {
    constructor(message) {
        super(message);
        this.name = "DecodeError";
    }
}
const utf8Encoder = new TextEncoder();
// fatal: bad UTF-8 is an error on the wire, as in Rust's `String` deserialisation.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });
/** Appends postcard values to a growing buffer. */
export class Writer {
    constructor(capacity = 64) {
        this.length = 0;
        this.buffer = new Uint8Array(Math.max(capacity, 8));
    }
    /** The bytes written so far (a copy: the writer may be reused). */
    bytes() {
        return this.buffer.slice(0, this.length);
    }
    reserve(extra) {
        if (this.length + extra <= this.buffer.length)
            return;
        let capacity = this.buffer.length * 2;
        while (capacity < this.length + extra)
            capacity *= 2;
        const grown = new Uint8Array(capacity);
        grown.set(this.buffer.subarray(0, this.length));
        this.buffer = grown;
    }
    u8(value) {
        checkInteger(value, 0, 0xff, "u8");
        this.reserve(1);
        this.buffer[this.length++] = value;
        return this;
    }
    i8(value) {
        checkInteger(value, -0x80, 0x7f, "i8");
        return this.u8(value & 0xff);
    }
    bool(value) {
        return this.u8(value ? 1 : 0);
    }
    /** Unsigned LEB128, shortest form (what postcard writes). */
    u16(value) {
        checkInteger(value, 0, 0xffff, "u16");
        return this.varint(value);
    }
    u32(value) {
        checkInteger(value, 0, 4294967295, "u32");
        return this.varint(value);
    }
    /** u64 as a bigint: a JavaScript number cannot hold every u64. */
    u64(value) {
        if (value < 0n || value > 0xffffffffffffffffn)
            throw new RangeError(`u64 out of range: ${value}`);
        this.reserve(10);
        let rest = value;
        while (rest >= 0x80n) {
            this.buffer[this.length++] = Number(rest & 0x7fn) | 0x80;
            rest >>= 7n;
        }
        this.buffer[this.length++] = Number(rest);
        return this;
    }
    /** Zigzag, then varint: small magnitudes of either sign stay short. */
    i32(value) {
        checkInteger(value, -2147483648, 2147483647, "i32");
        return this.varint(((value << 1) ^ (value >> 31)) >>> 0);
    }
    f32(value) {
        this.reserve(4);
        new DataView(this.buffer.buffer).setFloat32(this.length, value, true);
        this.length += 4;
        return this;
    }
    /** A byte string: varint length, then the bytes. */
    byteString(value) {
        this.varint(value.length);
        this.reserve(value.length);
        this.buffer.set(value, this.length);
        this.length += value.length;
        return this;
    }
    /** A string: its UTF-8 bytes as a byte string. */
    string(value) {
        return this.byteString(utf8Encoder.encode(value));
    }
    /** A list: varint count, then each element written by `item`. */
    list(items, item) {
        this.varint(items.length);
        for (const value of items)
            item(this, value);
        return this;
    }
    /** A varint of a value already known to be a u32 (lengths, indices). */
    varint(value) {
        this.reserve(5);
        let rest = value;
        while (rest >= 0x80) {
            this.buffer[this.length++] = (rest & 0x7f) | 0x80;
            rest = Math.floor(rest / 128);
        }
        this.buffer[this.length++] = rest;
        return this;
    }
}
function checkInteger(value, min, max, type) {
    if (!Number.isInteger(value) || value < min || value > max) {
        throw new RangeError(`${type} out of range: ${value}`);
    }
}
/** Reads postcard values from the front of a byte array. */
export class Reader {
    constructor(bytes) {
        this.bytes = bytes;
        this.offset = 0;
        this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    /** Bytes not read yet. */
    get remaining() {
        return this.bytes.length - this.offset;
    }
    /** Fails unless every byte was read: a body is exactly one message. */
    end() {
        if (this.remaining !== 0)
            throw new DecodeError(`${this.remaining} trailing bytes`);
    }
    u8() {
        if (this.offset >= this.bytes.length)
            throw new DecodeError("unexpected end of bytes");
        return this.bytes[this.offset++];
    }
    i8() {
        const byte = this.u8();
        return byte >= 0x80 ? byte - 0x100 : byte;
    }
    bool() {
        const byte = this.u8();
        if (byte > 1)
            throw new DecodeError(`bad bool ${byte}`);
        return byte === 1;
    }
    u16() {
        return this.varint(3, 16);
    }
    u32() {
        return this.varint(5, 32);
    }
    u64() {
        let value = 0n;
        for (let i = 0; i < 10; i++) {
            const byte = this.u8();
            if (i === 9 && byte > 0x01)
                throw new DecodeError("u64 varint overflows");
            value |= BigInt(byte & 0x7f) << BigInt(7 * i);
            if ((byte & 0x80) === 0)
                return value;
        }
        throw new DecodeError("u64 varint longer than 10 bytes");
    }
    i32() {
        const zigzag = this.u32();
        return (zigzag >>> 1) ^ -(zigzag & 1);
    }
    f32() {
        if (this.remaining < 4)
            throw new DecodeError("unexpected end of bytes in f32");
        const value = this.view.getFloat32(this.offset, true);
        this.offset += 4;
        return value;
    }
    /** A byte string (a copy, so that keeping it does not pin the whole message). */
    byteString() {
        const length = this.length();
        const value = this.bytes.slice(this.offset, this.offset + length);
        this.offset += length;
        return value;
    }
    string() {
        const length = this.length();
        const raw = this.bytes.subarray(this.offset, this.offset + length);
        this.offset += length;
        try {
            return utf8Decoder.decode(raw);
        }
        catch {
            throw new DecodeError("string is not UTF-8");
        }
    }
    /** A list: a varint count, then `count` elements read by `item`. */
    list(item) {
        const count = this.u32();
        // Each element takes at least one byte: a count above what is left is damage, and
        // checking it first keeps a forged count from allocating a huge array.
        if (count > this.remaining)
            throw new DecodeError(`list of ${count} past the end`);
        const items = [];
        for (let i = 0; i < count; i++)
            items.push(item(this));
        return items;
    }
    length() {
        const length = this.u32();
        if (length > this.remaining)
            throw new DecodeError(`length ${length} past the end`);
        return length;
    }
    /** Unsigned LEB128 of at most `maxBytes` bytes whose value fits `bits` bits. */
    varint(maxBytes, bits) {
        let value = 0;
        let scale = 1;
        for (let i = 0; i < maxBytes; i++) {
            const byte = this.u8();
            if (i === maxBytes - 1 && byte >> (bits - 7 * i) !== 0) {
                throw new DecodeError(`u${bits} varint overflows`);
            }
            value += (byte & 0x7f) * scale;
            if ((byte & 0x80) === 0)
                return value;
            scale *= 128;
        }
        throw new DecodeError(`u${bits} varint longer than ${maxBytes} bytes`);
    }
}
