// Opens a run's console page in headless Chromium, checks the map as a
// person would use it, and saves a screenshot. Prints what it saw as JSON
// for the Rust test (crates/polis-cli/tests/console.rs).
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
  const errors = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(new URL(url).origin)) external.push(r.url());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  const response = await page.goto(url, { waitUntil: "load" });
  const map = page.locator("svg#map");
  await map.waitFor({ state: "visible", timeout: 10000 });
  const box = await map.boundingBox();
  const panel = page.locator("svg#map svg.panel").first();
  const viewBox = () => panel.getAttribute("viewBox").then((v) => v.split(" ").map(Number));

  // Every arrow's drawn segment, in page pixels, against its panel's box
  // and the map's.
  const outside = await page.evaluate(() => {
    const m = document.getElementById("map").getBoundingClientRect();
    const out = [];
    for (const l of document.querySelectorAll("svg#map line.move")) {
      // A nested svg's own box is its content's; its frame is the panel.
      const n = l.closest("svg.panel").dataset.panel;
      const p = document.querySelector(`svg#map rect.panel-frame[data-panel="${n}"]`).getBoundingClientRect();
      const r = l.getBoundingClientRect();
      const inside = (b) => r.left >= b.left - 1 && r.right <= b.right + 1 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1;
      if (!inside(p) || !inside(m)) out.push(l.querySelector("title").textContent);
    }
    return out;
  });
  // The longest arrow on screen: moves must be visible, not dots.
  const longestArrowPx = await page.evaluate(() =>
    Math.max(0, ...[...document.querySelectorAll("svg#map line.move")].map((l) => {
      const r = l.getBoundingClientRect();
      return Math.hypot(r.width, r.height);
    })),
  );

  // Pointing at a station a move touches names what is under the pointer.
  const touched = page.locator("svg#map circle[data-touched]").first();
  let hover = null;
  if ((await touched.count()) > 0) {
    const [x, y] = await touched.evaluate((c) => {
      const r = c.getBoundingClientRect();
      return [Math.round(r.left + r.width / 2), Math.round(r.top + r.height / 2)];
    });
    await page.mouse.move(x, y);
    const expected = await page.evaluate(([x, y]) => {
      const top = document.elementFromPoint(x, y);
      const item = top && top.closest("circle[data-station], line.move");
      return item ? item.querySelector("title").textContent : null;
    }, [x, y]);
    hover = { expected, shown: await page.locator("#map-info").textContent() };
  }

  await page.screenshot({ path: screenshot, fullPage: true });
  const panels = await page.locator("svg#map svg.panel").count();
  const stations = await page.locator("svg#map circle[data-station]").count();
  const arrows = await page.locator("svg#map line.move").count();
  const moveRows = (await page.locator("table#moves tr").count()) - 1;
  const framed = await viewBox();
  // The wheel zooms the panel under the pointer; sizes stay on screen.
  const pbox = await page.locator("svg#map rect.panel-frame").first().boundingBox();
  await page.mouse.move(pbox.x + pbox.width / 2, pbox.y + pbox.height / 2);
  await page.mouse.wheel(0, -300);
  const zoomed = await viewBox();
  const radius = await panel.evaluate((p) => {
    const c = p.querySelector("circle[data-station]");
    return c ? c.getBoundingClientRect().width / 2 : 0;
  });
  // The whole-system link shows every station in one panel.
  await Promise.all([page.waitForNavigation(), page.locator("#map-controls a[href='?frame=system']").click()]);
  const systemPanels = await page.locator("svg#map svg.panel").count();
  const systemStations = await page.locator("svg#map circle[data-station]").count();
  const systemArrows = await page.locator("svg#map line.move").count();

  console.log(
    JSON.stringify({
      status: response.status(),
      title: await page.title(),
      panels,
      stations,
      arrows,
      arrows_outside: outside,
      longest_arrow_px: longestArrowPx,
      move_rows: moveRows,
      map_width: box ? box.width : 0,
      legend: await page.locator("svg#legend").count(),
      hover,
      framed_width: framed[2],
      zoomed_width: zoomed[2],
      station_radius_px_after_zoom: radius,
      system_panels: systemPanels,
      system_stations: systemStations,
      system_arrows: systemArrows,
      url_after_toggle: page.url(),
      external_requests: external,
      script_errors: errors,
    }),
  );
} finally {
  await browser.close();
}
