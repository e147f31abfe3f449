// End to end against the real server binary over WebSocket: two players join, one walks
// and the other sees it at exactly the position the server reports to the walker, a
// `throw` action brings a `hit` event and a score, leaving removes the player, refusals
// come with their reason.
//
// The server: env THRONG_BIN (default ../../target/debug/throng), started on free ports
// with a fresh data directory. Skipped when the binary is missing or prints no
// `throng web on http://ADDR/` line (a server without a web listener).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import { ConnectError, Reader, Writer, connect } from "../dist/index.js";

const BIN = process.env.THRONG_BIN ?? fileURLToPath(new URL("../../../target/debug/throng", import.meta.url));
// A small world with an interest radius past its diagonal (everyone sees everyone) keeps the
// two players in each other's view wherever they spawn.
const WORLD_ARGS = ["--world-size", "200", "--interest-radius", "300"];

/**
 * Starts the server with `args` and reads its stdout until its listening and web lines
 * are seen (or it exits, or 2 s passed after the listening line without a web line).
 * Returns the addresses found and a stop function that kills it and removes its data
 * directory.
 */
async function startServer(args) {
  const dataDir = mkdtempSync(join(tmpdir(), "throng-ts-e2e-"));
  const child = spawn(BIN, [...args, "--data-dir", dataDir], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const found = {};
  await new Promise((resolve) => {
    const lines = createInterface({ input: child.stdout });
    let grace;
    const timeout = setTimeout(resolve, 30_000);
    const done = () => {
      clearTimeout(timeout);
      clearTimeout(grace);
      resolve();
    };
    lines.on("line", (line) => {
      const web = /^throng web on http:\/\/(\S+)\/$/.exec(line);
      const tcp = /^throng listening on (\S+)$/.exec(line);
      if (web) found.web = web[1];
      if (tcp) found.tcp = tcp[1];
      if (found.web && found.tcp) done();
      // The web line, if any, comes right after the listening line.
      else if (found.tcp && grace === undefined) grace = setTimeout(done, 2000);
    });
    void exited.then(done);
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { ...found, stop, stderr: () => stderr };
}

const secret = () => randomBytes(12).toString("hex");
const guest = (prefix) => `${prefix}-${randomBytes(3).toString("hex")}`;

/** Resolves once `predicate()` holds after some frame of `client` (checked now too). */
function waitFor(client, predicate, what, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    if (predicate()) return resolve();
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const stop = client.on("frame", () => {
      if (!predicate()) return;
      clearTimeout(timer);
      stop();
      resolve();
    });
  });
}

const WORLD = 200;
const shortWay = (d) => (d > WORLD / 2 ? d - WORLD : d < -WORLD / 2 ? d + WORLD : d);
/** A direction as two i8s, the vector scaled so that its longer axis is 127. */
function direction(dx, dy) {
  const scale = 127 / Math.max(Math.abs(dx), Math.abs(dy));
  return [Math.round(dx * scale), Math.round(dy * scale)];
}

/** Walks `client` to within a step of `target` (world units), steering on every frame. */
async function walkTo(client, target) {
  const reached = () => {
    const me = client.mirror.position(client.playerId);
    return Math.hypot(shortWay(target.x - me.x), shortWay(target.y - me.y)) <= 3;
  };
  const steer = client.on("frame", () => {
    const me = client.mirror.position(client.playerId);
    const [dx, dy] = [shortWay(target.x - me.x), shortWay(target.y - me.y)];
    if (reached()) client.sendInput(0, 0);
    else client.sendInput(...direction(dx, dy));
  });
  try {
    await waitFor(client, reached, "the walk to end", 15_000);
  } finally {
    steer();
  }
  const stopSeq = client.sendInput(0, 0);
  await waitFor(client, () => client.mirror.ackSeq >= stopSeq, "the stop to be acknowledged");
}

/** The scenario, against a WebSocket URL. */
async function play(url) {
  const [annName, bobName] = [guest("ann"), guest("bob")];
  const [annSecret, bobSecret] = [secret(), secret()];
  const ann = await connect(url, annName, annSecret);
  // Subscribed before anything else is awaited: the movement event comes in the first frames.
  const annEvents = [];
  ann.on("event", (event) => annEvents.push(event));
  const bob = await connect(url, bobName, bobSecret);
  try {
    const { schema } = ann.welcome;
    assert.deepEqual([schema.components, schema.actions], [["npc", "snowball", "score"], ["throw"]]);
    assert.ok(schema.events.includes("hit"), `events: ${schema.events}`);
    assert.equal(ann.welcome.worldSize, WORLD);
    if (schema.events.includes("movement")) {
      // The walking speed, for prediction: f32, 5 units per tick by default.
      await waitFor(ann, () => annEvents.some((event) => event.name === "movement"), "the movement event");
      const movement = new Reader(annEvents.find((event) => event.name === "movement").bytes);
      assert.equal(movement.f32(), 5);
      movement.end();
    }
    await waitFor(ann, () => ann.mirror.entities.has(bob.playerId), "ann to see bob");
    await waitFor(bob, () => bob.mirror.entities.has(ann.playerId), "bob to see ann");
    assert.ok((await ann.ping()) >= 0, "a ping is answered");

    // Bob's position, per tick, as the server reports it to him and as ann sees it.
    const bobSaysBob = new Map();
    const annSeesBob = new Map();
    bob.on("frame", ({ tick }) => bobSaysBob.set(tick, { ...bob.mirror.entities.get(bob.playerId) }));
    ann.on("frame", ({ tick }) => {
      const seen = ann.mirror.entities.get(bob.playerId);
      if (seen) annSeesBob.set(tick, { ...seen });
    });

    // Bob walks to 30 units east of ann.
    const annAt = ann.mirror.position(ann.playerId);
    const bobFrom = bob.mirror.position(bob.playerId);
    const target = { x: (annAt.x + 30) % WORLD, y: annAt.y };
    await walkTo(bob, target);
    await waitFor(ann, () => ann.mirror.tick >= bob.mirror.tick, "ann to catch up with bob's tick");
    const bobNow = bob.mirror.position(bob.playerId);
    if (Math.hypot(shortWay(target.x - bobFrom.x), shortWay(target.y - bobFrom.y)) > 3) {
      const places = new Set([...bobSaysBob.values()].map(({ x, y }) => `${x},${y}`));
      assert.ok(places.size > 1, "bob walked");
    }
    let compared = 0;
    for (const [tick, seen] of annSeesBob) {
      const said = bobSaysBob.get(tick);
      if (said === undefined) continue;
      assert.deepEqual([seen.x, seen.y], [said.x, said.y], `tick ${tick}: ann sees bob where the server says bob is`);
      compared++;
    }
    assert.ok(compared >= 5, `compared ${compared} ticks`);
    assert.deepEqual(ann.mirror.position(bob.playerId), bobNow, "ann ends seeing bob where bob is");

    // Ann throws at bob until a snowball hits him (an NPC may walk into the way).
    const hits = [];
    ann.on("event", (event) => {
      if (event.name !== "hit") return;
      const reader = new Reader(event.bytes);
      hits.push({ thrower: reader.u32(), target: reader.u32() });
      reader.end();
    });
    for (let attempt = 0; attempt < 6 && !hits.some((hit) => hit.target === bob.playerId); attempt++) {
      const me = ann.mirror.position(ann.playerId);
      const him = ann.mirror.position(bob.playerId);
      const [dx, dy] = direction(shortWay(him.x - me.x), shortWay(him.y - me.y));
      ann.sendAction("throw", new Writer().i8(dx).i8(dy).bytes());
      const tick = ann.mirror.tick;
      // A snowball flies 10 ticks; the throw cooldown is 10 ticks.
      await waitFor(ann, () => ann.mirror.tick >= tick + 14, "a snowball's flight");
    }
    const hit = hits.find((hit) => hit.target === bob.playerId);
    assert.ok(hit, `a hit on bob (hits: ${JSON.stringify(hits)})`);
    assert.equal(hit.thrower, ann.playerId);
    const score = ann.mirror.component(ann.playerId, "score");
    assert.ok(score !== undefined && new Reader(score).u32() >= 1, "ann scored");
    await waitFor(bob, () => bob.mirror.component(ann.playerId, "score") !== undefined, "bob to see ann's score");

    // Refusals carry their reason, in the message and the close code (4000 + index).
    await assert.rejects(connect(url, bobName, secret()), (error) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.close.reasonName, "bad_credentials");
      assert.equal(error.close.code, 4015);
      assert.equal(error.close.rejected, true);
      return true;
    });
    await assert.rejects(connect(url, annName, annSecret), (error) => error.close.reasonName === "already_online");

    // Bob leaves: ann sees him removed.
    const bobId = bob.playerId;
    const left = await bob.close();
    assert.equal(left.reasonName, "goodbye");
    await waitFor(ann, () => !ann.mirror.entities.has(bobId), "bob's removal");
  } finally {
    await Promise.all([ann.close(), bob.close()]);
  }
  const closed = await ann.closed;
  assert.equal(closed.reasonName, "goodbye");
  assert.equal(closed.code, 1000);
}

const haveWebSocket = typeof WebSocket === "function";

test("end to end over the server's WebSocket listener", async (t) => {
  if (!haveWebSocket) return t.skip("no global WebSocket (Node 22+, or 20 with --experimental-websocket)");
  if (!existsSync(BIN)) return t.skip(`no server binary at ${BIN} (build it, or set THRONG_BIN)`);
  const server = await startServer(["--listen", "127.0.0.1:0", "--metrics", "off", "--web", "127.0.0.1:0", ...WORLD_ARGS]);
  try {
    if (server.web === undefined) {
      const said = server.stderr().trim().split("\n").pop() ?? "";
      return t.skip(`${BIN} printed no "throng web on" line (no web listener yet)${said ? `: ${said}` : ""}`);
    }
    await play(`ws://${server.web}/ws`);
  } finally {
    await server.stop();
  }
});
