// The operator's day in a real browser: Debian's chromium driven by playwright-core against a
// running Vigil (started by appliance/tests/browser.rs, which checks what this prints).
// Usage: node flow.mjs '<json settings>'; prints one JSON object of what it saw.
// Every wait has a deadline; a screenshot of each page goes to settings.screenshots.
import { chromium } from "playwright-core";

const s = JSON.parse(process.argv[2]);
const seen = {};
const log = (...a) => console.error("browser:", ...a);

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  // Confirmations are accepted; prompts keep what they propose.
  page.on("dialog", (d) => (d.type() === "prompt" ? d.accept(d.defaultValue()) : d.accept()));
  page.on("pageerror", (e) => log("page error:", e.message));
  const shot = (name) => page.screenshot({ path: `${s.screenshots}/${name}.png`, fullPage: true });
  const nav = async (name) => {
    await page.click(`#nav a[data-page="${name}"]`);
    await page.locator(`#${name}-page`).waitFor({ state: "visible" });
  };

  // Log in with the first password, then choose a new one.
  await page.goto(s.base);
  await page.locator("#login-page").waitFor({ state: "visible" });
  await shot("01-login");
  await page.fill("#login-form [name=user]", "admin");
  await page.fill("#login-form [name=password]", s.password);
  await page.click("#login-form button");
  await page.locator("#password-page").waitFor({ state: "visible" });
  await shot("02-first-password");
  await page.fill("#password-form [name=current]", s.password);
  await page.fill("#password-form [name=new]", s.newPassword);
  await page.click("#password-form button");
  await page.locator("#live-page").waitFor({ state: "visible" });
  await page.locator("#demo-banner[data-demo]").waitFor({ state: "attached" });
  seen.demo_banner_visible = await page.locator("#demo-banner").isVisible();
  log("logged in");

  // A camera: the test's RTSP server.
  await nav("cameras");
  await page.fill("#camera-form [name=id]", "door");
  await page.fill("#camera-form [name=name]", "Front door");
  await page.fill("#camera-form [name=url]", s.rtsp);
  await page.click("#camera-form button");
  await page.locator("#camera-rows tr", { hasText: "door" }).waitFor();
  seen.camera_error = await page.textContent("#camera-error");
  await shot("03-cameras");
  log("camera added");

  // A watchlist, and a folder of persons enrolled into it.
  await nav("watchlists");
  await page.fill("#watchlist-form [name=name]", "staff");
  await page.click("#watchlist-form button");
  await page.click("#watchlist-rows a:text-is('staff')");
  await page.locator("#watchlist-detail").waitFor({ state: "visible" });
  await page.setInputFiles("#enrol-folder", s.enrolDir);
  await page.click("#enrol-form button");
  await page.waitForFunction(() => /^Done:/.test(document.getElementById("enrol-status").textContent)
    || document.getElementById("enrol-error").textContent !== "", null, { timeout: 300_000 });
  seen.enrol_error = await page.textContent("#enrol-error");
  seen.enrol_status = await page.textContent("#enrol-status");
  seen.rejected = await page.$$eval("#rejected-rows tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  await page.locator(`#person-rows tr[data-person="${s.person}"]`).waitFor();
  seen.persons = await page.$$eval("#person-rows tr", (rows) => rows.map((r) => r.dataset.person));
  await shot("04-watchlists");
  // Editing a person: the prompts are accepted as they stand (same name, matched for ever).
  const other = seen.persons.find((p) => p !== s.person);
  const edited = page.waitForResponse((r) => r.url().includes("/api/v1/persons/") && r.request().method() === "PATCH");
  await page.locator(`#person-rows tr[data-person="${other}"] button:text-is("Edit")`).click();
  seen.person_edit_status = (await edited).status();
  log("enrolled:", seen.enrol_status);

  // The live page: the person's alert arrives with its thumbnail while the video plays.
  const started = Date.now();
  await nav("live");
  const alert = page.locator(`#alerts li.matched[data-person="${s.person}"]`).first();
  await alert.waitFor({ timeout: 240_000 });
  seen.alert_wait_ms = Date.now() - started;
  seen.alert_thumbnail_width = await alert.locator("img").evaluate((img) => img.complete ? img.naturalWidth : 0);
  seen.alert_text = await alert.textContent();
  await page.locator("#live-cameras .tile .state-streaming").first().waitFor();
  await shot("05-live");
  log("alert seen after", seen.alert_wait_ms, "ms");

  // Search by another photo of the person: their stored sighting comes first. The sighting is
  // written when the track ends, so the search is repeated until it shows (with a deadline).
  await nav("search");
  await page.setInputFiles("#search-form [name=photo]", s.probe);
  const deadline = Date.now() + 120_000;
  for (;;) {
    await page.click("#search-form button");
    await page.waitForFunction(() => document.getElementById("search-summary").textContent !== ""
      || document.getElementById("search-error").textContent !== "");
    const first = await page.$$eval("#results figcaption", (c) => c.map((e) => e.textContent));
    seen.search_error = await page.textContent("#search-error");
    if (first.length && first[0].includes(s.person)) { seen.search_first = first[0]; break; }
    if (Date.now() > deadline) throw new Error(`no sighting of ${s.person} found; results: ${first.join(" | ")} ${seen.search_error}`);
    await page.evaluate(() => { document.getElementById("search-summary").textContent = ""; });
    await page.waitForTimeout(1000);
  }
  seen.first_thumbnail_width = await page.locator("#results figure img").first()
    .evaluate((img) => new Promise((done) => img.complete ? done(img.naturalWidth) : img.addEventListener("load", () => done(img.naturalWidth))));
  // The charts count through the metadata index, which trails new sightings by up to a
  // second: each search redraws them, so search again until the bar is there.
  for (let tries = 0; !(await page.locator("#hourly-chart svg rect").count()); tries++) {
    if (tries > 30) throw new Error("the sightings chart stays empty");
    await page.click("#search-form button");
    await page.waitForTimeout(500);
  }
  await shot("06-search");
  await page.click("#results figure >> nth=0");
  await page.locator("#sighting-dialog").waitFor({ state: "visible" });
  seen.sighting_detail = JSON.parse(await page.textContent("#sighting-detail"));
  await shot("07-sighting");
  await page.click("#close-dialog");
  log("found:", seen.search_first);

  // Erase the person: their sightings go too, and the same search no longer finds them.
  await nav("watchlists");
  await page.click("#watchlist-rows a:text-is('staff')");
  await page.locator(`#person-rows tr[data-person="${s.person}"] button:text-is("Delete")`).click();
  await page.waitForFunction((p) => document.getElementById("person-status").textContent.startsWith(`Deleted ${p}`), s.person);
  seen.deleted = await page.textContent("#person-status");
  await nav("search");
  await page.setInputFiles("#search-form [name=photo]", s.probe);
  await page.evaluate(() => { document.getElementById("search-summary").textContent = ""; });
  await page.click("#search-form button");
  await page.waitForFunction(() => document.getElementById("search-summary").textContent !== "");
  seen.after_delete = await page.$$eval("#results figcaption", (c) => c.map((e) => e.textContent));
  log("deleted:", seen.deleted);

  // A recorded clip imported through its page: the job runs to its end in the background.
  await nav("imports");
  await page.setInputFiles("#import-form [name=clip]", s.clip);
  await page.fill("#import-form [name=camera]", "archive");
  await page.fill("#import-form [name=start]", "2026-11-28T08:00");
  await page.click("#import-form button");
  await page.waitForFunction(() => [...document.querySelectorAll("#import-rows tr")]
    .some((r) => /^(done|failed|cancelled)/.test(r.cells[3].textContent)), null, { timeout: 300_000 });
  seen.import_rows = await page.$$eval("#import-rows tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  seen.import_error = await page.textContent("#import-error");
  await shot("07b-import");
  log("imported:", JSON.stringify(seen.import_rows));

  // Settings, users, then the audit log of all of it.
  await nav("settings");
  await page.fill("#settings-form [name='privacy.sighting_retention_days']", "20");
  await page.click("#settings-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("settings-status").textContent.startsWith("Saved")
    || document.getElementById("settings-error").textContent !== "");
  seen.settings_error = await page.textContent("#settings-error");
  await shot("08-settings");
  await nav("users");
  await page.fill("#user-form [name=name]", "olga");
  await page.selectOption("#user-form [name=role]", "operator");
  await page.fill("#user-form [name=password]", "operator-password-1");
  await page.click("#user-form button");
  await page.locator("#user-rows tr", { hasText: "olga" }).waitFor();
  await shot("09-users");
  await nav("audit");
  await page.locator("#audit-rows tr").first().waitFor();
  seen.audit_actions = await page.$$eval("#audit-rows tr", (rows) => [...new Set(rows.map((r) => r.dataset.action))]);
  await shot("10-audit");
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
