// Interpolation without a browser: a recorded run of server frames arriving with jitter,
// rendered every 16 ms. Drawn positions must be continuous (no step beyond what the speed
// allows) and lie on the server's path (so they pass through its positions), about
// `delayMs` behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Interpolator } from "../dist/index.js";

const TICK_HZ = 20;
const TICK_MS = 1000 / TICK_HZ;
const WORLD = 200;
const SPEED = 5; // units per tick, the demo game's walking speed
const SCALE = 8;

/** Deterministic randomness (mulberry32). */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const wrap = (c) => ((c % WORLD) + WORLD) % WORLD;
/** A coordinate as the wire carries it: rounded to 1/8 unit. */
const onWire = (c) => Math.round(wrap(c) * SCALE) / SCALE % WORLD;
const shortWay = (d) => (d > WORLD / 2 ? d - WORLD : d < -WORLD / 2 ? d + WORLD : d);
const distance = (a, b) => Math.hypot(shortWay(b.x - a.x), shortWay(b.y - a.y));

/**
 * The server's side: per tick, the positions of a walker that turns now and then and
 * crosses the world's edge, an NPC going round in a square, and a snowball that exists for
 * ticks 40 to 55 only.
 */
function recordServer(ticks) {
  const frames = [];
  let walker = { x: 180, y: 100 };
  let npc = { x: 50, y: 50 };
  for (let tick = 1; tick <= ticks; tick++) {
    const turn = Math.floor(tick / 30) % 4;
    const heading = [[1, 0], [0.6, 0.8], [1, 0], [-0.6, -0.8]][turn];
    walker = { x: wrap(walker.x + heading[0] * SPEED), y: wrap(walker.y + heading[1] * SPEED) };
    const side = Math.floor(tick / 10) % 4;
    const [nx, ny] = [[1, 0], [0, 1], [-1, 0], [0, -1]][side];
    npc = { x: wrap(npc.x + nx * SPEED), y: wrap(npc.y + ny * SPEED) };
    const positions = new Map([
      [1, { x: onWire(walker.x), y: onWire(walker.y) }],
      [2, { x: onWire(npc.x), y: onWire(npc.y) }],
    ]);
    if (tick >= 40 && tick <= 55) positions.set(3, { x: onWire(10 + (tick - 40) * SPEED), y: 20 });
    frames.push({ tick, positions });
  }
  return frames;
}

/** Arrival times: 50 ms apart on average, each ±30 ms off, in order (one socket). */
function arrivals(frames, seed) {
  const next = random(seed);
  let last = -Infinity;
  return frames.map(({ tick }) => {
    const at = Math.max(last, 1000 + tick * TICK_MS + 40 + (next() * 60 - 30));
    last = at;
    return at;
  });
}

/** Distance from `p` to the segment a-b (the short way around the world). */
function toSegment(p, a, b) {
  const [dx, dy] = [shortWay(b.x - a.x), shortWay(b.y - a.y)];
  const [px, py] = [shortWay(p.x - a.x), shortWay(p.y - a.y)];
  const length2 = dx * dx + dy * dy;
  const t = length2 === 0 ? 0 : Math.max(0, Math.min(1, (px * dx + py * dy) / length2));
  return Math.hypot(px - t * dx, py - t * dy);
}

for (const seed of [1, 2, 3]) {
  test(`rendered every 16 ms with jittered arrivals (seed ${seed}): continuous, on the server's path, ~100 ms behind`, () => {
    const frames = recordServer(120);
    const arrivedAt = arrivals(frames, seed);
    const interpolator = new Interpolator({ tickHz: TICK_HZ, worldSize: WORLD });
    const byTick = new Map(frames.map((frame) => [frame.tick, frame.positions]));
    // Quantisation can lengthen a tick's step by up to a 16th of a unit per axis.
    const maxStep = (SPEED + 0.1) * (16 / TICK_MS) * 1.05;
    let next = 0;
    let previous = new Map();
    let previousTime = -Infinity;
    const lags = [];
    let rendered = 0;
    for (let now = arrivedAt[0]; now < arrivedAt[arrivedAt.length - 1] + 300; now += 16) {
      while (next < frames.length && arrivedAt[next] <= now) {
        interpolator.push(arrivedAt[next], frames[next].tick, frames[next].positions);
        next++;
      }
      const drawn = interpolator.render(now);
      const time = interpolator.renderTime;
      assert.ok(time >= previousTime, "the playback clock never goes back");
      previousTime = time;
      const newest = frames[next - 1];
      lags.push(now - arrivedAt[next - 1] + (newest.tick * TICK_MS - time));
      const [a, b] = [Math.floor(time / TICK_MS), Math.ceil(time / TICK_MS)];
      for (const [id, point] of drawn) {
        rendered++;
        const before = previous.get(id);
        if (before !== undefined) {
          assert.ok(distance(before, point) <= maxStep, `entity ${id} stepped ${distance(before, point)} at ${now}`);
        }
        // On the segment between the server's positions around the render time.
        const [from, to] = [byTick.get(a)?.get(id), byTick.get(b)?.get(id)];
        assert.ok(from !== undefined, `entity ${id} drawn at ${time} before it existed`);
        assert.ok(toSegment(point, from, to ?? from) < 1e-9, `entity ${id} off the server's path at ${time}`);
      }
      previous = drawn;
    }
    assert.ok(rendered > 500, "positions were rendered");
    // After the first second the playback has settled: about delayMs behind the frames'
    // arrival (the lag is measured from the newest frame's server time).
    const settled = lags.slice(60);
    const meanLag = settled.reduce((sum, lag) => sum + lag, 0) / settled.length;
    assert.ok(Math.abs(meanLag - 100) < 25, `mean lag ${meanLag} ms`);
    // Past the last frame, nothing is extrapolated: everything holds still where it was last.
    const last = frames[frames.length - 1].positions;
    assert.deepEqual(previous, new Map([...last].map(([id, p]) => [id, { ...p }])));
  });
}

test("at a frame's own time the drawn position is the server's, exactly", () => {
  const frames = recordServer(60);
  // (snapMs also bounds how much is buffered: keep all 3 s of frames.)
  const interpolator = new Interpolator({ tickHz: TICK_HZ, worldSize: WORLD, snapMs: 5000 });
  frames.forEach((frame, i) => interpolator.push(i * TICK_MS, frame.tick, frame.positions));
  for (const frame of frames) {
    assert.deepEqual(interpolator.sample(frame.tick * TICK_MS), frame.positions);
  }
  // Halfway between two frames of a walker crossing the edge: the short way, wrapped.
  const edge = new Interpolator({ tickHz: TICK_HZ, worldSize: WORLD });
  edge.push(0, 1, [[1, { x: 198, y: 10 }]]);
  edge.push(50, 2, [[1, { x: 3, y: 10 }]]);
  assert.deepEqual(edge.sample(1.5 * TICK_MS).get(1), { x: 0.5, y: 10 });
  assert.deepEqual(edge.sample(1.2 * TICK_MS).get(1), { x: 199, y: 10 });
});

test("what is buffered stays bounded when nothing renders (a hidden tab)", () => {
  const interpolator = new Interpolator({ tickHz: TICK_HZ, worldSize: WORLD });
  for (let tick = 1; tick <= 20 * 600; tick++) interpolator.push(tick * TICK_MS, tick, [[1, { x: tick % WORLD, y: 0 }]]);
  // 100 ms delay + 1 s snap + 1 s: about 2.1 s of frames.
  assert.ok(interpolator.sample(599 * 1000).size === 1);
  assert.ok(interpolator.sample(590 * 1000).size === 0, "ten seconds back is gone");
});

test("entities appear at their first frame's time and disappear after their last", () => {
  const interpolator = new Interpolator({ tickHz: TICK_HZ, worldSize: WORLD });
  interpolator.push(0, 1, [[1, { x: 0, y: 0 }]]);
  interpolator.push(50, 2, [[1, { x: 5, y: 0 }], [2, { x: 50, y: 50 }]]);
  interpolator.push(100, 3, [[2, { x: 55, y: 50 }]]);
  assert.deepEqual([...interpolator.sample(60).keys()], [1]);
  assert.deepEqual([...interpolator.sample(100).keys()].sort(), [1, 2]);
  assert.deepEqual([...interpolator.sample(125).keys()].sort(), [1, 2]);
  assert.deepEqual(interpolator.sample(125).get(1), { x: 5, y: 0 }, "held where last seen");
  assert.deepEqual([...interpolator.sample(150).keys()], [2]);
  assert.deepEqual(interpolator.sample(400).get(2), { x: 55, y: 50 }, "no extrapolation");
});
