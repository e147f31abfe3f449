/**
 * Client-side prediction of the player's own movement, so that a key press moves the player
 * at once instead of a round trip later, with reconciliation against the server's frames.
 *
 * The server moves a player once per tick with its latest input (an input holds until the
 * next one), so prediction runs a local tick clock at `tickHz` and applies the game's
 * `step(position, input)` once per local tick. Every input opens a *run* (its seq, its
 * input, how many local ticks it has been applied).
 *
 * Reconciling a frame (tick T, ack_seq A, the server's position S at T): the latest run
 * with seq <= A is the one the server is applying; the server has applied it since the
 * first frame that acknowledged it (ack_seq rose to or past its seq: the acknowledging frame
 * already includes its movement), i.e. `T - ackedAt + 1` ticks. The prediction becomes S,
 * plus that run's local ticks the server has not simulated yet, plus every run with
 * seq > A (not yet acknowledged). Actions share the seq counter: an acknowledged action
 * acknowledges the inputs before it, which is what "seq <= A" gives.
 *
 * Why the drawn position is smoothed: the prediction changes abruptly when the server
 * disagrees (a misprediction) and when an input changes mid-tick. Each such jump is kept
 * as a visual offset that decays exponentially (`correctionMs`), so the drawn player glides
 * to where it should be and the prediction itself always converges to the server's.
 */

import type { Point } from "./interpolation.js";
import { shortWay, wrapCoordinate } from "./torus.js";

/** The game's movement rule: where one tick of `input` takes a player at `position`. */
export type Step<I> = (position: Point, input: I) => Point;

export interface PredictionOptions<I> {
  /** The game's movement per tick (the same rule as the server's). */
  step: Step<I>;
  /** Server ticks per second (Welcome.tickHz). */
  tickHz: number;
  /** Side of the wrapping world (Welcome.worldSize), 0 if it does not wrap. */
  worldSize: number;
  /** The input in effect before the first one (a new player stands still). */
  idle: I;
  /** Time constant of the visual correction, ms (default 100): 5 of them remove 99%. */
  correctionMs?: number;
  /** A correction larger than this (units) is a teleport: shown at once, not glided. */
  snapDistance?: number;
}

interface Run<I> {
  seq: number;
  input: I;
  /** Local ticks this input has been applied. */
  ticks: number;
  /** Tick of the first frame whose ack_seq reached this seq. */
  ackedAt: number | undefined;
}

/** Predicts one entity (the player's own) from its inputs and the server's frames. */
export class Predictor<I> {
  private readonly step: Step<I>;
  private readonly tickMs: number;
  private readonly worldSize: number;
  private readonly correctionMs: number;
  private readonly snapDistance: number;
  private runs: Run<I>[];
  /** Predicted position at the last local tick. */
  private predictedAt: Point | undefined;
  /** Local time of the last local tick. */
  private tickAt = 0;
  private offset: Point = { x: 0, y: 0 };
  private offsetAt = 0;
  /** The latest time given: earlier ones are taken as this one. */
  private latest = -Infinity;

  constructor(options: PredictionOptions<I>) {
    this.step = options.step;
    this.tickMs = 1000 / options.tickHz;
    this.worldSize = options.worldSize;
    this.correctionMs = options.correctionMs ?? 100;
    this.snapDistance = options.snapDistance ?? Infinity;
    this.runs = [{ seq: 0, input: options.idle, ticks: 0, ackedAt: undefined }];
  }

  /** Whether a frame has given the starting position yet. */
  get started(): boolean {
    return this.predictedAt !== undefined;
  }

  /** The input in effect (the last one given). */
  get input(): I {
    return (this.runs[this.runs.length - 1] as Run<I>).input;
  }

  /** Inputs sent and not yet acknowledged (runs after the acknowledged one). */
  get unacknowledged(): number {
    return this.runs.length - 1;
  }

  /** The input numbered `seq` was sent at local time `nowMs`: predict it from now on. */
  setInput(seq: number, input: I, nowMs: number): void {
    nowMs = this.monotonic(nowMs);
    if (this.predictedAt === undefined) {
      // No position yet: nothing is drawn, so there is nothing to glide.
      this.runs.push({ seq, input, ticks: 0, ackedAt: undefined });
      return;
    }
    const before = this.visualAt(nowMs);
    this.runs.push({ seq, input, ticks: 0, ackedAt: undefined });
    this.absorbJump(before, nowMs);
  }

  /**
   * Reconciles with frame `tick` acknowledging `ackSeq`, in which the server has the
   * entity at `server` (world units), received at local time `nowMs`.
   */
  reconcile(tick: number, ackSeq: number, server: Point, nowMs: number): void {
    nowMs = this.monotonic(nowMs);
    if (this.predictedAt === undefined) {
      // The first position: start the local tick clock here, nothing to glide from.
      this.predictedAt = { ...server };
      this.tickAt = nowMs;
    }
    const before = this.visualAt(nowMs);
    for (const run of this.runs) {
      if (run.seq <= ackSeq && run.ackedAt === undefined) run.ackedAt = tick;
    }
    let acked = 0;
    this.runs.forEach((run, index) => {
      if (run.seq <= ackSeq) acked = index;
    });
    this.runs = this.runs.slice(acked);
    let position: Point = { ...server };
    this.runs.forEach((run, index) => {
      const serverTicks = index === 0 && run.ackedAt !== undefined ? tick - run.ackedAt + 1 : 0;
      for (let i = serverTicks; i < run.ticks; i++) position = this.wrapPoint(this.step(position, run.input));
    });
    this.predictedAt = position;
    this.absorbJump(before, nowMs);
  }

  /** The position to draw at local time `nowMs` (prediction plus the decaying correction). */
  position(nowMs: number): Point | undefined {
    if (this.predictedAt === undefined) return undefined;
    return this.visualAt(this.monotonic(nowMs));
  }

  /** The prediction at `nowMs` without the visual correction. */
  predicted(nowMs: number): Point | undefined {
    if (this.predictedAt === undefined) return undefined;
    return this.curve(this.monotonic(nowMs));
  }

  /** Distance still being glided away (units) at `nowMs`: 0 when drawn where predicted. */
  correction(nowMs: number): number {
    const decay = this.decay(this.monotonic(nowMs));
    return Math.hypot(this.offset.x * decay, this.offset.y * decay);
  }

  /**
   * The prediction at `nowMs`: local ticks due by then are applied, and the current tick is
   * drawn partway toward the next step (so movement starts on the next rendered frame).
   */
  private curve(nowMs: number): Point {
    let position = this.predictedAt as Point;
    const run = this.runs[this.runs.length - 1] as Run<I>;
    while (nowMs - this.tickAt >= this.tickMs) {
      position = this.wrapPoint(this.step(position, run.input));
      run.ticks++;
      this.tickAt += this.tickMs;
    }
    this.predictedAt = position;
    const fraction = Math.max(0, (nowMs - this.tickAt) / this.tickMs);
    const next = this.step(position, run.input);
    return this.wrapPoint({
      x: position.x + shortWay(next.x - position.x, this.worldSize) * fraction,
      y: position.y + shortWay(next.y - position.y, this.worldSize) * fraction,
    });
  }

  /**
   * Times from different clocks' readings (an animation frame's timestamp is its start,
   * before the input handler that ran during it) may go back a little: taken as the latest,
   * so that the drawn position never moves back in time.
   */
  private monotonic(nowMs: number): number {
    this.latest = Math.max(this.latest, nowMs);
    return this.latest;
  }

  private visualAt(nowMs: number): Point {
    if (this.predictedAt === undefined) return { x: 0, y: 0 };
    const curve = this.curve(nowMs);
    const decay = this.decay(nowMs);
    return this.wrapPoint({ x: curve.x + this.offset.x * decay, y: curve.y + this.offset.y * decay });
  }

  private decay(nowMs: number): number {
    return Math.exp(-Math.max(0, nowMs - this.offsetAt) / this.correctionMs);
  }

  /** Keeps the drawn position where it was (`before`) across a change of the prediction. */
  private absorbJump(before: Point, nowMs: number): void {
    const after = this.curve(nowMs);
    const offset = { x: shortWay(before.x - after.x, this.worldSize), y: shortWay(before.y - after.y, this.worldSize) };
    const size = Math.hypot(offset.x, offset.y);
    // Beyond snapDistance: a teleport, shown at once. Below a 1/1024 unit (the wire's
    // precision is 1/8): done gliding, so that a player at rest is drawn exactly where the
    // server has it.
    this.offset = size > this.snapDistance || size < 1 / 1024 ? { x: 0, y: 0 } : offset;
    this.offsetAt = nowMs;
  }

  private wrapPoint(point: Point): Point {
    return {
      x: wrapCoordinate(point.x, this.worldSize),
      y: wrapCoordinate(point.y, this.worldSize),
    };
  }
}
