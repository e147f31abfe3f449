// @ts-check
/**
 * Keyboard and mouse to game intents: WASD or arrow keys give a walking direction (reported
 * on every change), a click or tap gives a point to throw toward. Knows nothing of the
 * network: play.js decides what to send and when.
 */

/** @type {Record<string, [number, number]>} */
const KEYS = {
  KeyW: [0, -1],
  ArrowUp: [0, -1],
  KeyS: [0, 1],
  ArrowDown: [0, 1],
  KeyA: [-1, 0],
  ArrowLeft: [-1, 0],
  KeyD: [1, 0],
  ArrowRight: [1, 0],
};

export class Controls {
  /**
   * @param {HTMLElement} surface where clicks count (the canvas)
   * @param {{ onDirection: (dx: number, dy: number) => void, onThrow: (x: number, y: number) => void }} handlers
   *   directions are -1, 0 or 1 per axis (screen axes: y grows downward); throw points are
   *   in CSS pixels relative to the surface
   */
  constructor(surface, handlers) {
    /** @type {Set<string>} */
    this.held = new Set();
    this.handlers = handlers;
    /** @type {[number, number]} */
    this.direction = [0, 0];
    window.addEventListener("keydown", (event) => {
      if (!(event.code in KEYS) || event.ctrlKey || event.metaKey || event.altKey) return;
      event.preventDefault(); // arrows would scroll the page
      this.held.add(event.code);
      this.update();
    });
    window.addEventListener("keyup", (event) => {
      if (this.held.delete(event.code)) this.update();
    });
    // A key released while the window had no focus never sends keyup: let go of everything.
    window.addEventListener("blur", () => {
      this.held.clear();
      this.update();
    });
    surface.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      const box = surface.getBoundingClientRect();
      handlers.onThrow(event.clientX - box.left, event.clientY - box.top);
    });
  }

  /** Recomputes the direction from the held keys; reports it if it changed. */
  update() {
    let [dx, dy] = [0, 0];
    for (const code of this.held) {
      const key = KEYS[code];
      if (key !== undefined) [dx, dy] = [dx + key[0], dy + key[1]];
    }
    [dx, dy] = [Math.sign(dx), Math.sign(dy)];
    if (dx === this.direction[0] && dy === this.direction[1]) return;
    this.direction = [dx, dy];
    this.handlers.onDirection(dx, dy);
  }
}
