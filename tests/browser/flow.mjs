// The operator's day in a real browser: Debian's chromium driven by playwright-core against a
// running Vigil (started by appliance/tests/browser.rs, which checks what this prints).
// Usage: node flow.mjs '<json settings>'; prints one JSON object of what it saw.
// Every wait has a deadline. Each page is checked with axe-core and screenshotted at two
// widths (1280 px and a 768 px tablet) into settings.screenshots.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const s = JSON.parse(process.argv[2]);
const seen = { accessibility: {} };
const log = (...a) => console.error("browser:", ...a);
const AXE = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");
const WIDTHS = [["", { width: 1280, height: 900 }], ["-tablet", { width: 768, height: 1024 }]];

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: WIDTHS[0][1] });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on("pageerror", (e) => log("page error:", e.message));
  const nav = async (name) => {
    await page.click(`#nav a[data-page="${name}"]`);
    await page.locator(`#${name}-page`).waitFor({ state: "visible" });
  };
  // axe-core at both widths (serious and critical findings kept by page), and a screenshot
  // of each. Injected through the DevTools protocol: the page's CSP allows no foreign script.
  const check = async (name) => {
    for (const [suffix, viewport] of WIDTHS) {
      await page.setViewportSize(viewport);
      await page.evaluate(AXE);
      const found = await page.evaluate(async () => {
        const result = await window.axe.run(document, { resultTypes: ["violations"] });
        return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
      });
      seen.accessibility[`${name}${suffix}`] = found.filter((v) => v.impact === "serious" || v.impact === "critical");
      const minor = found.filter((v) => v.impact !== "serious" && v.impact !== "critical").map((v) => v.id);
      if (minor.length) log(`${name}${suffix}: minor findings`, minor.join(", "));
      await page.screenshot({ path: `${s.screenshots}/${name}${suffix}.png`, fullPage: true });
    }
    await page.setViewportSize(WIDTHS[0][1]);
  };
  // A destructive action's dialog: what it says it removes; `answer` is the button pressed.
  const confirmDialog = async (answer) => {
    await page.locator("#confirm-dialog").waitFor({ state: "visible" });
    const what = await page.textContent("#confirm-what");
    await page.click(answer === "ok" ? "#confirm-ok" : "#confirm-cancel");
    await page.locator("#confirm-dialog").waitFor({ state: "hidden" });
    return what;
  };
  const imageWidth = (locator) => locator.evaluate((img) => new Promise((done) =>
    img.complete ? done(img.naturalWidth) : img.addEventListener("load", () => done(img.naturalWidth))));

  // Log in with the first password, then choose a new one.
  await page.goto(s.base);
  await page.locator("#login-page").waitFor({ state: "visible" });
  // The keyboard reaches the skip link first, and it leads to the content.
  await page.keyboard.press("Tab");
  seen.first_tab = await page.evaluate(() => document.activeElement.textContent);
  await page.keyboard.press("Enter");
  seen.skip_lands_on = await page.evaluate(() => document.activeElement.id);
  await check("01-login");
  await page.fill("#login-form [name=user]", "admin");
  await page.fill("#login-form [name=password]", s.password);
  await page.click("#login-form button");
  await page.locator("#password-page").waitFor({ state: "visible" });
  await check("02-first-password");
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
  await check("03-cameras");
  log("camera added");

  // A deny-list watchlist, and a folder of persons enrolled into it.
  await nav("watchlists");
  await page.fill("#watchlist-form [name=name]", "staff");
  await page.selectOption("#watchlist-form [name=kind]", "deny");
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
  seen.person_face_width = await imageWidth(page.locator(`#person-rows tr[data-person="${s.person}"] img.face`));
  seen.persons_range = await page.textContent("#persons-range");
  await check("04-watchlists");
  // Finding a person by part of the name.
  await page.fill("#person-search [name=q]", s.person.slice(-6).toLowerCase());
  await page.click("#person-search button");
  await page.waitForFunction(() => document.querySelectorAll("#person-rows tr").length === 1);
  seen.persons_found = await page.$$eval("#person-rows tr", (rows) => rows.map((r) => r.dataset.person));
  await page.fill("#person-search [name=q]", "");
  await page.click("#person-search button");
  await page.waitForFunction((n) => document.querySelectorAll("#person-rows tr").length === n, seen.persons.length);
  // Another person's page: reference faces, then an attribute saved.
  const other = seen.persons.find((p) => p !== s.person);
  await page.click(`#person-rows tr[data-person="${other}"] a`);
  await page.locator("#person-page").waitFor({ state: "visible" });
  await page.locator("#person-faces img").first().waitFor();
  seen.reference_face_widths = await Promise.all((await page.locator("#person-faces img").all()).map(imageWidth));
  const edited = page.waitForResponse((r) => r.url().includes("/api/v1/persons/") && r.request().method() === "PATCH");
  await page.fill("#person-form [name=attributes]", "badge: 4711");
  await page.click("#person-form button[type=submit]");
  seen.person_edit_status = (await edited).status();
  await page.waitForFunction(() => document.getElementById("person-form-status").textContent === "Saved."
    || document.getElementById("person-form-error").textContent !== "");
  seen.person_edit_error = await page.textContent("#person-form-error");
  seen.person_summary = await page.textContent("#person-summary");
  await check("04b-person");
  log("enrolled:", seen.enrol_status);

  // The live page: the person's alert arrives, highlighted as a deny-list match, with the
  // live best shot beside the enrolled face; an operator acknowledges it.
  const started = Date.now();
  await nav("live");
  const alert = page.locator(`#alerts li.matched[data-person="${s.person}"]`).first();
  await alert.waitFor({ timeout: 240_000 });
  seen.alert_wait_ms = Date.now() - started;
  seen.alert_thumbnail_width = await imageWidth(alert.locator("img").first());
  seen.alert_reference_width = await imageWidth(alert.locator("img").nth(1));
  seen.alert_text = await alert.textContent();
  seen.alert_classes = await alert.getAttribute("class");
  await alert.locator("button.acknowledge").click();
  await alert.locator(".ack").waitFor();
  seen.alert_acknowledged = await alert.locator(".ack").textContent();
  await page.locator("#live-cameras .tile .state-streaming").first().waitFor();
  await page.waitForFunction(() => /frames\/s analysed/.test(document.querySelector("#live-cameras .tile .load").textContent));
  seen.tile_load = await page.textContent("#live-cameras .tile .load");
  // The filter hides what is acknowledged.
  await page.check("#alert-filters [name=unacknowledged]");
  seen.acknowledged_hidden = await page.locator(`#alerts li[data-alert="${await alert.getAttribute("data-alert")}"]`).isHidden();
  await page.uncheck("#alert-filters [name=unacknowledged]");
  await check("05-live");
  log("alert seen after", seen.alert_wait_ms, "ms");

  // Search by another photo of the person: their stored sighting comes first. The sighting is
  // written when the track ends, so the search is repeated until it shows (with a deadline).
  await nav("search");
  await page.setInputFiles("#search-form [name=photo]", s.probe);
  const deadline = Date.now() + 120_000;
  for (;;) {
    await page.click("#search-form button[type=submit]");
    await page.waitForFunction(() => document.getElementById("search-summary").textContent !== ""
      || document.getElementById("search-error").textContent !== "");
    const first = await page.$$eval("#results figcaption", (c) => c.map((e) => e.textContent));
    seen.search_error = await page.textContent("#search-error");
    if (first.length && first[0].includes(s.person)) { seen.search_first = first[0]; break; }
    if (Date.now() > deadline) throw new Error(`no sighting of ${s.person} found; results: ${first.join(" | ")} ${seen.search_error}`);
    await page.evaluate(() => { document.getElementById("search-summary").textContent = ""; });
    await page.waitForTimeout(1000);
  }
  seen.first_thumbnail_width = await imageWidth(page.locator("#results figure img").first());
  // The charts count through the metadata index, which trails new sightings by up to a
  // second: each search redraws them, so search again until the bar is there.
  for (let tries = 0; !(await page.locator("#hourly-chart svg rect").count()); tries++) {
    if (tries > 30) throw new Error("the sightings chart stays empty");
    await page.click("#search-form button[type=submit]");
    await page.waitForTimeout(500);
  }
  await check("06-search");
  // A result opens from the keyboard.
  await page.focus("#results button.result >> nth=0");
  await page.keyboard.press("Enter");
  await page.locator("#sighting-dialog").waitFor({ state: "visible" });
  seen.sighting_detail = JSON.parse(await page.textContent("#sighting-detail"));
  await check("07-sighting");
  await page.click("#close-dialog");
  log("found:", seen.search_first);

  // Erase the person: the dialog says what goes; cancelled, nothing goes; confirmed, the
  // person and their sightings go, and the same search no longer finds them.
  await nav("watchlists");
  await page.click("#watchlist-rows a:text-is('staff')");
  const erase = page.locator(`#person-rows tr[data-person="${s.person}"] button.delete`);
  await erase.click();
  seen.erase_cancelled_said = await confirmDialog("cancel");
  seen.kept_after_cancel = await page.locator(`#person-rows tr[data-person="${s.person}"]`).count();
  await erase.click();
  await page.locator("#confirm-dialog").waitFor({ state: "visible" });
  await check("08-confirm-erase");
  seen.erase_said = await confirmDialog("ok");
  await page.waitForFunction((p) => document.getElementById("person-status").textContent.startsWith(`Deleted ${p}`), s.person);
  seen.deleted = await page.textContent("#person-status");
  await nav("search");
  await page.setInputFiles("#search-form [name=photo]", s.probe);
  await page.evaluate(() => { document.getElementById("search-summary").textContent = ""; });
  await page.click("#search-form button[type=submit]");
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
  await check("07b-import");
  log("imported:", JSON.stringify(seen.import_rows));

  // Settings: words, units and help; a bad value refused beside its field, by the page and
  // (with the page's own check taken away) by the server; then a good change saved.
  await nav("settings");
  const minFace = "#settings-form [name='analysis.min_face']";
  await page.locator(minFace).waitFor();
  seen.min_face_label = await page.textContent("label[for='setting-analysis-min_face']");
  seen.min_face_help = await page.textContent("#setting-analysis-min_face-help");
  seen.upgrade_margin_value = await page.inputValue("#settings-form [name='analysis.upgrade_margin']");
  await page.fill(minFace, "5");
  await page.click("#settings-form button[type=submit]");
  await page.locator(".field-error[data-field='analysis.min_face']:not(:empty)").waitFor();
  seen.page_refusal = await page.textContent(".field-error[data-field='analysis.min_face']");
  seen.page_refusal_focused = await page.evaluate(() => document.activeElement.name);
  await check("09-settings-refused");
  await page.fill(minFace, "40");
  const retention = "#settings-form [name='privacy.sighting_retention_days']";
  await page.evaluate((sel) => document.querySelector(sel).removeAttribute("min"), retention);
  await page.fill(retention, "0");
  const refused = page.waitForResponse((r) => r.url().endsWith("/api/v1/settings") && r.request().method() === "PUT");
  await page.click("#settings-form button[type=submit]");
  seen.server_refusal_status = (await refused).status();
  await page.locator(".field-error[data-field='privacy.sighting_retention_days']:not(:empty)").waitFor();
  seen.server_refusal = await page.textContent(".field-error[data-field='privacy.sighting_retention_days']");
  await page.fill(retention, "20");
  await page.click("#settings-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("settings-status").textContent.startsWith("Saved")
    || document.getElementById("settings-error").textContent !== "");
  seen.settings_error = await page.textContent("#settings-error");
  seen.saved_retention = await page.inputValue(retention);
  // Software update: what runs, and (not an appliance image) why no update can be applied.
  await page.waitForFunction(() => document.getElementById("update-version").textContent !== "");
  seen.update = await page.evaluate(() => ({
    slot: document.getElementById("update-slot").textContent,
    version: document.getElementById("update-version").textContent,
    last: document.getElementById("update-last").textContent,
    note: document.getElementById("update-form-status").textContent,
    disabled: document.querySelector("#update-form button").disabled,
  }));
  await check("09-settings");

  await nav("users");
  await page.fill("#user-form [name=name]", "olga");
  await page.selectOption("#user-form [name=role]", "operator");
  await page.fill("#user-form [name=password]", "operator-password-1");
  await page.click("#user-form button");
  await page.locator("#user-rows tr", { hasText: "olga" }).waitFor();
  await check("10-users");
  await nav("audit");
  await page.locator("#audit-rows tr").first().waitFor();
  seen.audit_actions = await page.$$eval("#audit-rows tr", (rows) => [...new Set(rows.map((r) => r.dataset.action))]);
  seen.acknowledgement_audit = await page.$$eval("#audit-rows tr[data-action='alert.acknowledge']", (rows) => rows.map((r) => r.cells[2].textContent));
  await check("11-audit");
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
