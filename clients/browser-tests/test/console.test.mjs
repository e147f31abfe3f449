// The operator console (clients/console/, served at the metrics address's `/`) in headless
// Chromium against the real server with 50 loadgen bots walking about:
//
// - the page goes live and counts the 50 players (its own number and consoleStats.players);
// - the minimap draws a dot per entity (consoleStats.minimapDots >= 50) and its canvas is
//   not blank (pixels other than the background);
// - the tick graph plots a point per second (consoleStats.tickPoints >= 2);
// - find player shows a bot's position, and 'not found' for a name nobody has;
// - the page logs no error.
//
// The last picture is kept at target/browser/console.png. Fails (never skips) if the
// server, loadgen or Chromium is missing: see harness.mjs for the paths.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { REPO, launchBrowser, requirePrograms, startLoadgen, startServer, waitUntil, cleanUp } from "../harness.mjs";
import { decodePng } from "../png.mjs";

const BOTS = 50;
const SCREENSHOT = join(REPO, "target", "browser", "console.png");
/** Asked for on purpose: its 404 is the answer under test, not a page error. */
const NOBODY = "nobody-by-this-name";
const TEST_TIMEOUT = 60_000;

let server;
let loadgen;
let browser;
let page;
/** Errors the page reported: uncaught exceptions, console errors, failed requests. */
const pageErrors = [];
const stats = () => page.evaluate(() => ({ ...window.consoleStats }));

/** The bot the kick test kicks: a lookup of it in flight while it leaves finds nobody. */
const KICKED = "bot3";

/**
 * A 404 the test caused on purpose (an unknown name; the kicked bot, looked up in flight as
 * it leaves), or the browser's own favicon request.
 */
function expected404(url) {
  const { pathname, searchParams } = new URL(url || "about:blank");
  return (
    pathname === "/favicon.ico" ||
    (pathname === "/console/player" && [NOBODY, KICKED].includes(searchParams.get("name")))
  );
}

before(async () => {
  requirePrograms();
  server = await startServer();
  loadgen = startLoadgen(server.tcp, BOTS);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1000, height: 800 }, deviceScaleFactor: 1 });
  page.on("pageerror", (error) => pageErrors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    // Chromium logs a failed fetch as a console error with the request's URL as its location.
    if (/status of 404/.test(message.text()) && expected404(message.location().url)) return;
    pageErrors.push(`console.error: ${message.text()} (${message.location().url})`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400 && !(response.status() === 404 && expected404(response.url()))) {
      pageErrors.push(`HTTP ${response.status()}: ${response.url()}`);
    }
  });
  page.on("requestfailed", (request) => {
    // The event stream is cut when the browser closes at the end: not the page's fault.
    if (new URL(request.url()).pathname === "/console/stream" && page.isClosed()) return;
    pageErrors.push(`request failed: ${request.url()} ${request.failure()?.errorText}`);
  });
  await page.goto(`http://${server.metrics}/`);
});

after(async () => {
  // Every step guarded: a failure above must not leave a process behind.
  await cleanUp([
    async () => {
      if (page === undefined) return;
      mkdirSync(join(REPO, "target", "browser"), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    },
    async () => browser?.close(),
    async () => loadgen?.stop(),
    async () => server?.stop(),
  ]);
});

test("the console goes live and counts the 50 bots", { timeout: TEST_TIMEOUT }, async () => {
  await waitUntil(async () => (await page.textContent("#status")) === "live", "the status to read live");
  await waitUntil(async () => (await stats()).players === BOTS, `consoleStats.players to be ${BOTS}`, 30_000, 200);
  await waitUntil(async () => (await page.textContent("#players")) === String(BOTS), `#players to read ${BOTS}`);
});

test("the minimap draws the crowd", { timeout: TEST_TIMEOUT }, async (t) => {
  const { minimapDots } = await waitUntil(async () => {
    const s = await stats();
    return s.minimapDots >= BOTS && s;
  }, `consoleStats.minimapDots >= ${BOTS}`, 10_000, 200);
  const { width, height, rgba } = decodePng(await page.locator("#minimap").screenshot());
  // The background is the top-left pixel's colour (a dot there would be one in 10^4).
  const background = rgba.subarray(0, 4);
  let drawn = 0;
  for (let at = 0; at < rgba.length; at += 4) {
    if (Math.abs(rgba[at] - background[0]) + Math.abs(rgba[at + 1] - background[1]) + Math.abs(rgba[at + 2] - background[2]) > 60) drawn++;
  }
  t.diagnostic(`${minimapDots} dots; ${drawn} of ${width * height} pixels stand out from the background`);
  // 50 dots of at least 3 x 3 px, however many overlap, are well over 50 px.
  assert.ok(drawn >= 50, `${drawn} pixels differ from the background`);
});

test("the tick graph plots a point per second", { timeout: TEST_TIMEOUT }, async () => {
  const first = (await stats()).tickPoints;
  const { tickPoints, snapshots } = await waitUntil(async () => {
    const s = await stats();
    return s.tickPoints >= Math.max(2, first + 2) && s;
  }, "two more tick points", 10_000, 200);
  assert.ok(tickPoints >= 2);
  assert.equal(tickPoints, Math.min(snapshots, 300), "one point per snapshot");
});

test("find player shows a bot, and 'not found' for nobody; no page errors", { timeout: TEST_TIMEOUT }, async () => {
  await page.fill("#find-name", "bot7");
  await page.click("#find button");
  const shown = await waitUntil(async () => {
    const text = await page.textContent("#found");
    return /^bot7 \(#\d+\) at -?[\d.]+, -?[\d.]+$/.test(text) && text;
  }, "bot7's position");
  assert.match(shown, /^bot7/);

  await page.fill("#find-name", NOBODY);
  await page.click("#find button");
  await waitUntil(async () => (await page.textContent("#found")) === `${NOBODY}: not found`, "'not found'");

  // Back to a found player, so the kept screenshot shows the highlight.
  await page.fill("#find-name", "bot7");
  await page.click("#find button");
  await waitUntil(async () => /^bot7 /.test(await page.textContent("#found")), "bot7 again");
  assert.equal(await page.textContent("#status"), "live");
  assert.deepEqual(pageErrors, []);
});

test("kick a bot from the page: the answer is shown and the players count drops", { timeout: TEST_TIMEOUT }, async () => {
  const before = (await stats()).players;
  await page.fill("#find-name", KICKED);
  await page.click("#find button");
  await waitUntil(async () => /^bot3 /.test(await page.textContent("#found")), "bot3's position");
  await page.fill("#kick-reason", "testing the kick");
  await page.click("#kick button");
  await waitUntil(async () => (await page.textContent("#kick-result")) === "kicked bot3", "'kicked bot3'");
  await waitUntil(async () => (await stats()).players === before - 1, `consoleStats.players to be ${before - 1}`, 10_000, 200);
  assert.deepEqual(pageErrors, []);
});
