// The mirror applies frames as the Rust client's Mirror does (clients/rust/src/mirror.rs):
// reset, events, removals, spawns, then updates; components by schema name; every
// inconsistency an error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Mirror, MirrorError, Writer, decodeServerMessage, encodeServerMessage } from "../dist/index.js";

const welcome = {
  schema: { components: ["npc", "snowball", "score"], actions: ["throw"], events: ["hit"] },
  positionScale: 8,
};
const u32 = (value) => new Writer().u32(value).bytes();
const empty = new Uint8Array();

/** A frame with defaults, sent through the codec so that the mirror sees decoded bytes. */
function frame(fields) {
  const message = {
    type: "frame",
    frame: { ackSeq: 0, reset: false, events: [], removed: [], spawned: [], updated: [], ...fields },
  };
  return decodeServerMessage(encodeServerMessage(message)).frame;
}

/** The mirror's entities as plain data: id → { x, y, components by name }. */
function view(mirror) {
  const out = {};
  for (const [id, entity] of mirror.entities) {
    out[id] = { x: entity.x, y: entity.y, components: Object.fromEntries(entity.components) };
  }
  return out;
}

test("spawn, update, remove, component set and removed, reset: the expected entities", () => {
  const mirror = new Mirror(welcome);
  let changes = mirror.apply(frame({
    tick: 10, reset: true,
    spawned: [
      { id: 1, x: 80, y: 80, components: [] },
      { id: 2, x: 800, y: 16, components: [{ kind: 0, bytes: empty }] },
      { id: 3, x: 0, y: 0, components: [{ kind: 1, bytes: empty }] },
    ],
  }));
  assert.deepEqual(changes.spawned, [1, 2, 3]);
  assert.deepEqual(view(mirror), {
    1: { x: 80, y: 80, components: {} },
    2: { x: 800, y: 16, components: { npc: empty } },
    3: { x: 0, y: 0, components: { snowball: empty } },
  });
  assert.deepEqual(mirror.position(2), { x: 100, y: 2 });

  // Player 1 walks and scores; the snowball melts; the NPC stops being one.
  changes = mirror.apply(frame({
    tick: 11, ackSeq: 4,
    events: [{ kind: 0, bytes: new Writer().u32(1).u32(2).bytes() }],
    removed: [3],
    updated: [
      { id: 1, dx: 40, dy: -8, components: [{ type: "set", kind: 2, bytes: u32(1) }] },
      { id: 2, dx: 0, dy: 0, components: [{ type: "removed", kind: 0 }] },
    ],
  }));
  assert.deepEqual(changes.events, [{ kind: 0, name: "hit", bytes: Uint8Array.of(1, 2) }]);
  assert.deepEqual([changes.tick, changes.ackSeq, changes.removed, changes.updated], [11, 4, [3], [1, 2]]);
  assert.deepEqual(view(mirror), {
    1: { x: 120, y: 72, components: { score: u32(1) } },
    2: { x: 800, y: 16, components: {} },
  });
  assert.equal(mirror.has(1, "score"), true);
  assert.deepEqual(mirror.component(1, "score"), u32(1));
  assert.deepEqual([mirror.tick, mirror.ackSeq], [11, 4]);

  // A component value changes; an entity is removed and spawned in one frame (as after the
  // client's own jump).
  mirror.apply(frame({
    tick: 12,
    removed: [2],
    spawned: [{ id: 2, x: 808, y: 16, components: [{ kind: 0, bytes: empty }] }],
    updated: [{ id: 1, dx: -120, dy: 0, components: [{ type: "set", kind: 2, bytes: u32(300) }] }],
  }));
  assert.deepEqual(view(mirror), {
    1: { x: 0, y: 72, components: { score: u32(300) } },
    2: { x: 808, y: 16, components: { npc: empty } },
  });

  // Frames were dropped: the resync frame forgets everything before it.
  changes = mirror.apply(frame({
    tick: 20, ackSeq: 6, reset: true,
    events: [{ kind: 0, bytes: new Writer().u32(2).u32(1).bytes() }, { kind: 5, bytes: empty }],
    spawned: [{ id: 2, x: 24, y: 24, components: [] }],
  }));
  assert.equal(changes.reset, true);
  assert.deepEqual(changes.events.map((event) => event.name), ["hit", "#5"]);
  assert.deepEqual(view(mirror), { 2: { x: 24, y: 24, components: {} } });
  assert.equal(mirror.position(1), undefined);
  assert.deepEqual([mirror.tick, mirror.ackSeq], [20, 6]);
});

test("a frame that contradicts the view is a MirrorError", () => {
  const start = () => {
    const mirror = new Mirror(welcome);
    mirror.apply(frame({ tick: 1, reset: true, spawned: [{ id: 1, x: 10, y: 10, components: [] }] }));
    return mirror;
  };
  const wrong = {
    "removing an entity not in view": { tick: 2, removed: [2] },
    "updating an entity not in view": { tick: 2, updated: [{ id: 2, dx: 0, dy: 0, components: [] }] },
    "spawning an entity twice": { tick: 2, spawned: [{ id: 1, x: 0, y: 0, components: [] }] },
    "removing a component it does not have": {
      tick: 2, updated: [{ id: 1, dx: 0, dy: 0, components: [{ type: "removed", kind: 2 }] }],
    },
    "moving below zero": { tick: 2, updated: [{ id: 1, dx: -11, dy: 0, components: [] }] },
    "a tick not after the last": { tick: 1 },
  };
  for (const [what, fields] of Object.entries(wrong)) {
    assert.throws(() => start().apply(frame(fields)), MirrorError, what);
  }
});
