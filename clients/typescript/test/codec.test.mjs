// The codec against docs/PROTOCOL.md: every byte example there must be exactly what these
// values encode to (client messages) and decode from (server messages), as the Rust test
// `documented_examples_are_exact` (clients/protocol/src/lib.rs) checks for the Rust types.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  DecodeError,
  Reader,
  Writer,
  closeReasonName,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  withLengthPrefix,
} from "../dist/index.js";

/** The byte examples of docs/PROTOCOL.md: each indented block's hex digits, in order. */
function documentedExamples() {
  const doc = readFileSync(new URL("../../../docs/PROTOCOL.md", import.meta.url), "utf8");
  const blocks = [];
  let inBlock = false;
  for (const line of doc.split("\n")) {
    const indented = line.startsWith("    ");
    if (indented && !inBlock) blocks.push("");
    if (indented) blocks[blocks.length - 1] += line;
    inBlock = indented;
  }
  return blocks.map((block) => {
    const hex = block.replace(/[\s|]/g, "");
    assert.equal(hex.length % 2, 0, `odd hex in docs/PROTOCOL.md: ${block}`);
    return Uint8Array.from(hex.match(/../g), (pair) => {
      assert.match(pair, /^[0-9a-f]{2}$/i);
      return parseInt(pair, 16);
    });
  });
}

const bytes = (...values) => Uint8Array.from(values);
const ascii = (text) => new TextEncoder().encode(text);

/** The values the documented examples show, in the order the document shows them. */
const examples = [
  { side: "client", message: { type: "hello", protocolVersion: 3, name: "ann", secret: "s3cret-token" } },
  { side: "client", message: { type: "input", seq: 1, dirX: 127, dirY: 0 } },
  // The demo game's `throw` (kind 0) with Throw { dir_x: 127, dir_y: 0 }: two raw i8 bytes.
  { side: "client", message: { type: "action", seq: 5, kind: 0, bytes: new Writer().i8(127).i8(0).bytes() } },
  {
    side: "server",
    message: {
      type: "frame",
      frame: {
        tick: 300, ackSeq: 2, reset: false, events: [], removed: [7], spawned: [],
        updated: [{ id: 3, dx: 40, dy: -40, components: [] }],
      },
    },
  },
  {
    side: "server",
    message: {
      type: "frame",
      frame: {
        tick: 301, ackSeq: 5, reset: false,
        // Hit { thrower: 3, target: 9 }: two varints.
        events: [{ kind: 0, bytes: new Writer().u32(3).u32(9).bytes() }],
        removed: [], spawned: [],
        updated: [
          { id: 3, dx: 40, dy: 0, components: [{ type: "set", kind: 2, bytes: new Writer().u32(1).bytes() }] },
          { id: 9, dx: 0, dy: 0, components: [{ type: "removed", kind: 0 }] },
        ],
      },
    },
  },
  {
    side: "server",
    message: {
      type: "welcome",
      welcome: {
        playerId: 3, tickHz: 20, worldSize: 1000, interestRadius: 50, cellSize: 50, viewCells: 1,
        positionScale: 8, maxFrameBytes: 1048576,
        schema: { components: ["npc", "snowball", "score"], actions: ["throw"], events: ["hit"] },
        idleTimeoutMs: 10000, maxInputsPerS: 60,
      },
    },
  },
];

test("docs/PROTOCOL.md shows one example per value, and the same number", () => {
  assert.equal(documentedExamples().length, examples.length);
});

for (const [i, { side, message }] of examples.entries()) {
  test(`documented example ${i + 1} (${side} ${message.type}) is exact`, () => {
    const documented = documentedExamples()[i];
    const body = documented.subarray(4);
    assert.deepEqual(withLengthPrefix(body), documented, "the prefix is the body's length, little-endian");
    if (side === "client") {
      assert.deepEqual(encodeClientMessage(message), body, "encodes to the documented bytes");
      assert.deepEqual(decodeClientMessage(body), message, "and back");
    } else {
      assert.deepEqual(decodeServerMessage(body), message, "decodes from the documented bytes");
      assert.deepEqual(encodeServerMessage(message), body, "and back");
    }
  });
}

test("the value encodings of the document's table", () => {
  assert.deepEqual(new Writer().u32(300).bytes(), bytes(0xac, 0x02));
  assert.deepEqual(new Writer().i32(40).bytes(), bytes(0x50));
  assert.deepEqual(new Writer().i32(-40).bytes(), bytes(0x4f));
  assert.deepEqual(new Writer().i32(-1).bytes(), bytes(0x01));
  assert.deepEqual(new Writer().u32(0xffff_ffff).bytes(), bytes(0xff, 0xff, 0xff, 0xff, 0x0f));
  assert.deepEqual(new Writer().i32(-0x8000_0000).bytes(), bytes(0xff, 0xff, 0xff, 0xff, 0x0f));
  assert.deepEqual(new Writer().i8(-1).bool(true).f32(1000).bytes(), bytes(0xff, 0x01, 0x00, 0x00, 0x7a, 0x44));
  for (const value of [0, 1, 127, 128, 300, 16383, 16384, 0xffff_ffff]) {
    assert.equal(new Reader(new Writer().u32(value).bytes()).u32(), value);
  }
  for (const value of [0, -1, 1, -64, 63, 64, -0x8000_0000, 0x7fff_ffff]) {
    assert.equal(new Reader(new Writer().i32(value).bytes()).i32(), value);
  }
  const max = 0xffff_ffff_ffff_ffffn;
  assert.equal(decodeServerMessage(encodeServerMessage({ type: "pong", nonce: max })).nonce, max);
});

test("longer (non-canonical) varints are accepted, as postcard does", () => {
  assert.equal(new Reader(bytes(0x81, 0x80, 0x00)).u16(), 1);
  assert.deepEqual(decodeServerMessage(bytes(0x83, 0x00, 0x05)), { type: "pong", nonce: 5n });
});

test("what postcard refuses is a DecodeError", () => {
  const refused = [
    ["empty", bytes()],
    ["unknown message type", bytes(6)],
    ["truncated transfer", bytes(5, 4, 0x65, 0x61, 0x73, 0x74)],
    ["trailing bytes", bytes(3, 1, 0)],
    ["truncated", bytes(2, 0xac)],
    ["u32 over 5 bytes", bytes(1 /* reject */, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00)],
    ["u64 over 10 bytes", bytes(3 /* pong */, ...Array(10).fill(0x80), 0x00)],
    ["u32 overflowing", bytes(1, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x00)],
    ["u16 overflowing", bytes(0, 0x03, 0xff, 0xff, 0x04)],
    ["bad bool", bytes(2, 1, 0, 2, 0, 0, 0, 0)],
    ["bad UTF-8", bytes(1, 0, 2, 0xc3, 0x28)],
    ["a length past the end", bytes(1, 0, 9, 0x61)],
    ["a list longer than the bytes", bytes(2, 1, 0, 0, 0, 0xff, 0x7f)],
    ["unknown component change", bytes(2, 1, 0, 0, 0, 0, 0, 1, 3, 0, 0, 1, 2, 0)],
  ];
  for (const [what, body] of refused) {
    assert.throws(() => decodeServerMessage(body), DecodeError, what);
  }
  assert.throws(() => decodeClientMessage(bytes(9)), DecodeError);
  assert.throws(() => decodeClientMessage(bytes(6)), DecodeError);
});

test("values out of their type's range are refused when encoding", () => {
  assert.throws(() => encodeClientMessage({ type: "input", seq: 1, dirX: 128, dirY: 0 }), RangeError);
  assert.throws(() => encodeClientMessage({ type: "input", seq: -1, dirX: 0, dirY: 0 }), RangeError);
  assert.throws(() => encodeClientMessage({ type: "action", seq: 1, kind: 70000, bytes: bytes() }), RangeError);
  assert.throws(() => encodeClientMessage({ type: "input", seq: 1.5, dirX: 0, dirY: 0 }), RangeError);
});

test("close reasons decode by index, names known or not", () => {
  const close = decodeServerMessage(encodeServerMessage({ type: "close", reason: 11, detail: "idle" }));
  assert.deepEqual(close, { type: "close", reason: 11, detail: "idle" });
  assert.equal(closeReasonName(11), "idle_timeout");
  assert.equal(closeReasonName(21), "address_limit");
  // A reason newer than this client is still a close, with a generic name.
  const newer = decodeServerMessage(bytes(1, 40, 0));
  assert.deepEqual(newer, { type: "reject", reason: 40, detail: "" });
  assert.equal(closeReasonName(40), "unknown_40");
});

test("strings are UTF-8 and sized in bytes", () => {
  const hello = { type: "hello", protocolVersion: 3, name: "é", secret: "12345678" };
  const body = encodeClientMessage(hello);
  assert.deepEqual(body.subarray(0, 5), bytes(0, 3, 2, 0xc3, 0xa9));
  assert.deepEqual(decodeClientMessage(body), hello);
  assert.deepEqual(encodeClientMessage({ type: "goodbye" }), bytes(3));
  assert.deepEqual(encodeClientMessage({ type: "ping", nonce: 300n }), bytes(2, 0xac, 0x02));
  assert.deepEqual(ascii("ok"), bytes(0x6f, 0x6b));
});

// Zones (docs/PROTOCOL.md, "Zones: `Transfer` and `Resume`"): the bytes worked out by hand
// from the postcard rules (variant index, then the fields in the order of the Rust structs
// `Resume { protocol_version, ticket }` and `Transfer { zone, address, websocket, ticket }`,
// a string or byte string being a varint length, then the bytes).
test("Resume (client index 5): version, then the ticket as a byte string", () => {
  const resume = { type: "resume", protocolVersion: 3, ticket: bytes(7, 0, 0xff, 3) };
  const body = bytes(0x05, 0x03, 0x04, 0x07, 0x00, 0xff, 0x03);
  assert.deepEqual(encodeClientMessage(resume), body);
  assert.deepEqual(decodeClientMessage(body), resume);
  // A ticket of 200 bytes: its length is a two-byte varint (200 = 0xc8 0x01).
  const long = { type: "resume", protocolVersion: 3, ticket: new Uint8Array(200).fill(0xab) };
  const encoded = encodeClientMessage(long);
  assert.deepEqual(encoded.subarray(0, 4), bytes(0x05, 0x03, 0xc8, 0x01));
  assert.equal(encoded.length, 4 + 200);
  assert.deepEqual(decodeClientMessage(encoded), long);
  assert.deepEqual(withLengthPrefix(body), bytes(7, 0, 0, 0, ...body));
});

test("Transfer (server index 5): zone, address, websocket, ticket", () => {
  const transfer = {
    type: "transfer", zone: "east", address: "10.0.0.2:7000", websocket: "ws://10.0.0.2:7080/ws", ticket: bytes(7, 0, 0xff, 3),
  };
  const body = bytes(
    0x05,
    0x04, 0x65, 0x61, 0x73, 0x74, // "east"
    0x0d, 0x31, 0x30, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x32, 0x3a, 0x37, 0x30, 0x30, 0x30, // "10.0.0.2:7000"
    0x15, 0x77, 0x73, 0x3a, 0x2f, 0x2f, // "ws://"
    0x31, 0x30, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x32, 0x3a, 0x37, 0x30, 0x38, 0x30, 0x2f, 0x77, 0x73, // "10.0.0.2:7080/ws"
    0x04, 0x07, 0x00, 0xff, 0x03,
  );
  assert.deepEqual(ascii("ws://10.0.0.2:7080/ws").length, 0x15);
  assert.deepEqual(decodeServerMessage(body), transfer);
  assert.deepEqual(encodeServerMessage(transfer), body);
  // A zone without a web listener: an empty websocket string is one zero byte.
  const tcpOnly = { type: "transfer", zone: "w", address: "h:1", websocket: "", ticket: bytes() };
  const tcpBody = bytes(0x05, 0x01, 0x77, 0x03, 0x68, 0x3a, 0x31, 0x00, 0x00);
  assert.deepEqual(decodeServerMessage(tcpBody), tcpOnly);
  assert.deepEqual(encodeServerMessage(tcpOnly), tcpBody);
  assert.throws(() => decodeServerMessage(bytes(...tcpBody, 0)), DecodeError, "trailing bytes");
});

test("the zone close reasons 23-26 by name", () => {
  assert.deepEqual([23, 24, 25, 26].map(closeReasonName), ["ticket_invalid", "ticket_expired", "ticket_used", "ticket_wrong_zone"]);
  assert.equal(closeReasonName(16), "already_online");
});
