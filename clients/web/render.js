// @ts-check
/**
 * Draws one picture of the world around the player on a canvas: the interest cells
 * faintly (the ones the player sees a little less faintly), players, NPCs and snowballs
 * in their colours, hit flashes. Pure drawing: it is given the positions to draw (already
 * interpolated or predicted) and keeps no game state.
 */

/** @typedef {{ x: number, y: number }} Point */
/**
 * @typedef {object} Scene
 * @property {Point} center the world point drawn in the middle (the player)
 * @property {number} worldSize
 * @property {number} cellSize
 * @property {number} interestRadius
 * @property {{ id: number, at: Point, kind: "self" | "player" | "npc" | "snowball", flash: number }[]} entities
 *   flash: 0..1, how strongly a hit shows on it now
 */

const COLOURS = {
  background: "#10151c",
  cell: "rgba(255, 255, 255, 0.05)",
  view: "rgba(120, 180, 255, 0.05)",
  edge: "rgba(255, 120, 120, 0.25)",
  self: "#7cf08a",
  player: "#5aa8ff",
  npc: "#f0a04a",
  snowball: "#f4f8ff",
  flash: "#ff4a5a",
};

/** Sizes in world units. */
const RADIUS = { self: 4, player: 4, npc: 4, snowball: 1.6 };

/**
 * The drawing scale: pixels per world unit, so that the whole view (the circle of the
 * interest radius around the player, with a margin) fits, or the whole world if that is
 * smaller (the drawing wraps: more would show the world twice).
 * @param {number} width @param {number} height @param {number} interestRadius @param {number} worldSize
 */
export function pixelsPerUnit(width, height, interestRadius, worldSize) {
  return Math.min(width, height) / Math.min(2.2 * interestRadius, worldSize);
}

/**
 * @param {CanvasRenderingContext2D} ctx
 * @param {number} width CSS pixels
 * @param {number} height CSS pixels
 * @param {Scene} scene
 */
export function draw(ctx, width, height, scene) {
  const scale = pixelsPerUnit(width, height, scene.interestRadius, scene.worldSize);
  const size = scene.worldSize;
  const shortWay = (/** @type {number} */ d) => (d > size / 2 ? d - size : d < -size / 2 ? d + size : d);
  /** Screen position of a world point: relative to the center, the short way around. */
  const screen = (/** @type {Point} */ p) => ({
    x: width / 2 + shortWay(p.x - scene.center.x) * scale,
    y: height / 2 + shortWay(p.y - scene.center.y) * scale,
  });

  ctx.fillStyle = COLOURS.background;
  ctx.fillRect(0, 0, width, height);

  // What the player sees: everything within the interest radius of it (the drawing wraps at
  // the world's edges, the rule does not: near an edge, what shows across it is not sent).
  const cell = scene.cellSize;
  ctx.fillStyle = COLOURS.view;
  ctx.beginPath();
  ctx.arc(width / 2, height / 2, scene.interestRadius * scale, 0, 2 * Math.PI);
  ctx.fill();

  // Cell lines, every cellSize units from the world's origin; the origin's lines (the
  // world's edges) in another colour.
  ctx.lineWidth = 1;
  const halfW = width / 2 / scale;
  const halfH = height / 2 / scale;
  for (const axis of /** @type {const} */ (["x", "y"])) {
    const half = axis === "x" ? halfW : halfH;
    const from = Math.floor((scene.center[axis] - half) / cell);
    const to = Math.ceil((scene.center[axis] + half) / cell);
    for (let k = from; k <= to; k++) {
      const world = k * cell;
      const wrapped = ((world % size) + size) % size;
      ctx.strokeStyle = wrapped === 0 ? COLOURS.edge : COLOURS.cell;
      const offset = (world - scene.center[axis]) * scale;
      ctx.beginPath();
      if (axis === "x") {
        ctx.moveTo(width / 2 + offset + 0.5, 0);
        ctx.lineTo(width / 2 + offset + 0.5, height);
      } else {
        ctx.moveTo(0, height / 2 + offset + 0.5);
        ctx.lineTo(width, height / 2 + offset + 0.5);
      }
      ctx.stroke();
    }
  }

  // Snowballs under walkers, the player on top.
  const order = { snowball: 0, npc: 1, player: 2, self: 3 };
  const entities = [...scene.entities].sort((a, b) => order[a.kind] - order[b.kind]);
  for (const entity of entities) {
    const at = screen(entity.at);
    const radius = Math.max(RADIUS[entity.kind] * scale, entity.kind === "snowball" ? 2 : 4);
    ctx.beginPath();
    ctx.arc(at.x, at.y, radius, 0, 2 * Math.PI);
    ctx.fillStyle = COLOURS[entity.kind];
    ctx.fill();
    if (entity.flash > 0) {
      // A hit: the walker turns red and a ring spreads from it as the flash fades.
      ctx.globalAlpha = entity.flash;
      ctx.fillStyle = COLOURS.flash;
      ctx.fill();
      ctx.beginPath();
      ctx.arc(at.x, at.y, radius * (1.5 + 2 * (1 - entity.flash)), 0, 2 * Math.PI);
      ctx.strokeStyle = COLOURS.flash;
      ctx.lineWidth = Math.max(2, radius / 2);
      ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.lineWidth = 1;
    }
  }
}
