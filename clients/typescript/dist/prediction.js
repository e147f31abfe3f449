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
import { shortWay, wrapCoordinate } from "./torus.js";
/** Predicts one entity (the player's own) from its inputs and the server's frames. */
export class Predictor {
    constructor(options) {
        /** Local time of the last local tick. */
        this.tickAt = 0;
        this.offset = { x: 0, y: 0 };
        this.offsetAt = 0;
        /** The latest time given: earlier ones are taken as this one. */
        this.latest = -Infinity;
        this.step = options.step;
        this.tickMs = 1000 / options.tickHz;
        this.worldSize = options.worldSize;
        this.correctionMs = options.correctionMs ?? 100;
        this.snapDistance = options.snapDistance ?? Infinity;
        this.runs = [{ seq: 0, input: options.idle, ticks: 0, ackedAt: undefined }];
    }
    /** Whether a frame has given the starting position yet. */
    get started() {
        return this.predictedAt !== undefined;
    }
    /** The input in effect (the last one given). */
    get input() {
        return this.runs[this.runs.length - 1].input;
    }
    /** Inputs sent and not yet acknowledged (runs after the acknowledged one). */
    get unacknowledged() {
        return this.runs.length - 1;
    }
    /** The input numbered `seq` was sent at local time `nowMs`: predict it from now on. */
    setInput(seq, input, nowMs) {
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
    reconcile(tick, ackSeq, server, nowMs) {
        nowMs = this.monotonic(nowMs);
        if (this.predictedAt === undefined) {
            // The first position: start the local tick clock here, nothing to glide from.
            this.predictedAt = { ...server };
            this.tickAt = nowMs;
        }
        const before = this.visualAt(nowMs);
        for (const run of this.runs) {
            if (run.seq <= ackSeq && run.ackedAt === undefined)
                run.ackedAt = tick;
        }
        let acked = 0;
        this.runs.forEach((run, index) => {
            if (run.seq <= ackSeq)
                acked = index;
        });
        this.runs = this.runs.slice(acked);
        let position = { ...server };
        this.runs.forEach((run, index) => {
            const serverTicks = index === 0 && run.ackedAt !== undefined ? tick - run.ackedAt + 1 : 0;
            for (let i = serverTicks; i < run.ticks; i++)
                position = this.wrapPoint(this.step(position, run.input));
        });
        this.predictedAt = position;
        this.absorbJump(before, nowMs);
    }
    /** The position to draw at local time `nowMs` (prediction plus the decaying correction). */
    position(nowMs) {
        if (this.predictedAt === undefined)
            return undefined;
        return this.visualAt(this.monotonic(nowMs));
    }
    /** The prediction at `nowMs` without the visual correction. */
    predicted(nowMs) {
        if (this.predictedAt === undefined)
            return undefined;
        return this.curve(this.monotonic(nowMs));
    }
    /** Distance still being glided away (units) at `nowMs`: 0 when drawn where predicted. */
    correction(nowMs) {
        const decay = this.decay(this.monotonic(nowMs));
        return Math.hypot(this.offset.x * decay, this.offset.y * decay);
    }
    /**
     * The prediction at `nowMs`: local ticks due by then are applied, and the current tick is
     * drawn partway toward the next step (so movement starts on the next rendered frame).
     */
    curve(nowMs) {
        let position = this.predictedAt;
        const run = this.runs[this.runs.length - 1];
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
    monotonic(nowMs) {
        this.latest = Math.max(this.latest, nowMs);
        return this.latest;
    }
    visualAt(nowMs) {
        if (this.predictedAt === undefined)
            return { x: 0, y: 0 };
        const curve = this.curve(nowMs);
        const decay = this.decay(nowMs);
        return this.wrapPoint({ x: curve.x + this.offset.x * decay, y: curve.y + this.offset.y * decay });
    }
    decay(nowMs) {
        return Math.exp(-Math.max(0, nowMs - this.offsetAt) / this.correctionMs);
    }
    /** Keeps the drawn position where it was (`before`) across a change of the prediction. */
    absorbJump(before, nowMs) {
        const after = this.curve(nowMs);
        const offset = { x: shortWay(before.x - after.x, this.worldSize), y: shortWay(before.y - after.y, this.worldSize) };
        const size = Math.hypot(offset.x, offset.y);
        // Beyond snapDistance: a teleport, shown at once. Below a 1/1024 unit (the wire's
        // precision is 1/8): done gliding, so that a player at rest is drawn exactly where the
        // server has it.
        this.offset = size > this.snapDistance || size < 1 / 1024 ? { x: 0, y: 0 } : offset;
        this.offsetAt = nowMs;
    }
    wrapPoint(point) {
        return {
            x: wrapCoordinate(point.x, this.worldSize),
            y: wrapCoordinate(point.y, this.worldSize),
        };
    }
}
