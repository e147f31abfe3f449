// The client's session logic against a stand-in WebSocket (no network): Hello → Welcome,
// one seq counter for inputs and actions, pings, frames to the mirror and to listeners,
// and close reasons from the server's message or the close code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConnectError, Writer, connect, decodeClientMessage, encodeServerMessage } from "../dist/index.js";

const welcome = {
  playerId: 3, tickHz: 20, worldSize: 1000, interestRadius: 100, cellSize: 100, viewCells: 1,
  positionScale: 8, maxFrameBytes: 1 << 20,
  schema: { components: ["npc", "snowball", "score"], actions: ["throw"], events: ["hit"] },
  idleTimeoutMs: 10000, maxInputsPerS: 60,
};

/** A WebSocket stand-in the test drives: what the client sent, decoded; server actions. */
class FakeSocket {
  static last;
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closedWith = undefined;
    this.readyState = 0;
    FakeSocket.last = this;
  }
  send(bytes) {
    this.sent.push(decodeClientMessage(bytes));
  }
  close(code = 1000, reason = "") {
    this.closedWith = { code, reason };
  }
  // The server's side.
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(message) {
    const body = encodeServerMessage(message);
    this.onmessage?.({ data: body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) });
  }
  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

const options = { WebSocket: FakeSocket, keepAliveMs: 0 };

async function session(extra = {}) {
  const pending = connect("ws://test/ws", "ann", "s3cret-token", { ...options, ...extra });
  const socket = FakeSocket.last;
  socket.open();
  socket.receive({ type: "welcome", welcome });
  const client = await pending;
  await nextTurn(); // frames are applied from the first timer turn on
  return { client, socket };
}

const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

const frame = (fields) => ({
  type: "frame",
  frame: { ackSeq: 0, reset: false, events: [], removed: [], spawned: [], updated: [], ...fields },
});

test("Hello on open, Welcome opens the session", async () => {
  const { client, socket } = await session();
  assert.equal(socket.binaryType, "arraybuffer");
  assert.deepEqual(socket.sent, [{ type: "hello", protocolVersion: 3, name: "ann", secret: "s3cret-token" }]);
  assert.deepEqual(client.welcome, welcome);
  assert.equal(client.playerId, 3);
  assert.equal(client.open, true);
});

test("inputs and actions share one seq counter from 1; actions are named by the schema", async () => {
  const { client, socket } = await session();
  assert.equal(client.sendInput(127, 0), 1);
  assert.equal(client.sendAction("throw", new Writer().i8(0).i8(-127).bytes()), 2);
  assert.equal(client.sendInput(0, 0), 3);
  assert.equal(client.lastSeq, 3);
  assert.deepEqual(socket.sent.slice(1), [
    { type: "input", seq: 1, dirX: 127, dirY: 0 },
    { type: "action", seq: 2, kind: 0, bytes: Uint8Array.of(0, 0x81) },
    { type: "input", seq: 3, dirX: 0, dirY: 0 },
  ]);
  assert.throws(() => client.sendAction("jump", new Uint8Array()), /no action named "jump"/);
});

test("frames reach the mirror, then the frame and event listeners and the async iterator", async () => {
  const { client, socket } = await session({ now: () => 1234 });
  const seen = [];
  const events = [];
  client.on("frame", (update) => seen.push([update.tick, update.receivedAt, client.mirror.entities.size]));
  client.on("event", (event) => events.push([event.tick, event.name, [...event.bytes]]));
  const frames = client.frames();
  socket.receive(frame({ tick: 7, reset: true, spawned: [{ id: 3, x: 80, y: 80, components: [] }] }));
  socket.receive(frame({
    tick: 8, ackSeq: 1,
    events: [{ kind: 0, bytes: Uint8Array.of(3, 9) }],
    updated: [{ id: 3, dx: 8, dy: 0, components: [] }],
  }));
  assert.deepEqual(seen, [[7, 1234, 1], [8, 1234, 1]]);
  assert.deepEqual(events, [[8, "hit", [3, 9]]]);
  assert.deepEqual(client.mirror.position(3), { x: 11, y: 10 });
  assert.equal((await frames.next()).value.tick, 7);
  assert.equal((await frames.next()).value.tick, 8);
  socket.serverClose(4009, "shutdown");
  assert.equal((await frames.next()).done, true);
});

test("frames that came with the Welcome reach listeners added after await connect()", async () => {
  const pending = connect("ws://test/ws", "ann", "s3cret-token", options);
  const socket = FakeSocket.last;
  socket.open();
  // One read holding the Welcome, the first frame (with an event) and the close, all
  // dispatched in one go, as Node's WebSocket does.
  socket.receive({ type: "welcome", welcome });
  socket.receive(frame({ tick: 1, reset: true, events: [{ kind: 0, bytes: Uint8Array.of(3, 9) }], spawned: [{ id: 3, x: 8, y: 8, components: [] }] }));
  socket.serverClose(4009, "shutdown");
  const client = await Promise.resolve(pending).then((client) => client); // a few promise hops late
  const seen = [];
  client.on("frame", (update) => seen.push(`frame ${update.tick}`));
  client.on("event", (event) => seen.push(`event ${event.name}`));
  client.on("close", (info) => seen.push(`close ${info.reasonName}`));
  assert.deepEqual(seen, [], "nothing applied yet");
  await client.closed;
  assert.deepEqual(seen, ["frame 1", "event hit", "close shutdown"]);
  assert.equal(client.mirror.entities.size, 1);
});

test("a ping resolves with its round trip when its pong comes", async () => {
  let now = 100;
  const { client, socket } = await session({ now: () => now });
  const rtt = client.ping();
  const ping = socket.sent[1];
  assert.equal(ping.type, "ping");
  now = 142;
  socket.receive({ type: "pong", nonce: ping.nonce });
  assert.equal(await rtt, 42);
  assert.equal(client.rttMs, 42);
});

test("an idle client pings before the idle timeout", async (t) => {
  t.mock.timers.enable({ apis: ["setInterval"] });
  let now = 0;
  const { client, socket } = await session({ now: () => now, keepAliveMs: 3000 });
  now = 2000;
  t.mock.timers.tick(2000);
  assert.equal(socket.sent.length, 1, "nothing yet");
  now = 3000;
  t.mock.timers.tick(1000);
  assert.equal(socket.sent[1]?.type, "ping");
  socket.serverClose(1000);
  await client.closed;
});

test("a Reject fails the connect with its reason; the close code alone says it too", async () => {
  const refused = connect("ws://test/ws", "ann", "wrong-secret", options);
  FakeSocket.last.open();
  FakeSocket.last.receive({ type: "reject", reason: 15, detail: "wrong secret" });
  FakeSocket.last.serverClose(4015, "bad_credentials");
  await assert.rejects(refused, (error) => {
    assert.ok(error instanceof ConnectError);
    assert.deepEqual(error.close, { reason: 15, reasonName: "bad_credentials", detail: "wrong secret", code: 4015, rejected: true });
    return true;
  });
  const full = connect("ws://test/ws", "ann", "s3cret-token", options);
  FakeSocket.last.serverClose(4000, "server_full");
  await assert.rejects(full, (error) => error.close.reasonName === "server_full" && error.close.reason === 0);
  const nobody = connect("ws://test/ws", "ann", "s3cret-token", options);
  FakeSocket.last.serverClose(1006);
  await assert.rejects(nobody, (error) => error.close.reasonName === "connection_failed");
});

test("a failed upgrade reported only as an error (Node's WebSocket) fails the connect at once", async () => {
  const failing = connect("ws://test/ws", "ann", "s3cret-token", options);
  const socket = FakeSocket.last;
  // Closing the failed socket reports another error, synchronously.
  socket.close = () => socket.onerror?.({ message: "closed again" });
  socket.onerror({ message: "Server did not set Connection header" });
  await assert.rejects(failing, (error) => {
    assert.deepEqual(error.close, {
      reason: undefined, reasonName: "connection_failed", detail: "Server did not set Connection header", code: 1006, rejected: true,
    });
    return true;
  });
});

test("the session's end: the server's Close, a WebSocket-level fault, or our Goodbye", async () => {
  let { client, socket } = await session();
  socket.receive({ type: "close", reason: 11, detail: "idle for 10 s" });
  socket.serverClose(4011, "idle_timeout");
  assert.deepEqual(await client.closed, { reason: 11, reasonName: "idle_timeout", detail: "idle for 10 s", code: 4011, rejected: false });

  ({ client, socket } = await session());
  const reasons = [];
  client.on("close", (info) => reasons.push(info.reasonName));
  socket.serverClose(1009, "");
  assert.deepEqual(reasons, ["frame_too_large"]);

  ({ client, socket } = await session());
  const ending = client.close();
  assert.deepEqual(socket.sent.at(-1), { type: "goodbye" });
  assert.equal(socket.closedWith.code, 1000);
  assert.equal(client.sendInput(1, 0) > 0, true);
  assert.equal(socket.sent.at(-1).type, "goodbye", "nothing is sent after leaving");
  socket.serverClose(1000);
  assert.equal((await ending).reasonName, "goodbye");
  await assert.rejects(client.ping(), /closed/);
});

test("a frame that contradicts the view ends the session as a client error", async () => {
  const { client, socket } = await session();
  socket.receive(frame({ tick: 1, reset: true }));
  socket.receive(frame({ tick: 2, removed: [42] }));
  assert.deepEqual(socket.sent.at(-1), { type: "goodbye" });
  socket.serverClose(1000);
  const info = await client.closed;
  assert.equal(info.reasonName, "client_error");
  assert.match(info.detail, /entity 42/);
});
