// The operator console: draws each `snapshot` the server streams once a second
// (/console/stream) and looks players up by name (/console/player?name=).
// Plain ES module, no dependencies, no build step: the server embeds this file as is.

/** Seconds of tick history the graph keeps: five minutes at one snapshot a second. */
const HISTORY = 300;
/** Dot colours by `kind` (0 player, 1 NPC, 2 other). */
const KIND_COLOURS = ["#4fc3f7", "#ffb74d", "#9e9e9e"];
const HIGHLIGHT = "#ff4081";

const $ = (id) => document.getElementById(id);

/** What the browser test reads (the page's own numbers, not a re-derivation). */
const stats = { snapshots: 0, players: 0, minimapDots: 0, tickPoints: 0 };
window.consoleStats = stats;

/** Per second: { p50, p99, max, budget } in milliseconds, oldest first. */
const history = [];
/** The last snapshot, redrawn as is when the window resizes. */
let last = null;
/** The name asked for in the find box, looked up again every snapshot; null when none. */
let wanted = null;
/** Where `wanted` was last found: { x, y } or null. */
let found = null;
let lookingUp = false;

// EventSource reconnects by itself after an error; the status only reports it.
const source = new EventSource("/console/stream");
source.addEventListener("open", () => setStatus(true));
source.addEventListener("error", () => setStatus(false));
source.addEventListener("snapshot", (event) => {
  const snapshot = JSON.parse(event.data);
  setStatus(true);
  stats.snapshots += 1;
  history.push(snapshot.tick_ms);
  if (history.length > HISTORY) history.shift();
  last = snapshot;
  showNumbers(snapshot);
  draw();
  if (wanted !== null) void lookUp();
});

function setStatus(live) {
  const status = $("status");
  status.textContent = live ? "live" : "reconnecting";
  status.classList.toggle("live", live);
}

function draw() {
  if (last === null) return;
  stats.minimapDots = drawMinimap(last);
  stats.tickPoints = drawTicks();
}
addEventListener("resize", draw);

/** Sizes a canvas's backing store to its displayed size (sharp on phones and HiDPI screens). */
function fit(canvas) {
  const ratio = devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const context = canvas.getContext("2d");
  context.setTransform(1, 0, 0, 1, 0, 0);
  context.clearRect(0, 0, width, height);
  return { context, width, height, ratio };
}

/** The whole world, scaled to the canvas; returns the number of dots drawn. */
function drawMinimap({ world_size: world, cell_size: cell, positions }) {
  const { context, width, height, ratio } = fit($("minimap"));
  const scale = Math.min(width, height) / world;
  // The grid cells, faintly: how the server finds who is near whom.
  context.strokeStyle = "rgba(255, 255, 255, 0.08)";
  context.lineWidth = 1;
  context.beginPath();
  for (let at = cell; at < world; at += cell) {
    const p = Math.round(at * scale) + 0.5;
    context.moveTo(p, 0);
    context.lineTo(p, world * scale);
    context.moveTo(0, p);
    context.lineTo(world * scale, p);
  }
  context.stroke();
  // One square per entity: 3 CSS pixels wide at least, even in a big world.
  const size = Math.max(3 * ratio, Math.min(5 * ratio, scale));
  for (const [x, y, kind] of positions) {
    context.fillStyle = KIND_COLOURS[kind] ?? KIND_COLOURS[2];
    context.fillRect(x * scale - size / 2, y * scale - size / 2, size, size);
  }
  if (found !== null) {
    context.strokeStyle = HIGHLIGHT;
    context.lineWidth = 2 * ratio;
    context.beginPath();
    context.arc(found.x * scale, found.y * scale, 8 * ratio, 0, 2 * Math.PI);
    context.stroke();
  }
  return positions.length;
}

/** p50/p99/max per second against the budget; returns the number of seconds plotted. */
function drawTicks() {
  const { context, width, height, ratio } = fit($("ticks"));
  const budget = history.at(-1).budget;
  // Log scale: a healthy tick is a hundredth of the budget, a bad one above it; both
  // should be readable on one graph. Decades from below the fastest p50 to above the
  // budget or the worst max, whichever is higher.
  const low = Math.max(1e-3, Math.min(budget / 100, ...history.map((s) => s.p50)));
  const bottom = 10 ** Math.floor(Math.log10(low));
  const top = Math.max(budget, ...history.map((s) => s.max)) * 2;
  const span = Math.log10(top / bottom);
  const x = (i) => width - (history.length - 1 - i) * (width / (HISTORY - 1));
  const y = (ms) => height - (Math.log10(Math.max(ms, bottom) / bottom) / span) * height;

  context.font = `${11 * ratio}px system-ui, sans-serif`;
  context.lineWidth = ratio;
  context.fillStyle = context.strokeStyle = "rgba(255, 255, 255, 0.25)";
  for (let decade = bottom * 10; decade < top; decade *= 10) {
    context.fillRect(0, Math.round(y(decade)), width, ratio);
    context.fillText(`${+decade.toPrecision(1)} ms`, 4 * ratio, y(decade) - 3 * ratio);
  }
  context.strokeStyle = context.fillStyle = "#bbb";
  context.setLineDash([4 * ratio, 4 * ratio]);
  context.beginPath();
  context.moveTo(0, y(budget));
  context.lineTo(width, y(budget));
  context.stroke();
  context.setLineDash([]);
  context.fillText(`budget ${budget.toFixed(1)} ms`, width / 2, y(budget) - 4 * ratio);

  for (const [field, colour] of [["max", "#ef5350"], ["p99", "#ffa726"], ["p50", "#66bb6a"]]) {
    context.strokeStyle = colour;
    context.lineWidth = 1.5 * ratio;
    context.beginPath();
    history.forEach((s, i) => (i === 0 ? context.moveTo(x(i), y(s[field])) : context.lineTo(x(i), y(s[field]))));
    context.stroke();
  }
  return history.length;
}

function showNumbers(s) {
  stats.players = s.players;
  $("tick").textContent = s.tick;
  $("players").textContent = s.players;
  $("entities").textContent = s.entities;
  $("joins").textContent = round(s.joins_per_s);
  $("leaves").textContent = round(s.leaves_per_s);
  $("input-queue").textContent = s.input_queue;
  $("inbound").textContent = `${bytes(s.inbound_bytes_per_s)}/s`;
  $("outbound").textContent = `${bytes(s.outbound_bytes_per_s)}/s`;
  $("persistence-lag").textContent = `${round(s.persistence_lag_ms)} ms`;
  $("cpu-cores").textContent = s.cpu_cores.toFixed(2);
  $("rss").textContent = bytes(s.rss_bytes);
  const t = s.tick_ms;
  $("tick-ms").textContent = `${t.p50.toFixed(2)} / ${t.p99.toFixed(2)} / ${t.max.toFixed(2)} ms`;
  showReasons($("rejects"), s.rejects);
  showReasons($("kicks"), s.kicks);
}

/** A reason → count table, biggest first; "none" when empty. */
function showReasons(body, counts) {
  const rows = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  body.replaceChildren(
    ...(rows.length === 0
      ? [row("none", "", "none")]
      : rows.map(([reason, count]) => row(reason, String(count)))),
  );
}

function row(label, value, className) {
  const tr = document.createElement("tr");
  if (className) tr.className = className;
  for (const text of [label, value]) tr.appendChild(document.createElement("td")).textContent = text;
  return tr;
}

/** Rates and lags arrive as floats: two decimals at most, none when whole. */
const round = (n) => String(Math.round(n * 100) / 100);

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

$("find").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("find-name").value.trim();
  wanted = name === "" ? null : name;
  found = null;
  $("found").textContent = "";
  draw();
  if (wanted !== null) void lookUp();
});

/**
 * Looks `wanted` up and shows where it is. Called again on every snapshot so the highlight
 * walks with the player; one request at a time, and a name typed meanwhile is looked up
 * as soon as the answer for the old one is in (and that answer dropped).
 */
async function lookUp() {
  if (lookingUp) return;
  lookingUp = true;
  const name = wanted;
  try {
    const response = await fetch(`/console/player?name=${encodeURIComponent(name)}`);
    if (name !== wanted) return;
    if (response.status === 404) {
      // Not found stops the following: a player who left is not looked for every second.
      wanted = found = null;
      $("found").textContent = `${name}: not found`;
    } else if (!response.ok) {
      $("found").textContent = `${name}: HTTP ${response.status}`;
    } else {
      const player = await response.json();
      if (name !== wanted) return;
      found = { x: player.x, y: player.y };
      $("found").textContent = `${player.name} (#${player.id}) at ${player.x.toFixed(1)}, ${player.y.toFixed(1)}`;
    }
  } catch (error) {
    if (name === wanted) $("found").textContent = `${name}: ${error.message}`;
  } finally {
    lookingUp = false;
    draw();
    if (wanted !== null && wanted !== name) void lookUp();
  }
}

// Kicks the player of the find box (POST /console/kick) and shows the server's answer.
$("kick").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("find-name").value.trim();
  const result = $("kick-result");
  if (name === "") {
    result.textContent = "find a player first";
    return;
  }
  const reason = $("kick-reason").value;
  try {
    const response = await fetch("/console/kick", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, reason }),
    });
    if (response.ok) {
      const { kicked } = await response.json();
      result.textContent = `kicked ${kicked}`;
      // The kicked player is gone: stop following it (a lookup would only find nobody).
      if (wanted !== null && wanted.toLowerCase() === kicked.toLowerCase()) {
        wanted = found = null;
        $("found").textContent = `${kicked}: kicked`;
        draw();
      }
    } else {
      result.textContent = `kick failed: ${response.status} ${(await response.text()).trim()}`;
    }
  } catch (error) {
    result.textContent = `kick failed: ${error.message}`;
  }
});
