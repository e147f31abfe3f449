// @ts-check
/**
 * The demo game's side of the wire (systems/src/snowball.rs, systems/src/movement.rs):
 * the values its actions, events and components carry, and its movement rule. This is the
 * part a game writes for itself; everything else comes from the library.
 */
import { Reader, Writer } from "/lib/index.js";

/** The `throw` action's value: `Throw { dir_x: i8, dir_y: i8 }`. */
export function encodeThrow(/** @type {number} */ dirX, /** @type {number} */ dirY) {
  return new Writer().i8(dirX).i8(dirY).bytes();
}

/**
 * The `hit` event's value: `Hit { thrower: u32, target: u32 }` (entity ids).
 * @param {Uint8Array} bytes
 */
export function decodeHit(bytes) {
  const reader = new Reader(bytes);
  const hit = { thrower: reader.u32(), target: reader.u32() };
  reader.end();
  return hit;
}

/**
 * The `score` component's value: a player's hits (`u32`).
 * @param {Uint8Array} bytes
 */
export function decodeScore(bytes) {
  const reader = new Reader(bytes);
  const score = reader.u32();
  reader.end();
  return score;
}

/**
 * The `movement` event's value, if the server sends one: `{ speed_per_tick: f32 }`.
 * @param {Uint8Array} bytes
 */
export function decodeMovement(bytes) {
  const reader = new Reader(bytes);
  const speed = reader.f32();
  reader.end();
  return speed;
}

/**
 * Scales a direction so that its longer axis is 127: the most precise `i8` pair for it.
 * @param {number} dx
 * @param {number} dy
 * @returns {[number, number] | undefined} undefined for no direction
 */
export function toI8Direction(dx, dy) {
  const longest = Math.max(Math.abs(dx), Math.abs(dy));
  if (!(longest > 0)) return undefined;
  return [Math.round((dx / longest) * 127), Math.round((dy / longest) * 127)];
}

/** @typedef {{ x: number, y: number }} Point */

/**
 * The movement rule, as the server applies it each tick: `speed()` units along the input
 * direction (normalised), wrapping at the world's edges.
 * @param {() => number} speed units per tick (0: not known yet, stand still)
 * @param {number} worldSize
 * @returns {(position: Point, input: [number, number]) => Point}
 */
export function walk(speed, worldSize) {
  const wrap = (/** @type {number} */ c) => {
    const wrapped = c - Math.floor(c / worldSize) * worldSize;
    return wrapped >= worldSize ? 0 : wrapped;
  };
  return (position, [dx, dy]) => {
    const length = Math.hypot(dx, dy);
    const units = speed();
    if (length === 0 || units === 0) return position;
    return { x: wrap(position.x + (dx / length) * units), y: wrap(position.y + (dy / length) * units) };
  };
}
