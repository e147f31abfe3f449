// @ts-check
/**
 * The playable page: logs in (a guest name, or `?name=`; the secret kept in localStorage
 * per name), sends the keys as inputs and clicks as throws, and draws the view every
 * animation frame: remote entities interpolated 100 ms behind, the player's own predicted.
 *
 * Exposes `window.throngStats` for browser tests.
 */
import { ConnectError, Interpolator, Predictor, connect } from "/lib/index.js";
import { Controls } from "./controls.js";
import { draw } from "./render.js";
import { decodeHit, decodeMovement, decodeScore, encodeThrow, toI8Direction, walk } from "./snowball.js";
import { Speed } from "./speed.js";

/** Resend a held direction this often (ms): an input lost to the rate limit is repaired. */
const RESEND_MS = 100;
/** How long a hit flashes, ms. */
const FLASH_MS = 600;
/** Remote entities are drawn this far behind, ms. */
const DELAY_MS = 100;

/**
 * What browser tests read. `position` is the player's position as the server reports it
 * (world units); `drawnPosition` where it is drawn (predicted).
 */
const stats = {
  connected: false,
  framesRendered: 0,
  entitiesInView: 0,
  /** @type {number | null} */ playerId: null,
  /** @type {{ x: number, y: number } | null} */ position: null,
  /** @type {{ x: number, y: number } | null} */ drawnPosition: null,
  tick: 0,
  /** @type {string | null} */ closeReason: null,
  /** @type {string | null} the zone played in, once a Transfer named one (zone servers) */ zone: null,
  /** Transfers to another zone followed (or tried). */
  transfers: 0,
};
/** @type {any} */ (window).throngStats = stats;

const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById("world"));
const statusLine = /** @type {HTMLElement} */ (document.getElementById("status"));
const scoreboard = /** @type {HTMLElement} */ (document.getElementById("scores"));

/** `?name=` if it is a valid name, else a random guest. */
function playerName() {
  const asked = new URLSearchParams(location.search).get("name");
  if (asked !== null && /^[A-Za-z0-9_-]{1,32}$/.test(asked)) return asked;
  return `guest-${Math.floor(Math.random() * 10000).toString().padStart(4, "0")}`;
}

/**
 * This browser's secret for `name`: made once, then kept (names are one player whatever
 * their case, so the key is lowercase). Without localStorage it lasts as long as the page.
 * @param {string} name
 */
function secretFor(name) {
  const key = `throng.secret.${name.toLowerCase()}`;
  try {
    const kept = localStorage.getItem(key);
    if (kept !== null && kept.length >= 8 && kept.length <= 64) return kept;
  } catch {
    // storage refused (private mode): fall through
  }
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  const secret = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  try {
    localStorage.setItem(key, secret);
  } catch {
    // the player will be a new one next time
  }
  return secret;
}

/** @param {string} text */
function setStatus(text) {
  statusLine.textContent = text;
}

async function main() {
  const name = playerName();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  setStatus(`connecting as ${name}…`);
  let client;
  try {
    client = await connect(url, name, secretFor(name));
  } catch (error) {
    const why = error instanceof ConnectError ? `${error.close.reasonName}${error.close.detail ? ` (${error.close.detail})` : ""}` : String(error);
    stats.closeReason = error instanceof ConnectError ? error.close.reasonName : "error";
    setStatus(`could not join as ${name}: ${why}${hint(stats.closeReason)} — reload to retry`);
    return;
  }
  // Per session: a Transfer to another zone (zone servers) brings a new Welcome, a new
  // player id and a fresh mirror whose ids and ticks are that server's, so everything kept
  // by id or tick starts over there (the walking speed is the game's: it is kept).
  let welcome = client.welcome;
  let mirror = client.mirror;
  let me = welcome.playerId;
  stats.connected = true;
  stats.playerId = me;

  const speed = new Speed(welcome.worldSize, welcome.positionScale);
  const newPredictor = () =>
    new Predictor({
      step: walk(() => speed.value, welcome.worldSize),
      tickHz: welcome.tickHz,
      worldSize: welcome.worldSize,
      /** @type {[number, number]} */ idle: [0, 0],
      snapDistance: welcome.interestRadius,
    });
  let predictor = newPredictor();
  const newInterpolator = () => new Interpolator({ tickHz: welcome.tickHz, worldSize: welcome.worldSize, delayMs: DELAY_MS });
  let interpolator = newInterpolator();
  /** @type {Map<number, "player" | "npc" | "snowball">} kinds of what is drawn, kept past removal */
  const kinds = new Map();
  /** @type {Map<number, number>} hit flashes: entity → local time the flash starts */
  const flashes = new Map();

  client.on("frame", (update) => {
    const own = mirror.entities.get(me);
    speed.frame(update.tick, update.ackSeq, own);
    const position = mirror.position(me);
    if (position !== undefined) predictor.reconcile(update.tick, update.ackSeq, position, update.receivedAt);
    interpolator.pushMirror(update.receivedAt, mirror, me);
    for (const [id, entity] of mirror.entities) {
      kinds.set(id, entity.components.has("npc") ? "npc" : entity.components.has("snowball") ? "snowball" : "player");
    }
  });
  client.on("event", (event) => {
    if (event.name === "hit") {
      const { target } = decodeHit(event.bytes);
      // Others are drawn DELAY_MS in the past: flash them when the snowball is seen to arrive.
      flashes.set(target, performance.now() + (target === me ? 0 : DELAY_MS));
    } else if (event.name === "movement") {
      speed.tell(decodeMovement(event.bytes));
    }
  });
  client.on("transfer", (to) => {
    stats.transfers++;
    setStatus(`moving to zone ${to.zone}…`);
  });
  client.on("welcome", (next) => {
    // A new server: new ids, new ticks. Nothing is blended across the switch: the player
    // is drawn from the new server's first position, others from its first snapshots.
    welcome = next.welcome;
    mirror = next.mirror;
    me = welcome.playerId;
    stats.playerId = me;
    stats.zone = next.zone;
    predictor = newPredictor();
    interpolator = newInterpolator();
    kinds.clear();
    flashes.clear();
    speed.last = undefined; // its previous position is another server's tick
    // Keep walking where the key is held: the new zone learns the direction at once, and
    // prediction starts from it.
    if (direction[0] !== 0 || direction[1] !== 0) sendDirection();
  });

  /** @type {[number, number]} */
  let direction = [0, 0];
  const sendDirection = () => {
    /** @type {[number, number]} */
    const input = [direction[0] * 127, direction[1] * 127];
    const seq = client.sendInput(input[0], input[1]);
    predictor.setInput(seq, input, performance.now());
    speed.sent(seq, input);
  };
  const view = { width: 0, height: 0 };
  new Controls(canvas, {
    onDirection: (dx, dy) => {
      direction = [dx, dy];
      sendDirection();
    },
    onThrow: (x, y) => {
      const aim = toI8Direction(x - view.width / 2, y - view.height / 2);
      if (aim !== undefined) client.sendAction("throw", encodeThrow(aim[0], aim[1]));
    },
  });
  const timers = [
    setInterval(() => {
      if (direction[0] !== 0 || direction[1] !== 0) sendDirection();
    }, RESEND_MS),
    setInterval(() => client.ping().catch(() => {}), 2000),
  ];
  client.ping().catch(() => {});
  window.addEventListener("pagehide", () => client.close());

  client.closed.then((info) => {
    timers.forEach(clearInterval);
    stats.connected = false;
    stats.closeReason = info.reasonName;
    const moving = info.transfer === undefined ? "" : ` while moving to zone ${info.transfer.zone}`;
    setStatus(`disconnected${moving}: ${info.reasonName}${info.detail ? ` (${info.detail})` : ""}${hint(info.reasonName)} — reload to play again`);
  });

  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext("2d"));
  let lastText = 0;
  /** @param {number} now */
  const render = (now) => {
    fit(canvas, ctx, view);
    const remote = interpolator.render(now);
    const self = predictor.position(now) ?? mirror.position(me);
    if (self !== undefined) {
      /** @type {import("./render.js").Scene["entities"]} */
      const entities = [];
      const flash = (/** @type {number} */ id) => {
        const start = flashes.get(id);
        if (start === undefined) return 0;
        if (now - start > FLASH_MS) flashes.delete(id);
        return now < start ? 0 : Math.max(0, 1 - (now - start) / FLASH_MS);
      };
      for (const [id, at] of remote) entities.push({ id, at, kind: kinds.get(id) ?? "player", flash: flash(id) });
      entities.push({ id: me, at: self, kind: "self", flash: flash(me) });
      draw(ctx, view.width, view.height, {
        center: self,
        worldSize: welcome.worldSize,
        cellSize: welcome.cellSize,
        interestRadius: welcome.interestRadius,
        entities,
      });
      stats.framesRendered++;
    }
    stats.entitiesInView = mirror.entities.size;
    stats.position = mirror.position(me) ?? null;
    stats.drawnPosition = self ?? null;
    stats.tick = mirror.tick;
    if (client.open && !client.transferring && now - lastText > 250) {
      lastText = now;
      const ping = client.rttMs === undefined ? "…" : `${Math.round(client.rttMs)} ms`;
      const zone = client.zone === undefined ? "" : ` · zone ${client.zone}`;
      setStatus(`connected as ${name}${zone} · tick ${mirror.tick} · ${mirror.entities.size} entities in view · ping ${ping}`);
      showScores(mirror, me);
      for (const id of kinds.keys()) if (!mirror.entities.has(id) && !remote.has(id)) kinds.delete(id);
    }
    if (client.open) requestAnimationFrame(render);
  };
  requestAnimationFrame(render);
}

/**
 * Sizes the canvas to its box in device pixels (sharp on any screen), drawing in CSS pixels.
 * @param {HTMLCanvasElement} canvas @param {CanvasRenderingContext2D} ctx
 * @param {{ width: number, height: number }} view updated to the size in CSS pixels
 */
function fit(canvas, ctx, view) {
  const ratio = window.devicePixelRatio || 1;
  const [width, height] = [canvas.clientWidth, canvas.clientHeight];
  if (width !== view.width || height !== view.height || canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    view.width = width;
    view.height = height;
  }
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
}

/**
 * The scoreboard: every player in view with its hits (a player without `score` has none).
 * @param {import("/lib/index.js").Mirror} mirror @param {number} me
 */
function showScores(mirror, me) {
  const rows = [];
  for (const [id, entity] of mirror.entities) {
    if (entity.components.has("npc") || entity.components.has("snowball")) continue;
    const bytes = entity.components.get("score");
    rows.push({ id, score: bytes === undefined ? 0 : decodeScore(bytes) });
  }
  rows.sort((a, b) => b.score - a.score || a.id - b.id);
  scoreboard.replaceChildren(
    ...rows.slice(0, 10).map(({ id, score }) => {
      const row = document.createElement("li");
      row.textContent = `${id === me ? "you" : `player #${id}`}: ${score}`;
      if (id === me) row.className = "me";
      return row;
    }),
  );
}

/** A word of help for the refusals a player can do something about. @param {string} reason */
function hint(reason) {
  switch (reason) {
    case "already_online":
      return ": this name is playing elsewhere (another tab?)";
    case "bad_credentials":
      return ": this name belongs to someone else, pick another with ?name=";
    case "invalid_name":
      return ": names are 1 to 32 of A-Z a-z 0-9 _ -";
    case "ticket_invalid":
    case "ticket_expired":
    case "ticket_used":
    case "ticket_wrong_zone":
    case "transfer_failed":
      return ": the move to the next zone failed; logging in again puts you there";
    default:
      return "";
  }
}

main();
