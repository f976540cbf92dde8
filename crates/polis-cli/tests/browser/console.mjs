// Opens a run's console page in headless Chromium, checks the map, and
// saves a screenshot. Prints what it saw as JSON for the Rust test.
//   node console.mjs URL SCREENSHOT.png
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.POLIS_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 1100 } });
  const external = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(new URL(url).origin)) external.push(r.url());
  });
  const response = await page.goto(url, { waitUntil: "load" });
  const map = page.locator("svg#map");
  await map.waitFor({ state: "visible", timeout: 10000 });
  const box = await map.boundingBox();
  const seen = {
    status: response.status(),
    title: await page.title(),
    stations: await page.locator("svg#map circle").count(),
    arrows: await page.locator("svg#map line.move").count(),
    move_rows: await page.locator("table#moves tr").count() - 1,
    map_width: box ? box.width : 0,
    external_requests: external,
  };
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
