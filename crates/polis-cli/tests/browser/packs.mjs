// Opens a project's policy page in headless Chromium, answers one
// clarification through its form as a person would, and reports whether
// that clarification's finding is gone after the page reloads. Prints what
// it saw as JSON for the Rust test (crates/polis-cli/tests/packs_service.rs).
//   node packs.mjs URL KEY SCREENSHOT.png
import { chromium } from "playwright-core";

const [url, key, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.POLIS_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  const external = [];
  const errors = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(new URL(url).origin)) external.push(r.url());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: "load" });
  const finding = `#findings tr[data-code="policy.clarification.unanswered"][data-key="${key}"]`;
  const before = await page.locator(finding).count();
  const layers = await page.locator("#effective tr td:nth-child(3)").allTextContents();
  const hash = await page.locator("#effective-hash").textContent();

  const form = page.locator(`form.answer[data-key="${key}"]`);
  await form.locator('[name="answered_by"]').fill("browser-lead");
  await Promise.all([page.waitForEvent("load", { timeout: 10000 }), form.locator('button[type="submit"]').click()]);
  const after = await page.locator(finding).count();
  const answered = await page.locator("#clarifications").textContent();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({
    before, after, hash, external, errors,
    layers: [...new Set(layers)].sort(),
    answered_by_shown: answered.includes("browser-lead"),
  }));
} finally {
  await browser.close();
}
