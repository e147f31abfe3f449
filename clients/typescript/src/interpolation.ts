/**
 * Smooth rendering of remote entities from 20-per-second snapshots: entities are drawn
 * `delayMs` (default 100 ms) in the past, linearly between the two snapshots around that
 * moment, so that a late frame still has a snapshot after the render time to move toward.
 *
 * Why snapshots are placed on the **server's** timeline (tick / tickHz) and not at their
 * arrival times: arrival jitter (frames 20 ms or 80 ms apart instead of 50) would make
 * entities speed up and slow down. Arrival times only estimate the offset between the two
 * clocks (a running average), and the playback clock follows that estimate by running at
 * most `maxRateChange` (5%) fast or slow, never jumping: motion stays continuous, and an
 * entity is never drawn faster than (1 + maxRateChange) times its real speed.
 *
 * Never extrapolates: past the newest snapshot entities hold still. An entity appears at
 * its first snapshot's time and disappears after its last. The world wraps at its edges
 * (a walker leaving at one edge re-enters at the other), so interpolation takes the short
 * way around.
 */

import type { Mirror } from "./mirror.js";
import { shortWay, wrapCoordinate } from "./torus.js";

/** A position in world units. */
export interface Point {
  x: number;
  y: number;
}

export interface InterpolationOptions {
  /** Server ticks per second (Welcome.tickHz): a frame's tick gives its server time. */
  tickHz: number;
  /** Side of the wrapping world (Welcome.worldSize); 0 for a world that does not wrap. */
  worldSize: number;
  /** How far behind the newest snapshot entities are drawn, ms (default 100). */
  delayMs?: number;
  /** Most the playback clock may run fast or slow to follow the server, 0..1 (default 0.05). */
  maxRateChange?: number;
  /** A playback clock this far off (ms) jumps instead (a tab back from the background). */
  snapMs?: number;
  /** Two snapshots further apart than this (units) are a teleport, not a movement. */
  teleportDistance?: number;
}

interface Snapshot {
  /** Server time, ms. */
  time: number;
  positions: Map<number, Point>;
}

/** Buffers snapshots and renders positions between them. */
export class Interpolator {
  private readonly tickMs: number;
  private readonly worldSize: number;
  private readonly delayMs: number;
  private readonly maxRateChange: number;
  private readonly snapMs: number;
  private readonly teleportDistance: number;
  private readonly snapshots: Snapshot[] = [];
  /** Running estimate of (local arrival time - server time), ms. */
  private offset: number | undefined;
  /** The playback clock: the server time being drawn. */
  private playTime: number | undefined;
  private lastNow = -Infinity;

  constructor(options: InterpolationOptions) {
    this.tickMs = 1000 / options.tickHz;
    this.worldSize = options.worldSize;
    this.delayMs = options.delayMs ?? 100;
    this.maxRateChange = options.maxRateChange ?? 0.05;
    this.snapMs = options.snapMs ?? 1000;
    this.teleportDistance = options.teleportDistance ?? Infinity;
  }

  /** The server time (ms, tick / tickHz) currently drawn; undefined before any render. */
  get renderTime(): number | undefined {
    return this.playTime;
  }

  /** The server time of tick `tick`, ms. */
  serverTime(tick: number): number {
    return tick * this.tickMs;
  }

  /**
   * Records the positions (world units) of frame `tick`, which arrived at local time
   * `arrivalMs` (e.g. `performance.now()`). Frames come in tick order.
   */
  push(arrivalMs: number, tick: number, positions: Iterable<[number, Point]>): void {
    const time = this.serverTime(tick);
    const latest = this.snapshots[this.snapshots.length - 1];
    if (latest !== undefined && time <= latest.time) return; // a stale duplicate: ignore
    this.snapshots.push({ time, positions: new Map(positions) });
    // Bounded even if nobody renders (a hidden browser tab): a playback clock further back
    // than this jumps (snapMs) and would not use older snapshots anyway.
    const oldest = time - this.delayMs - this.snapMs - 1000;
    while (this.snapshots.length > 2 && (this.snapshots[0] as Snapshot).time < oldest) this.snapshots.shift();
    const sample = arrivalMs - time;
    // Slow average: one late frame barely moves it; a lasting change of latency does.
    this.offset = this.offset === undefined ? sample : this.offset + 0.05 * (sample - this.offset);
  }

  /** {@link push} of every entity in `mirror` (after it applied a frame) but `except`. */
  pushMirror(arrivalMs: number, mirror: Mirror, except?: number): void {
    const positions: [number, Point][] = [];
    for (const id of mirror.entities.keys()) {
      if (id === except) continue;
      const position = mirror.position(id);
      if (position !== undefined) positions.push([id, position]);
    }
    this.push(arrivalMs, mirror.tick, positions);
  }

  /** Forgets every snapshot (e.g. for a new session); the clock restarts with the next. */
  clear(): void {
    this.snapshots.length = 0;
    this.offset = undefined;
    this.playTime = undefined;
  }

  /**
   * Advances the playback clock to local time `nowMs` and returns the positions to draw.
   * Call once per rendered frame, with increasing times.
   */
  render(nowMs: number): Map<number, Point> {
    if (this.offset === undefined) return new Map();
    // A time before the last one (another clock's reading) is taken as the last one.
    const now = Math.max(nowMs, this.lastNow);
    const target = now - this.offset - this.delayMs;
    const elapsed = now - this.lastNow;
    this.lastNow = now;
    if (this.playTime === undefined || Math.abs(target - this.playTime) > this.snapMs) {
      this.playTime = target;
    } else {
      // Steer toward the target over about half a second, within the allowed rate change.
      const error = target - (this.playTime + elapsed);
      const rate = 1 + clamp(error / 500, -this.maxRateChange, this.maxRateChange);
      this.playTime += elapsed * rate;
    }
    // Never past the newest snapshot: holding still there and resuming when the next frame
    // comes is continuous; drawing ahead and then pulling back would not be.
    const newest = this.snapshots[this.snapshots.length - 1];
    if (newest !== undefined) this.playTime = Math.min(this.playTime, newest.time);
    this.prune(this.playTime);
    return this.sample(this.playTime);
  }

  /** The positions at server time `time` (ms), without moving the playback clock. */
  sample(time: number): Map<number, Point> {
    const out = new Map<number, Point>();
    const snapshots = this.snapshots;
    const first = snapshots[0];
    if (first === undefined) return out;
    if (time <= first.time) {
      return time === first.time ? copy(first.positions) : out;
    }
    const after = snapshots.findIndex((snapshot) => snapshot.time >= time);
    if (after === -1) return copy((snapshots[snapshots.length - 1] as Snapshot).positions); // hold, never extrapolate
    const b = snapshots[after] as Snapshot;
    if (b.time === time) return copy(b.positions);
    const a = snapshots[after - 1] as Snapshot;
    const t = (time - a.time) / (b.time - a.time);
    for (const [id, from] of a.positions) {
      const to = b.positions.get(id);
      // Gone at b: drawn where last seen until b's time, then no more.
      out.set(id, to === undefined ? { ...from } : this.lerp(from, to, t));
    }
    // Present only at b: it entered the view at b's time; not drawn before.
    return out;
  }

  private lerp(from: Point, to: Point, t: number): Point {
    const dx = shortWay(to.x - from.x, this.worldSize);
    const dy = shortWay(to.y - from.y, this.worldSize);
    if (Math.hypot(dx, dy) > this.teleportDistance) return { ...from };
    return {
      x: wrapCoordinate(from.x + dx * t, this.worldSize),
      y: wrapCoordinate(from.y + dy * t, this.worldSize),
    };
  }


  /** Drops snapshots no longer needed: all before the last one at or before `time`. */
  private prune(time: number): void {
    let keepFrom = 0;
    while (keepFrom + 1 < this.snapshots.length && (this.snapshots[keepFrom + 1] as Snapshot).time <= time) {
      keepFrom++;
    }
    if (keepFrom > 0) this.snapshots.splice(0, keepFrom);
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function copy(positions: Map<number, Point>): Map<number, Point> {
  const out = new Map<number, Point>();
  for (const [id, point] of positions) out.set(id, { ...point });
  return out;
}
