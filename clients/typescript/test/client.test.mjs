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

// Zones: a Transfer moves the session to another server (docs/PROTOCOL.md, "Zones").
const ticket = Uint8Array.of(7, 0, 0xff, 3);
const transferTo = (websocket, zone = "east") => ({ type: "transfer", zone, address: "10.0.0.2:7000", websocket, ticket });

/** A session on "west" that walked a little: frames up to tick 100 acknowledging seq 2. */
async function walkedSession(extra = {}) {
  const { client, socket } = await session(extra);
  socket.receive(frame({ tick: 99, reset: true, spawned: [{ id: 3, x: 80, y: 80, components: [] }, { id: 4, x: 160, y: 80, components: [] }] }));
  client.sendInput(127, 0);
  client.sendInput(127, 0);
  socket.receive(frame({ tick: 100, ackSeq: 2, updated: [{ id: 3, dx: 40, dy: 0, components: [] }] }));
  return { client, west: socket };
}

test("a Transfer is followed: Resume with the ticket first, the seq goes on, a new player id and mirror", async () => {
  const { client, west } = await walkedSession();
  const westMirror = client.mirror;
  const seen = [];
  client.on("transfer", (to) => seen.push(["transfer", to, client.transferring]));
  client.on("welcome", (next) => seen.push(["welcome", next.welcome.playerId, next.previousPlayerId, next.zone, next.mirror === client.mirror]));
  client.on("frame", (update) => seen.push(["frame", update.tick, client.playerId, [...client.mirror.entities.keys()]]));
  client.on("close", (info) => seen.push(["close", info.reasonName]));

  west.receive(transferTo("ws://10.0.0.2:7080/ws"));
  west.serverClose(1000); // the server closes after the Transfer: not the session's end
  assert.deepEqual(seen, [["transfer", { zone: "east", address: "10.0.0.2:7000", websocket: "ws://10.0.0.2:7080/ws" }, true]]);
  assert.equal(west.closedWith.code, 1000, "the old socket is closed");
  assert.equal(west.sent.some((m) => m.type === "goodbye"), false, "no Goodbye: the player is not leaving");
  const east = FakeSocket.last;
  assert.notEqual(east, west);
  assert.equal(east.url, "ws://10.0.0.2:7080/ws");
  assert.equal(east.binaryType, "arraybuffer");
  assert.equal(client.open, true);

  // Sent between zones: held, the latest input only, sent after the Welcome.
  assert.equal(client.sendInput(0, 127), 3);
  assert.equal(client.sendInput(0, -127), 4);
  assert.equal(east.sent.length, 0, "nothing before the socket opens");
  east.open();
  assert.deepEqual(east.sent, [{ type: "resume", protocolVersion: 3, ticket }], "Resume with the exact ticket, first");
  // The Welcome and the first frames in one dispatch, as Node's WebSocket does.
  east.receive({ type: "welcome", welcome: { ...welcome, playerId: 42 } });
  east.receive(frame({ tick: 5, ackSeq: 2, reset: true, spawned: [{ id: 42, x: 800, y: 80, components: [] }, { id: 3, x: 900, y: 80, components: [] }] }));
  assert.deepEqual(east.sent.slice(1), [{ type: "input", seq: 4, dirX: 0, dirY: -127 }]);
  assert.equal(client.playerId, 42);
  assert.equal(client.welcome.playerId, 42);
  assert.equal(client.zone, "east");
  assert.equal(client.transferring, false);
  assert.notEqual(client.mirror, westMirror, "a fresh mirror");
  assert.deepEqual([...westMirror.entities.keys()], [3, 4], "the old mirror is left as it was");
  assert.deepEqual(client.mirror.position(42), { x: 100, y: 10 });
  assert.deepEqual(client.mirror.position(3), { x: 112.5, y: 10 }, "id 3 is someone else here, not blended with west's 3");
  assert.equal(client.sendInput(127, 127), 5, "the counter goes on");
  assert.deepEqual(east.sent.at(-1), { type: "input", seq: 5, dirX: 127, dirY: 127 });
  assert.deepEqual(seen.slice(1), [
    ["welcome", 42, 3, "east", true],
    ["frame", 5, 42, [42, 3]],
  ]);
  // The session goes on, then ends on the new socket.
  east.receive({ type: "close", reason: 9, detail: "stopping" });
  east.serverClose(4009, "shutdown");
  assert.deepEqual(await client.closed, { reason: 9, reasonName: "shutdown", detail: "stopping", code: 4009, rejected: false });
});

test("a refused Resume ends the session with the destination's reason and where it was going", async () => {
  const { client, west } = await walkedSession();
  west.receive(transferTo("ws://east/ws"));
  const east = FakeSocket.last;
  east.open();
  east.receive({ type: "reject", reason: 25, detail: "ticket used already" });
  east.serverClose(4025, "ticket_used");
  assert.deepEqual(await client.closed, {
    reason: 25, reasonName: "ticket_used", detail: "ticket used already", code: 4025, rejected: false,
    transfer: { zone: "east", address: "10.0.0.2:7000", websocket: "ws://east/ws" },
  });
  assert.equal(client.open, false);
  assert.equal(client.playerId, 3, "still the last zone's welcome");
});

test("a Transfer without a WebSocket URL ends the session as transfer_failed", async () => {
  const { client, west } = await walkedSession();
  const pending = client.ping();
  west.receive(transferTo(""));
  assert.equal(FakeSocket.last, west, "no socket opened");
  const info = await client.closed;
  assert.equal(info.reasonName, "transfer_failed");
  assert.equal(info.rejected, false);
  assert.match(info.detail, /zone east has no WebSocket listener .*10\.0\.0\.2:7000/);
  assert.deepEqual(info.transfer, { zone: "east", address: "10.0.0.2:7000", websocket: "" });
  await assert.rejects(pending, /another zone/);
  west.serverClose(1000); // late: changes nothing
  assert.equal((await client.closed).reasonName, "transfer_failed");
});

test("a destination that never welcomes times out; one that does not connect fails", async () => {
  let { client, socket } = await session({ timeoutMs: 20 });
  socket.receive(transferTo("ws://east/ws"));
  FakeSocket.last.open();
  let info = await client.closed;
  assert.equal(info.reasonName, "timeout");
  assert.equal(info.transfer.zone, "east");
  assert.equal(FakeSocket.last.closedWith.code, 1000);

  ({ client, socket } = await session());
  socket.receive(transferTo("ws://east/ws"));
  FakeSocket.last.serverClose(1006);
  info = await client.closed;
  assert.equal(info.reasonName, "connection_failed");
  assert.equal(info.transfer.websocket, "ws://east/ws");
});

test("leaving between zones: a Goodbye to the destination if its socket is open", async () => {
  const { client, west } = await walkedSession();
  west.receive(transferTo("ws://east/ws"));
  const east = FakeSocket.last;
  east.open();
  const info = await client.close();
  assert.equal(info.reasonName, "goodbye");
  assert.deepEqual(east.sent.map((m) => m.type), ["resume", "goodbye"]);
  assert.equal(east.closedWith.code, 1000);
  east.receive({ type: "welcome", welcome: { ...welcome, playerId: 42 } }); // too late: ignored
  assert.equal(client.playerId, 3);
});

test("a Transfer instead of the Welcome at connect is followed too", async () => {
  const pending = connect("ws://west/ws", "ann", "s3cret-token", options);
  const west = FakeSocket.last;
  west.open();
  west.receive(transferTo("ws://east/ws"));
  west.serverClose(1000);
  const east = FakeSocket.last;
  assert.notEqual(east, west);
  east.open();
  assert.deepEqual(east.sent, [{ type: "resume", protocolVersion: 3, ticket }]);
  east.receive({ type: "welcome", welcome: { ...welcome, playerId: 42 } });
  const client = await pending;
  assert.equal(client.playerId, 42);
  assert.equal(client.zone, "east");
  assert.equal(client.sendInput(1, 0), 1);

  // Refused there: the connect fails with the reason and the transfer.
  const refused = connect("ws://west/ws", "ann", "s3cret-token", options);
  FakeSocket.last.open();
  FakeSocket.last.receive(transferTo("ws://east/ws"));
  FakeSocket.last.open();
  FakeSocket.last.receive({ type: "reject", reason: 24, detail: "expired" });
  FakeSocket.last.serverClose(4024, "ticket_expired");
  await assert.rejects(refused, (error) => {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.close.reasonName, "ticket_expired");
    assert.equal(error.close.rejected, true);
    assert.equal(error.close.transfer.zone, "east");
    return true;
  });
});
