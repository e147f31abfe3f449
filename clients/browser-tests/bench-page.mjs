// The playable page under a crowd, headless: the server, BOTS loadgen bots (200 by default,
// env BOTS) all in view of each other (harness.mjs's small world), and the page. Reports
// (a) frames drawn per second over 10 s (throngStats.framesRendered) and (b) the JS heap
// used, after a forced GC, at the start, after 30 s and after 60 s (CDP
// HeapProfiler.collectGarbage, then Runtime.getHeapUsage): a heap that keeps growing
// would show here. Takes about 70 s plus start-up. Prints one summary line.
//
//   node --experimental-websocket bench-page.mjs     (or: npm run bench)
import { cpus, loadavg } from "node:os";
import { launchBrowser, requirePrograms, sleep, startLoadgen, startServer, waitUntil } from "./harness.mjs";

const BOTS = Number(process.env.BOTS ?? 200);
const FPS_WINDOW_S = 10;
const READINGS_S = [0, 30, 60];

requirePrograms();
const server = await startServer();
const loadgen = startLoadgen(server.tcp, BOTS, 300);
const browser = await launchBrowser();
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`http://${server.web}/?name=bench-page`);
  const stats = () => page.evaluate(() => ({ ...window.throngStats }));
  await waitUntil(async () => (await stats()).playerId !== null, "the page to join", 30_000);
  // Every bot (and the 5 NPCs) in view: the crowd is there.
  await waitUntil(async () => (await stats()).entitiesInView > BOTS, `more than ${BOTS} entities in view`, 120_000, 200);

  const cdp = await page.context().newCDPSession(page);
  const heapAfterGc = async () => {
    await cdp.send("HeapProfiler.collectGarbage");
    const { usedSize } = await cdp.send("Runtime.getHeapUsage");
    return usedSize;
  };

  const started = performance.now();
  const heap = [await heapAfterGc()];
  const seen = [];
  const fps0 = { frames: (await stats()).framesRendered, at: performance.now() };
  await sleep(FPS_WINDOW_S * 1000);
  const fps1 = { frames: (await stats()).framesRendered, at: performance.now() };
  const fps = (fps1.frames - fps0.frames) / ((fps1.at - fps0.at) / 1000);
  for (const at of READINGS_S.slice(1)) {
    await sleep(Math.max(0, started + at * 1000 - performance.now()));
    heap.push(await heapAfterGc());
    seen.push((await stats()).entitiesInView);
  }
  const end = await stats();
  if (!end.connected) throw new Error(`the page was disconnected: ${end.closeReason}`);
  if (errors.length > 0) throw new Error(`page errors: ${errors.join("; ")}`);

  const mib = (bytes) => (bytes / 2 ** 20).toFixed(2);
  const growth = heap.at(-1) - heap[0];
  console.log(
    `bench-page: ${BOTS} bots, ${Math.min(...seen)}-${Math.max(...seen)} entities in view; ` +
      `${fps.toFixed(1)} frames/s over ${FPS_WINDOW_S} s; ` +
      `JS heap after GC ${READINGS_S.map((s, i) => `${mib(heap[i])} MiB at ${s} s`).join(", ")} ` +
      `(${growth >= 0 ? "+" : ""}${(growth / 1024).toFixed(0)} KiB); ` +
      `load average ${loadavg()[0].toFixed(2)} on ${cpus().length} cores`,
  );
} finally {
  await browser.close().catch(() => {});
  await loadgen.stop();
  await server.stop();
}
