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
/** Buffers snapshots and renders positions between them. */
export declare class Interpolator {
    private readonly tickMs;
    private readonly worldSize;
    private readonly delayMs;
    private readonly maxRateChange;
    private readonly snapMs;
    private readonly teleportDistance;
    private readonly snapshots;
    /** Running estimate of (local arrival time - server time), ms. */
    private offset;
    /** The playback clock: the server time being drawn. */
    private playTime;
    private lastNow;
    constructor(options: InterpolationOptions);
    /** The server time (ms, tick / tickHz) currently drawn; undefined before any render. */
    get renderTime(): number | undefined;
    /** The server time of tick `tick`, ms. */
    serverTime(tick: number): number;
    /**
     * Records the positions (world units) of frame `tick`, which arrived at local time
     * `arrivalMs` (e.g. `performance.now()`). Frames come in tick order.
     */
    push(arrivalMs: number, tick: number, positions: Iterable<[number, Point]>): void;
    /** {@link push} of every entity in `mirror` (after it applied a frame) but `except`. */
    pushMirror(arrivalMs: number, mirror: Mirror, except?: number): void;
    /** Forgets every snapshot (e.g. for a new session); the clock restarts with the next. */
    clear(): void;
    /**
     * Advances the playback clock to local time `nowMs` and returns the positions to draw.
     * Call once per rendered frame, with increasing times.
     */
    render(nowMs: number): Map<number, Point>;
    /** The positions at server time `time` (ms), without moving the playback clock. */
    sample(time: number): Map<number, Point>;
    private lerp;
    /** Drops snapshots no longer needed: all before the last one at or before `time`. */
    private prune;
}
