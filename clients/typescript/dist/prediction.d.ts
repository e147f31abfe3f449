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
/** Predicts one entity (the player's own) from its inputs and the server's frames. */
export declare class Predictor<I> {
    private readonly step;
    private readonly tickMs;
    private readonly worldSize;
    private readonly correctionMs;
    private readonly snapDistance;
    private runs;
    /** Predicted position at the last local tick. */
    private predictedAt;
    /** Local time of the last local tick. */
    private tickAt;
    private offset;
    private offsetAt;
    /** The latest time given: earlier ones are taken as this one. */
    private latest;
    constructor(options: PredictionOptions<I>);
    /** Whether a frame has given the starting position yet. */
    get started(): boolean;
    /** The input in effect (the last one given). */
    get input(): I;
    /** Inputs sent and not yet acknowledged (runs after the acknowledged one). */
    get unacknowledged(): number;
    /** The input numbered `seq` was sent at local time `nowMs`: predict it from now on. */
    setInput(seq: number, input: I, nowMs: number): void;
    /**
     * Reconciles with frame `tick` acknowledging `ackSeq`, in which the server has the
     * entity at `server` (world units), received at local time `nowMs`.
     */
    reconcile(tick: number, ackSeq: number, server: Point, nowMs: number): void;
    /** The position to draw at local time `nowMs` (prediction plus the decaying correction). */
    position(nowMs: number): Point | undefined;
    /** The prediction at `nowMs` without the visual correction. */
    predicted(nowMs: number): Point | undefined;
    /** Distance still being glided away (units) at `nowMs`: 0 when drawn where predicted. */
    correction(nowMs: number): number;
    /**
     * The prediction at `nowMs`: local ticks due by then are applied, and the current tick is
     * drawn partway toward the next step (so movement starts on the next rendered frame).
     */
    private curve;
    /**
     * Times from different clocks' readings (an animation frame's timestamp is its start,
     * before the input handler that ran during it) may go back a little: taken as the latest,
     * so that the drawn position never moves back in time.
     */
    private monotonic;
    private visualAt;
    private decay;
    /** Keeps the drawn position where it was (`before`) across a change of the prediction. */
    private absorbJump;
    private wrapPoint;
}
