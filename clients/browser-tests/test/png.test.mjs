// The screenshot decoder against the browser's own pixels: a canvas of noise and flat
// areas (so that Chromium's encoder uses several row filters), screenshotted and decoded,
// must equal what getImageData reads from it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, requirePrograms } from "../harness.mjs";
import { decodePng, differingPixels } from "../png.mjs";

test("decodePng reads Chromium's screenshots exactly", async () => {
  requirePrograms();
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: 200, height: 120 }, deviceScaleFactor: 1 });
    await page.setContent(`<style>body { margin: 0 }</style><canvas id="c" width="160" height="100"></canvas>`);
    const expected = await page.evaluate(() => {
      const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById("c"));
      const ctx = canvas.getContext("2d");
      const image = ctx.createImageData(160, 100);
      let seed = 12345;
      for (let i = 0; i < image.data.length; i += 4) {
        const y = Math.floor(i / 4 / 160);
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const noisy = y % 20 < 10;
        image.data.set(noisy ? [seed & 255, (seed >> 8) & 255, (seed >> 16) & 255, 255] : [20, 200, (i / 4) & 255, 255], i);
      }
      ctx.putImageData(image, 0, 0);
      return Array.from(ctx.getImageData(0, 0, 160, 100).data);
    });
    const shot = decodePng(await page.locator("#c").screenshot());
    assert.equal(shot.width, 160);
    assert.equal(shot.height, 100);
    assert.equal(differingPixels(shot, { width: 160, height: 100, rgba: Uint8Array.from(expected) }), 0);
  } finally {
    await browser.close();
  }
});
