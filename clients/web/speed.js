// @ts-check
/**
 * The player's walking speed, which prediction needs: told by a `movement` event when the
 * server sends one, otherwise learned from acknowledged movement (a tick in which the
 * server applied a known, non-zero input moved the player this far). Until either, it is
 * 0 and the player is drawn where the server has it, without prediction.
 */

export class Speed {
  /** @param {number} worldSize @param {number} positionScale */
  constructor(worldSize, positionScale) {
    this.worldSize = worldSize;
    this.positionScale = positionScale;
    /** Units per tick; 0 while unknown. */
    this.value = 0;
    /** Whether a `movement` event said it (then nothing is learned). */
    this.told = false;
    /** @type {Map<number, [number, number]>} inputs sent, by seq, until acknowledged past */
    this.inputs = new Map();
    /** @type {{ tick: number, input: [number, number] | undefined, x: number, y: number } | undefined} */
    this.last = undefined;
    /** @type {number[]} recent per-tick distances */
    this.samples = [];
  }

  /** The server said it (a `movement` event). @param {number} speed */
  tell(speed) {
    if (!(speed >= 0)) return;
    this.value = speed;
    this.told = true;
  }

  /** An input was sent. @param {number} seq @param {[number, number]} input */
  sent(seq, input) {
    this.inputs.set(seq, input);
  }

  /**
   * A frame was applied: `own` is the player's wire position in it (undefined if absent).
   * @param {number} tick @param {number} ackSeq @param {{ x: number, y: number } | undefined} own
   */
  frame(tick, ackSeq, own) {
    // The input the server applied in this tick: the latest sent with seq <= ack_seq.
    let input;
    let inputSeq = 0;
    for (const [seq, sent] of this.inputs) {
      if (seq <= ackSeq && seq >= inputSeq) [input, inputSeq] = [sent, seq];
    }
    for (const seq of this.inputs.keys()) if (seq < inputSeq) this.inputs.delete(seq);
    const last = this.last;
    this.last = own === undefined ? undefined : { tick, input, x: own.x, y: own.y };
    if (this.told || own === undefined || last === undefined || input === undefined) return;
    // One whole tick under the same non-zero input (known to have been in effect before).
    if (last.tick !== tick - 1 || last.input !== input || (input[0] === 0 && input[1] === 0)) return;
    const distance = Math.hypot(this.shortWay(own.x - last.x), this.shortWay(own.y - last.y)) / this.positionScale;
    if (distance === 0) return;
    this.samples.push(distance);
    if (this.samples.length > 9) this.samples.shift();
    // The median: one odd tick (a push, a teleport) does not change it.
    const sorted = [...this.samples].sort((a, b) => a - b);
    this.value = /** @type {number} */ (sorted[Math.floor(sorted.length / 2)]);
  }

  /** @param {number} wireDelta */
  shortWay(wireDelta) {
    const size = this.worldSize * this.positionScale;
    if (wireDelta > size / 2) return wireDelta - size;
    if (wireDelta < -size / 2) return wireDelta + size;
    return wireDelta;
  }
}
