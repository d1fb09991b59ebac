// The built-in demo as a newcomer meets it in a browser (appliance/tests/run_command.rs starts
// `./just run`'s script and checks what this prints): log in with the first password shown in
// the log, choose a new one, then the page says it is a demo and the demo's alerts arrive.
// Usage: node demo.mjs '<json settings>'; prints one JSON object of what it saw.
import { chromium } from "playwright-core";

const s = JSON.parse(process.argv[2]);
const seen = {};
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => console.error("browser: page error:", e.message));
  await page.goto(s.base);
  await page.fill("#login-form [name=user]", "admin");
  await page.fill("#login-form [name=password]", s.password);
  await page.click("#login-form button");
  await page.locator("#password-page").waitFor({ state: "visible" });
  await page.fill("#password-form [name=current]", s.password);
  await page.fill("#password-form [name=new]", s.newPassword);
  await page.click("#password-form button");
  await page.locator("#live-page").waitFor({ state: "visible" });
  await page.locator("#demo-banner[data-demo]").waitFor({ state: "attached" });
  seen.banner_visible = await page.locator("#demo-banner").isVisible();
  seen.banner = (await page.textContent("#demo-banner")).trim();
  seen.title = await page.title();
  // The demo's first alert, as the live page shows it (the video is a minute long).
  await page.locator("#alerts li").first().waitFor({ timeout: 120_000 });
  seen.first_alert = (await page.textContent("#alerts li")).trim();
  await page.screenshot({ path: `${s.screenshots}/demo-live.png`, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
