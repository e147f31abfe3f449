// The playable page (clients/web/) in headless Chromium against the real server, with a
// crowd of loadgen bots walking about and an observer client in Node that sees what the
// server says about the browser's player:
//
// - the page joins (throngStats.playerId set) and the observer sees that entity;
// - holding `d` for a second walks the player east by about a second of walking, in the
//   server's view (the observer's frames) and in the page's (throngStats.position);
// - the bots move on the canvas (two screenshots 500 ms apart differ) and are in view;
// - a click throws: the observer sees a snowball leave the player (or, if it hit a bot in
//   the tick it was thrown, that hit); the page logs no error.
//
// The last picture is kept at target/browser/page.png. Fails (never skips) if the server,
// loadgen or Chromium is missing: see harness.mjs for the paths.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { connect, Reader } from "../../typescript/dist/index.js";
import { REPO, launchBrowser, requirePrograms, sleep, startLoadgen, startServer, waitUntil, cleanUp } from "../harness.mjs";
import { decodePng, differingPixels } from "../png.mjs";

const BOTS = 20;
const WORLD = 300;
const SCREENSHOT = join(REPO, "target", "browser", "page.png");
/** The status panels are DOM over the canvas (their text changes every 250 ms): hidden in comparisons. */
const HIDE_PANELS = ".panel { visibility: hidden !important; }";
const TEST_TIMEOUT = 60_000;

const shortWay = (d) => (d > WORLD / 2 ? d - WORLD : d < -WORLD / 2 ? d + WORLD : d);

let server;
let loadgen;
let browser;
let page;
let observer;
/** Errors the page reported: uncaught exceptions and console errors. */
const pageErrors = [];
/** The browser player's path as the observer saw it: one entry per frame it was in view. */
const path = [];
/** Snowballs the observer saw, in order of appearance: { id, track: positions, gone }. */
const snowballs = [];
/** `hit` events the observer got: { thrower, target } (wire ids). */
const hits = [];
/** The page's player's wire id. */
let playerId;
let walkSpeed; // units per tick, from the observer's `movement` event
let stats = async () => page.evaluate(() => ({ ...window.throngStats }));

before(async () => {
  requirePrograms();
  server = await startServer();
  loadgen = startLoadgen(server.tcp, BOTS);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 800, height: 600 }, deviceScaleFactor: 1 });
  page.on("pageerror", (error) => pageErrors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    // The browser asks for /favicon.ico by itself (index.html names no icon): a 404 the
    // page's code has nothing to do with.
    if (new URL(message.location().url || "about:blank").pathname === "/favicon.ico") return;
    if (message.type() === "error") pageErrors.push(`console.error: ${message.text()} (${message.location().url})`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) pageErrors.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  page.on("requestfailed", (request) => pageErrors.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
  // Watch from outside before the page joins: the observer is a player too, standing still.
  observer = await connect(`ws://${server.web}/ws`, `observer-${randomBytes(3).toString("hex")}`, randomBytes(12).toString("hex"));
  observer.on("event", (event) => {
    if (event.name === "movement") walkSpeed = new Reader(event.bytes).f32();
    if (event.name === "hit") {
      const reader = new Reader(event.bytes);
      hits.push({ thrower: reader.u32(), target: reader.u32() });
    }
  });
  await page.goto(`http://${server.web}/?name=browser-test`);
});

after(async () => {
  // Every step guarded: a failure above must not leave a process behind.
  await cleanUp([
    async () => {
      if (page === undefined) return;
      mkdirSync(join(REPO, "target", "browser"), { recursive: true });
      await page.screenshot({ path: SCREENSHOT });
    },
    async () => observer?.close(),
    async () => browser?.close(),
    async () => loadgen?.stop(),
    async () => server?.stop(),
  ]);
});

test("the page joins and the server shows its player to others", { timeout: TEST_TIMEOUT }, async () => {
  const joined = await waitUntil(async () => (await stats()).playerId, "throngStats.playerId");
  assert.equal(typeof joined, "number");
  playerId = joined;
  observer.on("frame", ({ tick }) => {
    const at = observer.mirror.position(joined);
    if (at !== undefined) path.push({ tick, ...at });
  });
  observer.on("frame", ({ spawned, removed }) => {
    for (const id of spawned) if (observer.mirror.has(id, "snowball")) snowballs.push({ id, track: [], gone: false });
    for (const ball of snowballs) {
      if (ball.gone) continue;
      const at = observer.mirror.position(ball.id);
      if (at === undefined || removed.includes(ball.id)) ball.gone = true;
      if (at !== undefined) ball.track.push(at);
    }
  });
  await waitUntil(() => path.length > 0, "the observer to see the browser's player");
  await waitUntil(async () => (await stats()).framesRendered > 0, "a frame drawn");
});

/** The observer's record of the player since `from` (an index in `path`): displacement unwrapped. */
function walked(from) {
  let [dx, dy] = [0, 0];
  for (let i = from + 1; i < path.length; i++) {
    dx += shortWay(path[i].x - path[i - 1].x);
    dy += shortWay(path[i].y - path[i - 1].y);
  }
  return { dx, dy };
}

/** Resolves once the player has stood still for `frames` consecutive frames. */
const standingStill = (frames) =>
  waitUntil(() => {
    if (path.length <= frames) return false;
    const last = path.at(-1);
    return path.slice(-frames - 1).every((p) => p.x === last.x && p.y === last.y);
  }, "the player to stand still", 10_000);

test("holding d walks the player east, as the server sees it", { timeout: TEST_TIMEOUT }, async (t) => {
  await standingStill(5);
  const from = path.length - 1;
  const started = performance.now();
  await page.keyboard.down("d");
  await sleep(1000); // the premise: a one-second hold
  await page.keyboard.up("d");
  const heldS = (performance.now() - started) / 1000;
  await standingStill(5);

  const { dx, dy } = walked(from);
  const speed = walkSpeed ?? 5; // the demo's 5 units per tick if the server sends no `movement` event
  const expected = speed * observer.welcome.tickHz * heldS;
  const said = `walked (${dx.toFixed(1)}, ${dy.toFixed(1)}) in ${heldS.toFixed(2)} s of holding d; about ${expected.toFixed(0)} east expected`;
  t.diagnostic(said);
  assert.ok(dx > 0.6 * expected && dx < 1.4 * expected, said);
  assert.ok(Math.abs(dy) <= 1, said);

  // The page shows the position the server gave it: the same the observer sees.
  const last = path.at(-1);
  await waitUntil(async () => {
    const { position } = await stats();
    return position !== null && position.x === last.x && position.y === last.y;
  }, `throngStats.position to be (${last.x}, ${last.y}) like the observer's`);
});

test("the bots walk on the canvas", { timeout: TEST_TIMEOUT }, async (t) => {
  await waitUntil(async () => (await stats()).entitiesInView >= 10, "10 entities in view", 30_000);
  const canvas = page.locator("#world");
  const first = decodePng(await canvas.screenshot({ style: HIDE_PANELS }));
  await sleep(500); // the premise: half a second of walking between the pictures
  const second = decodePng(await canvas.screenshot({ style: HIDE_PANELS }));
  const differing = differingPixels(first, second);
  t.diagnostic(`${differing} of ${first.width * first.height} pixels differ`);
  // A walker is a disc of 4 units radius that covers ~50 px, and walks 50 units in 500 ms, at
  // 1 px per unit or more (the 300-unit world fills the canvas's shorter side).
  assert.ok(differing > 200, `${differing} pixels differ between two screenshots 500 ms apart`);
  const { entitiesInView } = await stats();
  assert.ok(entitiesInView >= 10, `${entitiesInView} entities in view`);
});

test("a click throws a snowball, and the page logs no error", { timeout: TEST_TIMEOUT }, async () => {
  const box = await page.locator("#world").boundingBox();
  const seenBefore = snowballs.length;
  const hitsBefore = hits.length;
  const at = path.at(-1);
  // The player is drawn at the canvas's centre: click 100 px to its right.
  await page.mouse.click(box.x + box.width / 2 + 100, box.y + box.height / 2);
  // Loadgen's bots throw nothing (no --actions-per-s): the only thrower is the page's player.
  // A snowball spawns at its thrower; one that finds a bot or NPC within the hit radius there
  // hits it in the tick it was thrown, and no frame ever shows it: then the hit is the sign.
  const hitAtOnce = () => hits.slice(hitsBefore).find((hit) => hit.thrower === playerId);
  await waitUntil(() => snowballs[seenBefore] ?? hitAtOnce(), "the observer to see a snowball or its hit", 10_000);
  const thrown = snowballs[seenBefore];
  if (thrown === undefined) {
    assert.notEqual(hitAtOnce().target, playerId, "a snowball does not hit its thrower");
  } else {
    const start = thrown.track[0];
    const from = { x: shortWay(start.x - at.x), y: shortWay(start.y - at.y) };
    assert.ok(Math.hypot(from.x, from.y) <= 25, `the snowball appeared at (${from.x.toFixed(1)}, ${from.y.toFixed(1)}) from the player`);
    // It flies east (the click's direction), unless it hit a bot at once.
    await waitUntil(() => thrown.track.length >= 3 || thrown.gone, "the snowball's flight", 10_000);
    if (thrown.track.length >= 2) {
      const to = thrown.track.at(-1);
      const flown = { x: shortWay(to.x - start.x), y: shortWay(to.y - start.y) };
      assert.ok(flown.x > 5 && Math.abs(flown.y) < 1, `the snowball flew (${flown.x.toFixed(1)}, ${flown.y.toFixed(1)})`);
    }
  }

  const { connected, closeReason, framesRendered } = await stats();
  assert.equal(connected, true, `the page is connected (close reason: ${closeReason})`);
  assert.ok(framesRendered > 0);
  assert.deepEqual(pageErrors, []);
});
