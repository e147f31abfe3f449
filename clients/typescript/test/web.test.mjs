// The playable page's game modules (clients/web/), under node: they import the library as
// the browser does, from /lib/index.js, which a resolve hook maps to dist/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { register } from "node:module";

const dist = new URL("../dist/", import.meta.url).href;
register(
  "data:text/javascript," +
    encodeURIComponent(`export async function resolve(specifier, context, next) {
      if (specifier.startsWith("/lib/")) return next(${JSON.stringify(dist)} + specifier.slice(5), context);
      return next(specifier, context);
    }`),
);
const web = (file) => import(new URL(`../../web/${file}`, import.meta.url).href);
const { decodeHit, decodeMovement, decodeScore, encodeThrow, toI8Direction, walk } = await web("snowball.js");
const { Speed } = await web("speed.js");
const { Writer } = await import("../dist/index.js");

test("the demo game's values as the server encodes them", () => {
  assert.deepEqual(encodeThrow(127, 0), Uint8Array.of(0x7f, 0x00), "as in docs/PROTOCOL.md");
  assert.deepEqual(encodeThrow(-127, -1), Uint8Array.of(0x81, 0xff));
  assert.deepEqual(decodeHit(Uint8Array.of(3, 9)), { thrower: 3, target: 9 });
  assert.deepEqual(decodeHit(Uint8Array.of(0xac, 0x02, 1)), { thrower: 300, target: 1 });
  assert.equal(decodeScore(Uint8Array.of(1)), 1);
  assert.equal(decodeMovement(new Writer().f32(5).bytes()), 5);
  assert.throws(() => decodeHit(Uint8Array.of(3, 9, 0)), /trailing/);
});

test("throw directions are scaled to the most precise i8 pair", () => {
  assert.deepEqual(toI8Direction(10, 0), [127, 0]);
  assert.deepEqual(toI8Direction(-1, 4), [-32, 127]);
  assert.deepEqual(toI8Direction(0.001, -0.001), [127, -127]);
  assert.equal(toI8Direction(0, 0), undefined);
});

test("walking: normalised direction, the speed per tick, wrapping at the edges", () => {
  let speed = 5;
  const step = walk(() => speed, 100);
  assert.deepEqual(step({ x: 10, y: 10 }, [127, 0]), { x: 15, y: 10 });
  const diagonal = step({ x: 98, y: 2 }, [127, -127]);
  assert.ok(Math.abs(diagonal.x - (98 + 5 / Math.SQRT2 - 100)) < 1e-9 && Math.abs(diagonal.y - (2 - 5 / Math.SQRT2 + 100)) < 1e-9);
  assert.deepEqual(step({ x: 10, y: 10 }, [0, 0]), { x: 10, y: 10 });
  speed = 0;
  assert.deepEqual(step({ x: 10, y: 10 }, [127, 0]), { x: 10, y: 10 }, "unknown speed: no prediction");
});

test("the walking speed is learned from acknowledged ticks, or told by a movement event", () => {
  const speed = new Speed(1000, 8);
  assert.equal(speed.value, 0);
  speed.frame(1, 0, { x: 800, y: 800 });
  speed.sent(1, [127, 0]);
  speed.frame(2, 1, { x: 840, y: 800 }); // the tick that took the input: not a whole tick of it
  assert.equal(speed.value, 0);
  speed.frame(3, 1, { x: 880, y: 800 });
  assert.equal(speed.value, 5);
  speed.sent(2, [127, 127]);
  speed.frame(4, 2, { x: 908, y: 828 });
  speed.frame(5, 2, { x: 936, y: 856 }); // 28 wire units each way: 4.95 units (rounding)
  speed.frame(6, 2, { x: 964, y: 884 });
  assert.equal(speed.value, Math.hypot(28, 28) / 8);
  // Across the world's edge (8000 wire units), the short way.
  speed.sent(3, [-127, 0]);
  speed.frame(7, 3, { x: 20, y: 884 });
  speed.frame(8, 3, { x: 7980, y: 884 });
  assert.equal(speed.samples.at(-1), 5);
  // Standing still teaches nothing.
  speed.sent(4, [0, 0]);
  speed.frame(9, 4, { x: 7980, y: 884 });
  speed.frame(10, 4, { x: 7980, y: 884 });
  assert.ok(speed.value > 4.9);
  speed.tell(7.5);
  speed.frame(11, 4, { x: 7980, y: 884 });
  assert.equal(speed.value, 7.5);
  assert.equal(speed.told, true);
});
