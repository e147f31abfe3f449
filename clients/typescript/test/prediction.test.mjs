// Prediction against a simulated server 100 ms away (each way): the player moves on the
// next rendered frame after a key press, stays about a round trip ahead of the frames, and
// when the server disagrees the drawn position glides to the server's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Predictor } from "../dist/index.js";

const TICK_MS = 50;
const WORLD = 1000;
const SPEED = 5;
const LATENCY = 100;

const wrap = (c) => ((c % WORLD) + WORLD) % WORLD;
const shortWay = (d) => (d > WORLD / 2 ? d - WORLD : d < -WORLD / 2 ? d + WORLD : d);
const distance = (a, b) => Math.hypot(shortWay(b.x - a.x), shortWay(b.y - a.y));

/** The demo game's movement rule, as the client knows it. */
function walk(speed) {
  return (position, [dx, dy]) => {
    const length = Math.hypot(dx, dy);
    if (length === 0) return position;
    return { x: wrap(position.x + (dx / length) * speed), y: wrap(position.y + (dy / length) * speed) };
  };
}

/**
 * A server ticking every 50 ms (phase 13 ms) that applies the latest input that reached it,
 * moves the player with `serverStep`, and sends a frame; messages take LATENCY ms each way.
 * `script(time)` returns the input to send at `time` (undefined: none). Renders every
 * 16 ms; returns what was drawn and what the server had.
 */
function simulate({ serverStep, clientStep, script, until }) {
  const predictor = new Predictor({ step: clientStep, tickHz: 20, worldSize: WORLD, idle: [0, 0] });
  const toServer = [];
  const toClient = [];
  let server = { position: { x: 500, y: 500 }, input: [0, 0], ack: 0 };
  const truth = new Map(); // tick → server position
  const drawn = []; // { time, position }
  const sentAt = new Map();
  let seq = 0;
  let tick = 0;
  for (let time = 0; time <= until; time++) {
    // Client sends.
    const input = script(time);
    if (input !== undefined) {
      seq++;
      sentAt.set(seq, time);
      toServer.push({ at: time + LATENCY, seq, input });
      predictor.setInput(seq, input, time);
    }
    // Server ticks.
    if (time % TICK_MS === 13) {
      tick++;
      while (toServer.length > 0 && toServer[0].at <= time) {
        const message = toServer.shift();
        server.input = message.input;
        server.ack = message.seq;
      }
      const next = serverStep(server.position, server.input);
      // Positions travel rounded to 1/8 unit.
      server.position = { x: Math.round(next.x * 8) / 8, y: Math.round(next.y * 8) / 8 };
      truth.set(tick, { ...server.position });
      toClient.push({ at: time + LATENCY, tick, ack: server.ack, position: { ...server.position } });
    }
    // Client receives.
    while (toClient.length > 0 && toClient[0].at <= time) {
      const frame = toClient.shift();
      predictor.reconcile(frame.tick, frame.ack, frame.position, time);
    }
    if (time % 16 === 0 && predictor.started) drawn.push({ time, position: predictor.position(time) });
  }
  return { predictor, drawn, truth, sentAt, finalServer: server.position };
}

const at = (drawn, time) => drawn.find((d) => d.time >= time).position;

test("the own position moves on the next frame after an input, long before the server answers", () => {
  const right = 1000;
  const stop = 2000;
  const { drawn, truth, finalServer, predictor } = simulate({
    serverStep: walk(SPEED),
    clientStep: walk(SPEED),
    // Press right at 1 s (and repeat it every 100 ms while held, as the page does), let go at 2 s.
    script: (time) => (time >= right && time < stop && (time - right) % 100 === 0 ? [127, 0] : time === stop ? [0, 0] : undefined),
    until: 3600,
  });
  const start = at(drawn, right - 16);
  const next = at(drawn, right + 16);
  assert.ok(next.x > start.x, `moved within 16 ms of the key press (${start.x} → ${next.x})`);
  assert.ok(at(drawn, right + 150).x - start.x > 10, "keeps walking before any frame acknowledged the input");
  // Walking, the prediction is where the server will be when an input sent now arrives:
  // about one latency ahead of the server's present, within a step or so.
  for (const time of [1400, 1600, 1800]) {
    const serverThen = truth.get(Math.floor((time + LATENCY - 13) / TICK_MS) + 1);
    assert.ok(distance(at(drawn, time), serverThen) < SPEED * 1.5, `${time}: ${JSON.stringify(at(drawn, time))} vs ${JSON.stringify(serverThen)}`);
  }
  // Continuous: no drawn step beyond the walking speed plus a little correction.
  for (let i = 1; i < drawn.length; i++) {
    assert.ok(distance(drawn[i - 1].position, drawn[i].position) < SPEED * (16 / TICK_MS) * 1.6 + 0.3, `jump at ${drawn[i].time}`);
  }
  // Standing still again, everything acknowledged: drawn exactly where the server has it.
  assert.equal(predictor.unacknowledged, 0);
  assert.ok(distance(at(drawn, 3500), finalServer) < 1e-6, `${JSON.stringify(at(drawn, 3500))} vs ${JSON.stringify(finalServer)}`);
});

test("a misprediction converges to the server's position after reconciliation", () => {
  // The client believes it walks at 5 units per tick; the server lets it walk at 3 and
  // then stops it at a wall at x = 540: the prediction is wrong in speed and in place.
  const wall = (position, input) => {
    const moved = walk(3)(position, input);
    return { x: Math.min(moved.x, 540), y: moved.y };
  };
  const stop = 2500;
  const { drawn, truth, finalServer } = simulate({
    serverStep: wall,
    clientStep: walk(SPEED),
    script: (time) => (time >= 500 && time < stop && (time - 500) % 100 === 0 ? [127, 0] : time === stop ? [0, 0] : undefined),
    until: 4100,
  });
  assert.equal(finalServer.x, 540, "the server stopped the player at the wall");
  // While walking into the wall the client keeps predicting a round trip's walk (plus the
  // tick being drawn) past it, and keeps being told otherwise: it never runs off.
  for (const time of [2000, 2200, 2400]) {
    assert.ok(Math.abs(at(drawn, time).x - 540) < SPEED * 8, `${time}: ${at(drawn, time).x}`);
  }
  // Once the stop is acknowledged (a round trip after 2.5 s), the drawn position glides
  // to the server's: within a unit 300 ms later, exact within a second.
  assert.ok(distance(at(drawn, stop + 2 * LATENCY + 300), finalServer) < 1, `${at(drawn, stop + 500).x}`);
  assert.ok(distance(at(drawn, 4000), finalServer) < 1e-3);
  // Gliding, not jumping: no drawn step above twice the walking speed.
  for (let i = 1; i < drawn.length; i++) {
    assert.ok(distance(drawn[i - 1].position, drawn[i].position) < SPEED * (16 / TICK_MS) * 2, `jump at ${drawn[i].time}`);
  }
  assert.ok(truth.size > 70);
});

test("across the world's edge, prediction and correction take the short way", () => {
  const predictor = new Predictor({ step: walk(SPEED), tickHz: 20, worldSize: WORLD, idle: [0, 0] });
  predictor.reconcile(1, 0, { x: 998, y: 10 }, 0);
  predictor.setInput(1, [127, 0], 0);
  const drawn = predictor.position(50);
  assert.ok(Math.abs(drawn.x - 3) < 1e-9, `one step over the edge: ${drawn.x}`);
  // The server says it is at 2 instead of 3: a one-unit correction, not a thousand.
  predictor.reconcile(2, 1, { x: 2, y: 10 }, 50);
  assert.ok(predictor.correction(50) <= 1 + 1e-9);
  assert.ok(distance(predictor.position(60), { x: 3, y: 10 }) < 2);
});

test("a time a little before the last (an animation frame's timestamp) never draws the player back", () => {
  const predictor = new Predictor({ step: walk(SPEED), tickHz: 20, worldSize: WORLD, idle: [0, 0] });
  predictor.reconcile(1, 0, { x: 100, y: 100 }, 0);
  // The key is handled at 140 ms, in the middle of a local tick; the frame drawn next has
  // the timestamp of its start, 130 ms.
  predictor.setInput(1, [127, 0], 140);
  const drawn = predictor.position(130);
  assert.ok(drawn.x >= 100, `drawn at ${drawn.x}, behind where it stood`);
  let last = drawn.x;
  for (let time = 146; time < 400; time += 16) {
    const x = predictor.position(time).x;
    assert.ok(x >= last, `moved back at ${time}: ${last} → ${x}`);
    last = x;
  }
});
