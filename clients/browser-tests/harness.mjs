// What the browser test and the page benchmark share: the real server and a loadgen crowd
// as child processes (killed however the run ends), headless Chromium, polling waits.
//
// Paths: THRONG_BIN and LOADGEN_BIN (default target/debug/{throng,loadgen} of this
// checkout), CHROMIUM (default /usr/bin/chromium). A missing one is an error, never a skip.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
export const REPO = here("../../");
export const THRONG_BIN = process.env.THRONG_BIN ?? here("../../target/debug/throng");
export const LOADGEN_BIN = process.env.LOADGEN_BIN ?? here("../../target/debug/loadgen");
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/**
 * The world every test and bench plays in: 300 units with an interest radius of 450, more
 * than its diagonal (the view is cut at the world's edges, not wrapped), so everyone sees
 * everyone wherever they walk.
 */
export const WORLD_ARGS = ["--world-size", "300", "--interest-radius", "450"];

/** Throws unless every program the run needs is there (CI must fail, not skip). */
export function requirePrograms() {
  const missing = [
    [THRONG_BIN, "THRONG_BIN (cargo build -p throng -p loadgen)"],
    [LOADGEN_BIN, "LOADGEN_BIN (cargo build -p throng -p loadgen)"],
    [CHROMIUM, "CHROMIUM (apt-get install chromium)"],
  ].filter(([path]) => !existsSync(path));
  if (missing.length > 0) {
    throw new Error(`missing: ${missing.map(([path, how]) => `${path} — set ${how}`).join("; ")}`);
  }
}

/** Children still running, killed if this process ends any other way. */
const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    for (const child of children) child.kill("SIGKILL");
    process.exit(130);
  });
}

/** Spawns `bin`, keeping the tail of its stderr and stdout; `stop()` kills it and waits. */
function run(bin, args) {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const tail = { out: "", err: "" };
  child.stderr.on("data", (chunk) => (tail.err = (tail.err + chunk).slice(-4000)));
  const exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  child.on("error", () => {}); // a failed spawn also ends in "exit"/"close"; reported by callers
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(killer);
    }
  };
  return { child, tail, exited, stop };
}

/**
 * Starts the server on free ports with a fresh data directory; resolves once it printed its
 * three addresses. `stop()` kills it and removes the directory.
 * @returns {Promise<{ tcp: string, metrics: string, web: string, pid: number, stop: () => Promise<void>, stderr: () => string }>}
 */
export async function startServer(extraArgs = []) {
  const dataDir = mkdtempSync(join(tmpdir(), "throng-browser-"));
  const proc = run(THRONG_BIN, [
    "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--web", "127.0.0.1:0",
    "--data-dir", dataDir, ...WORLD_ARGS, ...extraArgs,
  ]);
  const stop = async () => {
    await proc.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  const found = {};
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the server printed no addresses within 30 s")), 30_000);
      const lines = createInterface({ input: proc.child.stdout });
      lines.on("line", (line) => {
        let m;
        if ((m = /^throng listening on (\S+)$/.exec(line))) found.tcp = m[1];
        else if ((m = /^throng metrics on http:\/\/(\S+)\/metrics$/.exec(line))) found.metrics = m[1];
        else if ((m = /^throng web on http:\/\/(\S+)\/$/.exec(line))) found.web = m[1];
        if (found.tcp && found.metrics && found.web) {
          clearTimeout(timer);
          resolve();
        }
      });
      void proc.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`the server exited (${code ?? signal}) before printing its addresses`));
      });
    });
  } catch (error) {
    await stop();
    error.message += `; its stderr: ${proc.tail.err.trim().split("\n").slice(-5).join(" | ")}`;
    throw error;
  }
  return { ...found, pid: proc.child.pid, stop, stderr: () => proc.tail.err };
}

/**
 * Starts `bots` loadgen bots walking at random over TCP (they connect in the background:
 * wait for them to be seen). Its measured window is long; `stop()` ends it sooner.
 */
export function startLoadgen(tcpAddr, bots, seconds = 600) {
  const proc = run(LOADGEN_BIN, [
    "--addr", tcpAddr, "--bots", String(bots), "--warmup", "0", "--seconds", String(seconds), "--seed", "1",
  ]);
  return { stop: proc.stop, exited: proc.exited, stderr: () => proc.tail.err };
}

/** Headless Chromium from CHROMIUM (Playwright's own download is not used). */
export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true });
}

/**
 * Polls `check` (sync or async) every `everyMs` until it returns a truthy value, which it
 * resolves with; rejects after `timeoutMs` with what was awaited and the last value seen.
 */
export async function waitUntil(check, what, timeoutMs = 15_000, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(everyMs);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs every cleanup step in order, each guarded: a failure (logged) never skips the steps
 * after it, so a failed test leaves no process behind.
 */
export async function cleanUp(steps) {
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      console.error(`cleanup: ${error.message}`);
    }
  }
}
