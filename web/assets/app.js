// Vigil's browser UI. Plain DOM, no framework, no build step: every page reads and writes
// through the REST API (/api/v1, documented at /api/v1/openapi.json) with the session's
// CSRF token; nothing here holds state the server does not.
"use strict";

let me = null;
let csrf = "";
let events = null;
let snapshotTimer = null;
const $ = (id) => document.getElementById(id);
const PAGES = ["live", "cameras", "watchlists", "person", "search", "imports", "settings", "audit", "users"];
const RANK = { viewer: 1, operator: 2, admin: 3 };

// --- plumbing --------------------------------------------------------------------------

async function api(method, path, body, contentType) {
  const headers = { "X-CSRF-Token": csrf };
  let payload = body;
  if (body !== undefined && contentType === undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  } else if (contentType) {
    headers["Content-Type"] = contentType;
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!response.ok) {
    const failure = new Error((data && data.error) || response.statusText);
    failure.field = data && data.field;
    throw failure;
  }
  return data;
}

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function row(...cells) { return el("tr", {}, ...cells.map((c) => el("td", {}, c))); }

/// Runs an action, showing its failure in the element `errorId`.
async function guarded(errorId, action) {
  $(errorId).textContent = "";
  try { await action(); } catch (err) { $(errorId).textContent = err.message; }
}

function localToIso(value) { return value ? new Date(value).toISOString() : ""; }
function when(t) { return t ? new Date(t).toLocaleString() : ""; }
function count(n, one, many) { return `${n.toLocaleString()} ${n === 1 ? one : (many || `${one}s`)}`; }

/// Asks before something is destroyed, saying what goes: resolves true when confirmed.
function confirmDestroy(title, lines, action) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-what").replaceChildren(el("ul", {}, ...lines.map((l) => el("li", {}, l))));
  $("confirm-ok").textContent = action;
  return new Promise((resolve) => {
    const done = (answer) => () => {
      $("confirm-ok").onclick = null;
      $("confirm-cancel").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    $("confirm-ok").onclick = done(true);
    $("confirm-cancel").onclick = done(false);
    dialog.onclose = done(false);
    dialog.showModal();
  });
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== undefined && v !== null) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// --- session and navigation ---------------------------------------------------------------

function showOnly(section) {
  for (const p of ["login", "password", ...PAGES]) $(`${p}-page`).hidden = p !== section;
  $("logout").hidden = section === "login";
  $("nav").hidden = section === "login" || section === "password";
}

function enter(session) {
  me = session;
  csrf = session.csrf_token || "";
  $("who").textContent = `${session.user} (${session.role})`;
  if (session.must_change_password) { showOnly("password"); return; }
  showDemo().catch((err) => console.error(err));
  for (const a of $("nav").querySelectorAll("a")) {
    a.hidden = a.dataset.role !== undefined && RANK[session.role] < RANK[a.dataset.role];
  }
  route();
}

async function showDemo() {
  const system = await api("GET", "/api/v1/system");
  $("demo-banner").hidden = !system.demo;
  $("demo-banner").dataset.demo = String(Boolean(system.demo));
  document.title = system.demo ? "Vigil (demo)" : "Vigil";
}

function route() {
  if (!me || me.must_change_password) return;
  // `#person/ID` is a person's page, under Watchlists.
  const [hash, argument] = location.hash.slice(1).split("/");
  let page = hash || "live";
  const under = page === "person" ? "watchlists" : page;
  const link = $("nav").querySelector(`a[data-page="${under}"]`);
  if (!link || link.hidden) page = "live";
  for (const a of $("nav").querySelectorAll("a")) {
    const current = a.dataset.page === (page === "person" ? "watchlists" : page);
    a.classList.toggle("current", current);
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  showOnly(page);
  if (page !== "live" && snapshotTimer) { clearInterval(snapshotTimer); snapshotTimer = null; }
  LOADERS[page](argument).catch((err) => console.error(err));
}

window.addEventListener("hashchange", route);
// The skip link moves the focus, not the page (a hash change would route).
document.querySelector("a.skip").addEventListener("click", (e) => { e.preventDefault(); $("content").focus(); });

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  guarded("login-error", async () => {
    enter(await api("POST", "/api/v1/session", { user: form.get("user"), password: form.get("password") }));
    e.target.reset();
  });
});

$("password-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  guarded("password-error", async () => {
    await api("POST", "/api/v1/session/password", { current: form.get("current"), new: form.get("new") });
    e.target.reset();
    enter(await api("GET", "/api/v1/session"));
  });
});

$("logout").addEventListener("click", async () => {
  try { await api("DELETE", "/api/v1/session"); } finally {
    if (events) { events.close(); events = null; }
    me = null;
    showOnly("login");
  }
});

// --- live -----------------------------------------------------------------------------

/// The latest alerts by id (from the API when the page opens, then from the live events).
const alertsById = new Map();
let audio = null;

function cameraState(c) { return c.state + (c.reason ? `: ${c.reason}` : ""); }

/// A camera's load in words: what it analyses, how long a frame waits, what it drops.
function loadText(load) {
  if (!load) return "not analysing";
  const latency = load.latency_ms_median == null ? ""
    : ` · ${Math.round(load.latency_ms_median)} ms to analyse (95 % within ${Math.round(load.latency_ms_p95)} ms)`;
  return `${load.analysed_fps.toFixed(1)} frames/s analysed${latency} · ${count(load.dropped_frames, "frame")} dropped`
    + (load.decode_errors ? ` · ${count(load.decode_errors, "decode error")}` : "");
}

/// Dropped-frame counts at the previous refresh, by camera: a rise means the box is behind.
const droppedBefore = new Map();

function showLoad(tile, camera) {
  tile.querySelector(".load").textContent = loadText(camera.load);
  const dropped = camera.load ? camera.load.dropped_frames : 0;
  const before = droppedBefore.get(camera.id);
  droppedBefore.set(camera.id, dropped);
  tile.querySelector(".warning").textContent = before !== undefined && dropped > before
    ? `Falling behind: ${count(dropped - before, "frame")} dropped since the last look. Lower the analysed frames a second, use keyframes only, or move cameras to another box.`
    : "";
}

async function loadLive() {
  const cameras = await api("GET", "/api/v1/cameras");
  const tiles = $("live-cameras");
  tiles.replaceChildren(...cameras.map((c) => el("div", { class: "tile", dataset: { camera: c.id } },
    el("strong", {}, c.name || c.id),
    el("div", { class: `state state-${c.state}` }, cameraState(c)),
    el("div", { class: "load" }),
    el("div", { class: "warning", role: "status" }),
    el("img", { class: "snapshot", alt: `latest frame of ${c.name || c.id}` }))));
  for (const c of cameras) showLoad(tiles.querySelector(`[data-camera="${CSS.escape(c.id)}"]`), c);
  const cameraFilter = $("alert-filters").elements.camera;
  const chosen = cameraFilter.value;
  cameraFilter.replaceChildren(el("option", { value: "" }, "all"),
    ...cameras.map((c) => el("option", { value: c.id }, c.name || c.id)));
  cameraFilter.value = chosen;
  await loadAlertWatchlists();
  const refresh = () => {
    api("GET", "/api/v1/cameras").then((now) => {
      for (const c of now) {
        const tile = tiles.querySelector(`[data-camera="${CSS.escape(c.id)}"]`);
        if (tile) showLoad(tile, c);
      }
    }).catch((err) => console.error(err));
    for (const tile of tiles.children) {
      const img = tile.querySelector("img.snapshot");
      const next = new Image();
      next.onload = () => { img.src = next.src; img.classList.add("loaded"); };
      next.src = `/api/v1/cameras/${encodeURIComponent(tile.dataset.camera)}/snapshot?t=${Date.now()}`;
    }
  };
  refresh();
  if (!snapshotTimer) snapshotTimer = setInterval(refresh, 5000);
  if (events) return;
  for (const alert of (await api("GET", "/api/v1/alerts")).reverse()) showAlert(alert);
  events = new EventSource("/api/v1/events");
  events.addEventListener("FaceMatched", (e) => alertArrived(JSON.parse(e.data)));
  events.addEventListener("UnregisteredFace", (e) => alertArrived(JSON.parse(e.data)));
  events.addEventListener("AlertAcknowledged", (e) => {
    const data = JSON.parse(e.data);
    const alert = alertsById.get(data.alert);
    if (alert) { alert.acknowledged = data.acknowledged; showAlert(alert); }
  });
  events.addEventListener("CameraStateChanged", (e) => {
    const data = JSON.parse(e.data);
    const state = tiles.querySelector(`[data-camera="${CSS.escape(data.camera)}"] .state`);
    if (state) { state.textContent = cameraState(data); state.className = `state state-${data.state}`; }
    else loadLive();
  });
}

async function loadAlertWatchlists() {
  const select = $("alert-filters").elements.watchlist;
  const chosen = select.value;
  const lists = await api("GET", "/api/v1/watchlists");
  select.replaceChildren(el("option", { value: "" }, "all"), el("option", { value: "-" }, "unregistered only"),
    ...lists.map((l) => el("option", { value: l.id }, l.name)));
  select.value = chosen;
}

function alertArrived(alert) {
  const known = alertsById.get(alert.alert);
  if (known) alert.acknowledged = known.acknowledged;
  else alert.acknowledged = null;
  showAlert(alert);
  if (!known && alert.watchlist_kind === "deny" && $("alert-filters").elements.sound.checked) beep();
}

/// Two short tones: a deny-list match wants attention now (WebAudio: no sound file to load).
function beep() {
  try {
    audio = audio || new AudioContext();
    for (const [start, pitch] of [[0, 880], [0.25, 660]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = pitch;
      gain.gain.value = 0.2;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + start);
      tone.stop(audio.currentTime + start + 0.18);
    }
  } catch (err) { console.error(err); }
}

/// Draws (or redraws in place) one alert.
function showAlert(alert) {
  alertsById.set(alert.alert, alert);
  const matched = alert.type === "FaceMatched";
  const classes = ["alert", matched ? "matched" : "unregistered"];
  if (alert.watchlist_kind === "deny") classes.push("deny");
  if (alert.acknowledged) classes.push("acknowledged");
  const faces = el("div", { class: "faces" },
    el("img", { alt: `best shot at ${alert.camera}`, src: `data:image/jpeg;base64,${alert.thumbnail_jpeg_base64}`, width: 64, height: 64 }));
  if (matched && alert.reference_face) {
    faces.append(el("img", { alt: `enrolled face of ${alert.person}`, src: alert.reference_face, width: 64, height: 64 }));
  }
  const label = matched
    ? [el("strong", {}, alert.person), ` ${alert.watchlist} `,
      alert.watchlist_kind && alert.watchlist_kind !== "watch" ? el("span", { class: `badge ${alert.watchlist_kind}` }, `${alert.watchlist_kind} list`) : "",
      ` score ${alert.score.toFixed(2)}`, alert.upgrade ? " — better shot" : ""]
    : [el("strong", {}, "Unregistered face"), alert.best_score != null ? ` closest score ${alert.best_score.toFixed(2)}` : ""];
  const actions = el("div", { class: "actions" });
  if (RANK[me.role] >= RANK.operator) {
    if (matched) actions.append(el("a", { href: `#person/${alert.person_id}` }, "Person"));
    actions.append(el("button", { type: "button", onclick: () => sightingsAround(alert) }, "Sightings"));
  }
  if (alert.acknowledged) {
    actions.append(el("span", { class: "ack" }, `Acknowledged by ${alert.acknowledged.by} at ${when(alert.acknowledged.at)}`));
  } else if (RANK[me.role] >= RANK.operator) {
    actions.append(el("button", { type: "button", class: "acknowledge", onclick: () => guarded("alert-error", async () => {
      const done = await api("POST", `/api/v1/alerts/${encodeURIComponent(alert.alert)}/acknowledgement`);
      alert.acknowledged = done.acknowledged;
      showAlert(alert);
    }) }, "Acknowledge"));
  }
  const item = el("li", { class: classes.join(" "), dataset: { alert: alert.alert, person: alert.person || "", camera: alert.camera, watchlist: alert.watchlist_id || "-" } },
    faces,
    el("div", { class: "text" }, el("time", { dateTime: alert.time }, new Date(alert.time).toLocaleTimeString()), ` ${alert.camera}: `, ...label),
    actions);
  const old = $("alerts").querySelector(`li[data-alert="${CSS.escape(alert.alert)}"]`);
  if (old) old.replaceWith(item); else $("alerts").prepend(item);
  while ($("alerts").children.length > 500) {
    alertsById.delete($("alerts").lastChild.dataset.alert);
    $("alerts").lastChild.remove();
  }
  filterAlerts();
}

function filterAlerts() {
  const f = $("alert-filters").elements;
  let shown = 0;
  for (const item of $("alerts").children) {
    const alert = alertsById.get(item.dataset.alert);
    item.hidden = (f.camera.value && item.dataset.camera !== f.camera.value)
      || (f.watchlist.value && item.dataset.watchlist !== f.watchlist.value)
      || (f.unacknowledged.checked && Boolean(alert && alert.acknowledged));
    if (!item.hidden) shown++;
  }
  const total = $("alerts").children.length;
  $("alert-summary").textContent = total === 0 ? "No alerts yet." : `${count(shown, "alert")} shown of ${total.toLocaleString()}.`;
}

$("alert-filters").addEventListener("change", filterAlerts);
$("alert-filters").addEventListener("submit", (e) => e.preventDefault());

/// The search page, filtered to the alert's camera and the minutes around it.
function sightingsAround(alert) {
  const f = $("search-form").elements;
  const local = (t) => { const d = new Date(t); d.setMinutes(d.getMinutes() - d.getTimezoneOffset()); return d.toISOString().slice(0, 16); };
  const t = Date.parse(alert.time);
  f.from.value = local(t - 5 * 60e3);
  f.to.value = local(t + 5 * 60e3);
  pendingSearch = { camera: alert.camera };
  location.hash = "#search";
}

// --- cameras --------------------------------------------------------------------------

async function loadCameras() {
  const cameras = await api("GET", "/api/v1/cameras");
  $("camera-rows").replaceChildren(...cameras.map((c) => {
    const actions = c.source === "api"
      ? el("span", {}, el("button", { type: "button", onclick: () => editCamera(c) }, "Edit"), " ",
          el("button", { type: "button", onclick: () => guarded("camera-error", async () => {
            const sure = await confirmDestroy(`Remove camera ${c.name || c.id}?`,
              ["Its analysis stops and it leaves the ONVIF device's profiles.", "Its stored sightings stay until retention deletes them."],
              "Remove camera");
            if (!sure) return;
            await api("DELETE", `/api/v1/cameras/${encodeURIComponent(c.id)}`);
            $("camera-status").textContent = `Removed camera ${c.id}.`;
            await loadCameras();
          }) }, "Remove"))
      : "configuration file";
    const mode = { both: "registered and unregistered", watchlist: "registered", unregistered: "unregistered" }[c.mode] || c.mode;
    return row(c.id, c.name, c.url, mode, `${c.fps}${c.keyframes_only ? " (keyframes)" : ""}`,
      el("span", { class: `state state-${c.state}` }, c.state + (c.reason ? `: ${c.reason}` : "")), c.source, actions);
  }));
}

function editCamera(c) {
  const f = $("camera-form");
  for (const k of ["id", "name", "url", "transport", "fps", "mode"]) f.elements[k].value = c[k] ?? "";
  f.elements.username.value = c.username || "";
  f.elements.tls_pin.value = c.tls_pin || "";
  f.elements.tls_ca.value = c.tls_ca || "";
  f.elements.password.value = "";
  f.elements.keyframes_only.checked = c.keyframes_only;
  f.elements.enabled.checked = c.enabled;
}

$("camera-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const camera = {
    name: f.name.value, url: f.url.value, transport: f.transport.value, fps: Number(f.fps.value),
    mode: f.mode.value, keyframes_only: f.keyframes_only.checked, enabled: f.enabled.checked,
  };
  if (f.username.value) camera.username = f.username.value;
  if (f.tls_pin.value.trim()) camera.tls_pin = f.tls_pin.value.trim();
  if (f.tls_ca.value.trim()) camera.tls_ca = f.tls_ca.value.trim();
  if (f.password.value) camera.password = f.password.value;
  guarded("camera-error", async () => {
    await api("PUT", `/api/v1/cameras/${encodeURIComponent(f.id.value)}`, camera);
    e.target.reset();
    await loadCameras();
  });
});

// --- watchlists and enrolment -------------------------------------------------------------

let currentList = null;
const PERSONS_PAGE = 50;
let personsOffset = 0;

async function loadWatchlists() {
  const lists = await api("GET", "/api/v1/watchlists");
  $("watchlist-rows").replaceChildren(...lists.map((l) => el("tr", { dataset: { watchlist: l.name } },
    el("td", {}, el("a", { href: "#watchlists", onclick: (e) => { e.preventDefault(); personsOffset = 0; openList(l); } }, l.name)),
    el("td", {}, l.kind === "watch" ? "watch" : el("span", { class: `badge ${l.kind}` }, l.kind)),
    el("td", {}, l.persons.toLocaleString()), el("td", {}, l.threshold.toFixed(2)), el("td", {}, l.active ? "yes" : "no"),
    el("td", {}, el("button", { type: "button", class: "delete", onclick: () => guarded("watchlist-error", () => deleteList(l)) }, "Delete…")))));
  if (currentList) {
    const fresh = lists.find((l) => l.id === currentList.id);
    if (fresh) await openList(fresh); else { currentList = null; $("watchlist-detail").hidden = true; }
  }
}

async function deleteList(list) {
  const detail = await api("GET", `/api/v1/watchlists/${list.id}`);
  const sure = await confirmDestroy(`Delete the watchlist ${list.name}?`, [
    `${count(detail.persons, "person")} and their enrolled faces`,
    count(detail.enrolments, "enrolled photo"),
    `${count(detail.sightings, "stored sighting")} matched to them`,
  ], "Delete watchlist");
  if (!sure) return;
  const removed = await api("DELETE", `/api/v1/watchlists/${list.id}`);
  $("watchlist-status").textContent = `Deleted watchlist ${removed.watchlist}: ${count(removed.persons, "person")}, `
    + `${count(removed.enrolments, "enrolled photo")}, ${count(removed.sightings, "sighting")}, ${count(removed.faces, "stored face")}.`;
  if (currentList && currentList.id === list.id) { currentList = null; $("watchlist-detail").hidden = true; }
  await loadWatchlists();
}

async function openList(list) {
  currentList = list;
  $("watchlist-detail").hidden = false;
  $("watchlist-title").textContent = `${list.name}: ${count(list.persons, "person")}`;
  const q = $("person-search").elements.q.value.trim();
  const page = await api("GET", `/api/v1/watchlists/${list.id}/persons${query({ q, offset: personsOffset, limit: PERSONS_PAGE })}`);
  $("person-rows").replaceChildren(...page.persons.map((p) => el("tr", { dataset: { person: p.name, id: p.id } },
    el("td", {}, p.face ? el("img", { class: "face", src: p.face, alt: `face of ${p.name}`, loading: "lazy", width: 48, height: 48 }) : "no face kept"),
    el("td", {}, el("a", { href: `#person/${p.id}` }, p.name)), el("td", {}, String(p.photos)), el("td", {}, when(p.created)),
    el("td", {}, p.valid_until ? when(p.valid_until) : "for ever"),
    el("td", {}, el("button", { type: "button", class: "delete", onclick: () => guarded("enrol-error", () => erasePerson(p)) }, "Erase…")))));
  const last = Math.min(page.total, page.offset + page.persons.length);
  $("persons-range").textContent = page.total
    ? `${(page.offset + 1).toLocaleString()}–${last.toLocaleString()} of ${count(page.total, "person")}${q ? ` named like “${q}”` : ""}`
    : (q ? `Nobody named like “${q}”.` : "No persons yet.");
  $("persons-previous").disabled = page.offset === 0;
  $("persons-next").disabled = last >= page.total;
}

$("persons-previous").addEventListener("click", () => { personsOffset = Math.max(0, personsOffset - PERSONS_PAGE); openList(currentList); });
$("persons-next").addEventListener("click", () => { personsOffset += PERSONS_PAGE; openList(currentList); });
$("person-search").addEventListener("submit", (e) => { e.preventDefault(); personsOffset = 0; openList(currentList); });

/// A data subject's erasure, after saying what goes; `status` shows the report.
async function erasePerson(person, status = "person-status") {
  const detail = await api("GET", `/api/v1/persons/${person.id}`);
  const sure = await confirmDestroy(`Erase ${detail.name}?`, [
    `${detail.name} from the watchlist ${detail.watchlist.name}`,
    count(detail.enrolments.length, "enrolled photo"),
    `${count(detail.sightings, "stored sighting")} of them, with their faces`,
  ], "Erase person");
  if (!sure) return false;
  const removed = await api("DELETE", `/api/v1/persons/${person.id}`);
  $(status).textContent =
    `Deleted ${removed.person}: ${count(removed.enrolments, "enrolled photo")}, ${count(removed.sightings, "sighting")}, ${count(removed.faces, "stored face")}.`;
  if (currentList) await loadWatchlists();
  return true;
}

$("watchlist-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = e.target.elements;
  guarded("watchlist-error", async () => {
    await api("POST", "/api/v1/watchlists", { name: f.name.value, kind: f.kind.value, threshold: Number(f.threshold.value) });
    e.target.reset();
    await loadWatchlists();
  });
});

// --- a person's page ----------------------------------------------------------------------

let currentPerson = null;

async function loadPerson(id) {
  const p = await api("GET", `/api/v1/persons/${encodeURIComponent(id || "")}`);
  currentPerson = p;
  $("person-name").textContent = p.name;
  $("person-back").textContent = `← Back to the watchlist ${p.watchlist.name}`;
  $("person-summary").textContent = `Watchlist ${p.watchlist.name} (${p.watchlist.kind}) · ${count(p.enrolments.length, "enrolled photo")} · `
    + `${count(p.sightings, "stored sighting")} · matched ${p.valid_until ? `until ${when(p.valid_until)}` : "for ever"} · enrolled ${when(p.created)}`;
  $("person-faces").replaceChildren(...p.enrolments.map((e) => el("figure", { class: "result person-face" },
    e.face ? el("img", { src: e.face, alt: `enrolled face of ${p.name} from ${e.source}` }) : el("div", { class: "noface" }, "no face kept"),
    el("figcaption", {}, `${e.source} · quality ${e.quality.toFixed(2)}`))));
  const f = $("person-form").elements;
  f.name.value = p.name;
  f.valid_until.value = p.valid_until ? p.valid_until.slice(0, 10) : "";
  f.attributes.value = Object.entries(p.attributes).map(([k, v]) => `${k}: ${v}`).join("\n");
  $("person-form-status").textContent = "";
  const recent = await api("GET", `/api/v1/sightings${query({ person: p.id, limit: 12 })}`);
  $("person-sightings").replaceChildren(...recent.sightings.map((s) => card(s)));
  if (!recent.sightings.length) $("person-sightings").append(el("p", {}, "No stored sightings."));
}

$("person-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = e.target.elements;
  guarded("person-form-error", async () => {
    const attributes = {};
    for (const line of f.attributes.value.split("\n")) {
      if (!line.trim()) continue;
      const at = line.indexOf(":");
      if (at < 1) throw new Error(`“${line}” is not “key: value”`);
      attributes[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    if (!f.name.value.trim()) throw new Error("a person needs a name");
    const until = f.valid_until.value;
    await api("PATCH", `/api/v1/persons/${currentPerson.id}`,
      { name: f.name.value.trim(), attributes, valid_until: until ? new Date(`${until}T23:59:59`).toISOString() : null });
    await loadPerson(currentPerson.id);
    $("person-form-status").textContent = "Saved.";
  });
});

$("person-delete").addEventListener("click", () => guarded("person-form-error", async () => {
  const list = currentPerson.watchlist;
  if (await erasePerson(currentPerson, "person-form-status")) {
    const report = $("person-form-status").textContent;
    currentList = { id: list.id, name: list.name, persons: 0 };
    location.hash = "#watchlists";
    $("person-status").textContent = report;
  }
}));

/// Sends the form with upload progress (fetch has none), resolving with the JSON answer.
function upload(path, form, onProgress, contentType) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    request.setRequestHeader("X-CSRF-Token", csrf);
    if (contentType) request.setRequestHeader("Content-Type", contentType);
    request.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    request.onload = () => {
      let data = null;
      try { data = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
      if (request.status >= 200 && request.status < 300) resolve(data);
      else reject(new Error((data && data.error) || request.statusText));
    };
    request.onerror = () => reject(new Error("the upload failed"));
    request.send(form);
  });
}

$("enrol-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const list = currentList;
  const form = new FormData();
  const person = e.target.elements.person.value.trim();
  if (person) form.append("person", person);
  let count = 0;
  for (const file of $("enrol-folder").files) { form.append("files", file, file.webkitRelativePath || file.name); count++; }
  for (const file of $("enrol-files").files) { form.append("files", file, file.name); count++; }
  const progress = $("enrol-progress");
  guarded("enrol-error", async () => {
    if (!count) throw new Error("pick a folder or some photos");
    $("enrol-report").hidden = true;
    progress.hidden = false;
    progress.value = 0;
    $("enrol-status").textContent = `Uploading ${count} file(s)…`;
    const job = await upload(`/api/v1/watchlists/${list.id}/enrolments`, form, (p) => { progress.value = p * 0.2; });
    for (;;) {
      const state = await api("GET", `/api/v1/jobs/${job.job}`);
      progress.value = 0.2 + 0.8 * (state.total ? state.processed / state.total : 1);
      $("enrol-status").textContent = `${state.state}: ${state.processed} of ${state.total} photo(s) read, ${state.enrolled} enrolled`;
      if (state.state === "done" || state.state === "failed") {
        if (state.error) throw new Error(state.error);
        $("enrol-status").textContent =
          `Done: ${state.enrolled} photo(s) enrolled for ${state.persons.length} person(s); ${state.rejected.length} rejected.`;
        $("rejected-rows").replaceChildren(...state.rejected.map((r) => row(r.file, r.reason)));
        $("enrol-report").hidden = state.rejected.length === 0;
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    e.target.reset();
    await loadWatchlists();
  }).finally(() => { progress.hidden = true; });
});

// --- search and charts ------------------------------------------------------------------

let shown = null;
/// A search another page asked for (an alert's "Sightings"): run when the page opens.
let pendingSearch = null;

async function loadSearch() {
  const cameras = await api("GET", "/api/v1/cameras");
  const wanted = pendingSearch;
  pendingSearch = null;
  $("search-cameras").replaceChildren(...cameras.map((c) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "camera", value: c.id, checked: Boolean(wanted && wanted.camera === c.id) }), c.name || c.id)));
  if (wanted) $("search-form").requestSubmit();
  await loadCharts();
}

async function loadCharts() {
  const stats = await api("GET", "/api/v1/sightings/stats");
  drawHourly(stats);
  drawScores(stats);
}

function filters() {
  const f = $("search-form").elements;
  const cameras = [...$("search-cameras").querySelectorAll("input:checked")].map((i) => i.value);
  return {
    from: localToIso(f.from.value), to: localToIso(f.to.value), camera: cameras.join(","),
    outcome: f.outcome.value, limit: f.limit.value,
  };
}

/// A sighting as a button: a keyboard opens it as a mouse does.
function card(sighting, similarity) {
  const o = sighting.outcome;
  const who = o.kind === "matched" ? `${o.person} (score ${o.score.toFixed(2)})` : "unregistered";
  const caption = `${when(sighting.start)} · ${sighting.camera} · ${who}` + (similarity !== undefined ? ` · similarity ${similarity.toFixed(2)}` : "");
  return el("button", { type: "button", class: "result", dataset: { sighting: sighting.id }, onclick: () => openSighting(sighting) },
    el("figure", {},
      sighting.has_face ? el("img", { alt: `best shot: ${who}`, src: `/api/v1/sightings/${sighting.id}/thumbnail` }) : el("div", { class: "noface" }, "no face kept"),
      el("figcaption", {}, caption)));
}

function showResults(items, summary) {
  $("search-summary").textContent = summary;
  $("results").replaceChildren(...items);
}

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const photo = e.target.elements.photo.files[0];
  guarded("search-error", async () => {
    if (photo) {
      const found = await api("POST", `/api/v1/sightings/search${query(filters())}`, photo, photo.type || "application/octet-stream");
      showResults(found.hits.map((h) => card(h.sighting, h.similarity)), `${found.hits.length} most similar sighting(s)`);
    } else {
      const found = await api("GET", `/api/v1/sightings${query(filters())}`);
      showResults(found.sightings.map((s) => card(s)), `${found.total} sighting(s), newest first`);
    }
    await loadCharts();
  });
});

function openSighting(sighting) {
  shown = sighting;
  $("sighting-detail").textContent = JSON.stringify(sighting, null, 2);
  $("similar-button").hidden = !sighting.has_face;
  $("sighting-dialog").showModal();
}

$("close-dialog").addEventListener("click", () => $("sighting-dialog").close());
$("similar-button").addEventListener("click", () => {
  $("sighting-dialog").close();
  guarded("search-error", async () => {
    const found = await api("GET", `/api/v1/sightings/${shown.id}/similar${query(filters())}`);
    showResults(found.hits.map((h) => card(h.sighting, h.similarity)), `${found.hits.length} sighting(s) like ${shown.id}`);
  });
});

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}
const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

/// Stacked bars: one per hour, a colour per camera.
function drawHourly(stats) {
  const cameras = Object.keys(stats.per_camera);
  const totals = Array.from({ length: stats.hours }, (_, h) => cameras.reduce((s, c) => s + stats.per_camera[c][h], 0));
  const max = Math.max(1, ...totals);
  const width = 720, height = 200, bar = width / stats.hours;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 40}`, role: "img", "aria-label": "sightings per hour per camera" });
  for (let h = 0; h < stats.hours; h++) {
    let y = height;
    cameras.forEach((c, i) => {
      const n = stats.per_camera[c][h];
      if (!n) return;
      const barHeight = (n / max) * height;
      y -= barHeight;
      chart.append(svg("rect", { x: h * bar + 1, y, width: Math.max(1, bar - 2), height: barHeight, fill: COLOURS[i % COLOURS.length] },
        svg("title", {}, `${c}: ${n} at ${new Date(Date.parse(stats.from) + h * 3600e3).toLocaleString()}`)));
    });
    if (h % 3 === 0) {
      const label = new Date(Date.parse(stats.from) + h * 3600e3).getHours();
      chart.append(svg("text", { x: h * bar, y: height + 14, "font-size": 10 }, `${label}h`));
    }
  }
  chart.append(svg("text", { x: 0, y: 10, "font-size": 10 }, `max ${max}/h`));
  cameras.forEach((c, i) => chart.append(
    svg("rect", { x: i * 110, y: height + 24, width: 10, height: 10, fill: COLOURS[i % COLOURS.length] }),
    svg("text", { x: i * 110 + 14, y: height + 33, "font-size": 11 }, c)));
  $("hourly-chart").replaceChildren(chart);
  if (!cameras.length) $("hourly-chart").append(el("p", {}, "No sightings in the last 24 hours."));
}

function drawScores(stats) {
  const max = Math.max(1, ...stats.scores);
  const width = 400, height = 120, bar = width / 10;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 20}`, role: "img", "aria-label": "match scores" });
  stats.scores.forEach((n, i) => {
    const h = (n / max) * height;
    chart.append(svg("rect", { x: i * bar + 2, y: height - h, width: bar - 4, height: h, fill: "#16a34a" },
      svg("title", {}, `${n} match(es) scoring ${(i / 10).toFixed(1)}–${((i + 1) / 10).toFixed(1)}`)),
    svg("text", { x: i * bar + 4, y: height + 14, "font-size": 10 }, (i / 10).toFixed(1)));
  });
  $("score-chart").replaceChildren(chart);
}

// --- settings ---------------------------------------------------------------------------

const SECTIONS = { privacy: "Storage and retention (GDPR)", analysis: "Analysis", onvif: "ONVIF device" };

/// One setting: its label in words with the unit, the input, its help and where a refusal
/// is shown.
function settingField(field, value) {
  const id = `setting-${field.section}-${field.key}`;
  const describedBy = `${id}-help ${id}-error`;
  const help = el("small", { class: "help", id: `${id}-help` }, field.help);
  const error = el("span", { class: "field-error", id: `${id}-error`, dataset: { field: field.field } });
  const restart = field.restart ? el("span", { class: "badge restart" }, "applies at the next start") : "";
  if (field.kind === "switch") {
    const input = el("input", { type: "checkbox", id, name: field.field, checked: Boolean(value) });
    input.setAttribute("aria-describedby", describedBy);
    return el("div", { class: "field" }, el("label", { class: "check", htmlFor: id }, input, field.label, " ", restart), help, error);
  }
  const input = el("input", { id, name: field.field, type: field.kind === "number" ? "number" : "text", value: value ?? "" });
  if (field.kind === "number") {
    if (field.min != null) input.min = field.min;
    if (field.max != null) input.max = field.max;
    input.step = field.step ?? "any";
    input.required = true;
    input.inputMode = "decimal";
  }
  input.setAttribute("aria-describedby", describedBy);
  const unit = field.unit ? ` (${field.unit})` : "";
  return el("div", { class: "field" }, el("label", { htmlFor: id }, `${field.label}${unit} `, restart), input, help, error);
}

function rangeOf(field) {
  const unit = field.unit ? ` ${field.unit}` : "";
  if (field.min != null && field.max != null) return `from ${field.min} to ${field.max}${unit}`;
  if (field.min != null) return `${field.min}${unit} or more`;
  return "a number";
}

async function loadSettings() {
  const [settings, fields] = await Promise.all([api("GET", "/api/v1/settings"), api("GET", "/api/v1/settings/fields")]);
  const groups = [];
  for (const [section, title] of Object.entries(SECTIONS)) {
    if (!settings[section]) continue;
    const inputs = fields.filter((f) => f.section === section && f.key in settings[section])
      .map((f) => settingField(f, settings[section][f.key]));
    groups.push(el("fieldset", { class: "settings" }, el("legend", {}, title), ...inputs));
  }
  $("settings-fields").replaceChildren(...groups);
  settingsFields = fields;
}

let settingsFields = [];

function showFieldError(name, message) {
  const input = $("settings-form").querySelector(`[name="${CSS.escape(name)}"]`);
  const error = $("settings-form").querySelector(`.field-error[data-field="${CSS.escape(name)}"]`);
  if (!input || !error) return false;
  error.textContent = message;
  input.setAttribute("aria-invalid", "true");
  return true;
}

$("settings-form").addEventListener("submit", (e) => {
  e.preventDefault();
  for (const error of e.target.querySelectorAll(".field-error")) error.textContent = "";
  for (const input of e.target.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  $("settings-status").textContent = "";
  const changes = {};
  let first = null;
  for (const input of e.target.querySelectorAll("input[name]")) {
    const field = settingsFields.find((f) => f.field === input.name);
    if (input.type === "number" && !input.checkValidity()) {
      const message = input.validity.valueMissing || input.validity.badInput ? "enter a number" : `must be ${rangeOf(field)}`;
      showFieldError(input.name, message);
      first = first || input;
      continue;
    }
    const [section, key] = input.name.split(".");
    changes[section] = changes[section] || {};
    changes[section][key] = input.type === "checkbox" ? input.checked
      : input.type === "text" ? input.value : Number(input.value);
  }
  if (first) {
    $("settings-error").textContent = "Nothing saved: correct the fields marked.";
    first.focus();
    return;
  }
  guarded("settings-error", async () => {
    try {
      const now = await api("PUT", "/api/v1/settings", changes);
      await loadSettings();
      $("settings-status").textContent = now.restart_needed
        ? "Saved. The smallest face applies at the next start."
        : "Saved and applied.";
    } catch (err) {
      if (err.field && showFieldError(err.field, err.message.replace(/^`[^`]*`: /, ""))) {
        $("settings-form").querySelector(`[name="${CSS.escape(err.field)}"]`).focus();
        throw new Error("Nothing saved: correct the field marked.");
      }
      throw err;
    }
  });
});

$("certificate-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = e.target.elements;
  guarded("certificate-error", async () => {
    const info = await api("PUT", "/api/v1/system/certificate", { certificate: f.certificate.value, key: f.key.value });
    $("certificate-status").textContent = `Installed ${info.subject}, valid until ${info.not_after}; new connections use it.`;
    e.target.reset();
  });
});

const UPDATE_PHASES = {
  verifying: "being verified", refused: "refused, nothing written", writing: "being written",
  installed: "installed, tried at the next boot", succeeded: "succeeded", rolled_back: "rolled back: the new slot did not come up",
  interrupted: "interrupted while writing; the old slot runs on", failed: "failed while writing; the old slot runs on",
};

async function loadUpdate() {
  const status = await api("GET", "/api/v1/system/update");
  $("update-slot").textContent = status.running_slot || "not an A/B appliance image";
  $("update-version").textContent = status.running_version;
  const last = status.last;
  const progress = last && last.phase === "writing" && last.total
    ? ` ${Math.floor(last.written / 1048576)} of ${Math.ceil(last.total / 1048576)} MiB written.` : "";
  $("update-last").textContent = last
    ? `${last.version || "a bundle"} ${UPDATE_PHASES[last.phase] || last.phase} (${when(last.finished || last.started)}, by ${last.by}): ${last.message}.${progress}`
    : "none";
  $("update-last").dataset.phase = last ? last.phase : "";
  $("update-form").querySelector("button").disabled = !status.updates_possible;
  if (!status.updates_possible) $("update-form-status").textContent = "This installation takes no signed updates (no release key: not an appliance image).";
}

$("update-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const file = e.target.elements.bundle.files[0];
  const progress = $("update-progress");
  $("update-form-status").textContent = "";
  guarded("update-error", async () => {
    if (!file) throw new Error("pick an update bundle");
    progress.hidden = false;
    try {
      const manifest = await upload("/api/v1/system/update", file, (f) => { progress.value = f; }, "application/octet-stream");
      $("update-form-status").textContent = `Version ${manifest.version} verified; the appliance installs it and restarts.`;
      e.target.reset();
    } finally {
      progress.hidden = true;
    }
  });
});

async function loadSettingsPage() {
  await Promise.all([loadSettings(), loadUpdate()]);
}

// --- audit ------------------------------------------------------------------------------

async function loadAudit() {
  const f = $("audit-form").elements;
  const params = { from: localToIso(f.from.value), to: localToIso(f.to.value), user: f.user.value };
  $("audit-csv").href = `/api/v1/audit${query({ ...params, format: "csv" })}`;
  const records = await api("GET", `/api/v1/audit${query(params)}`);
  $("audit-rows").replaceChildren(...records.slice(-500).reverse().map((r) => el("tr", { dataset: { action: r.action } },
    el("td", {}, String(r.seq)), el("td", {}, when(r.time)), el("td", {}, r.user), el("td", {}, r.origin),
    el("td", {}, r.action), el("td", {}, r.target), el("td", { class: "detail" }, r.detail === null ? "" : JSON.stringify(r.detail)))));
}

$("audit-form").addEventListener("submit", (e) => { e.preventDefault(); loadAudit(); });

// --- users and tokens -------------------------------------------------------------------

async function loadUsers() {
  const admin = me.role === "admin";
  $("users-admin").hidden = !admin;
  if (admin) {
    const users = await api("GET", "/api/v1/users");
    $("user-rows").replaceChildren(...users.map((u) => row(u.name, u.role, u.must_change_password ? "yes" : "no",
      u.name === me.user ? "" : el("button", { type: "button", onclick: () => guarded("user-error", async () => {
        const sure = await confirmDestroy(`Delete the user ${u.name}?`,
          [`${u.name} can no longer log in, here or over ONVIF.`, "Their API tokens stop working."], "Delete user");
        if (!sure) return;
        await api("DELETE", `/api/v1/users/${encodeURIComponent(u.name)}`);
        await loadUsers();
      }) }, "Delete"))));
  }
  const tokens = await api("GET", "/api/v1/tokens");
  $("token-rows").replaceChildren(...tokens.map((t) => row(t.label, t.user, when(t.created),
    el("button", { type: "button", onclick: () => guarded("token-error", async () => {
      const sure = await confirmDestroy(`Revoke the token ${t.label}?`, ["Programs using it are refused from now on."], "Revoke token");
      if (!sure) return;
      await api("DELETE", `/api/v1/tokens/${t.id}`);
      await loadUsers();
    }) }, "Revoke"))));
}

$("user-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const spec = { role: f.role.value };
  if (f.password.value) spec.password = f.password.value;
  guarded("user-error", async () => {
    await api("PUT", `/api/v1/users/${encodeURIComponent(f.name.value)}`, spec);
    e.target.reset();
    await loadUsers();
  });
});

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded("token-error", async () => {
    const made = await api("POST", "/api/v1/tokens", { label: e.target.elements.label.value });
    $("token-secret").textContent = `Token (shown once): ${made.token}`;
    e.target.reset();
    await loadUsers();
  });
});

// --- recorded video ---------------------------------------------------------------------

let importTimer = null;

async function loadImports() {
  clearTimeout(importTimer);
  const jobs = await api("GET", "/api/v1/imports");
  $("import-rows").replaceChildren(...jobs.map((j) => {
    const active = ["queued", "running", "interrupted"].includes(j.status);
    const cancel = active
      ? el("button", { type: "button", onclick: () => guarded("import-error", async () => {
        await api("DELETE", `/api/v1/imports/${j.id}`);
        await loadImports();
      }) }, "Cancel")
      : "";
    return row(j.name, j.camera, when(j.start), j.error ? `${j.status}: ${j.error}` : j.status,
      j.percent == null ? "" : `${j.percent.toFixed(1)} %`, String(j.sightings),
      j.speed == null ? "" : `${j.speed.toFixed(1)}× real time`, cancel);
  }));
  // Progress while a job is under way and this page is shown.
  if (jobs.some((j) => j.status === "queued" || j.status === "running") && !$("imports-page").hidden) {
    importTimer = setTimeout(() => loadImports().catch((err) => console.error(err)), 2000);
  }
}

$("import-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const form = new FormData();
  form.append("camera", f.camera.value.trim());
  form.append("start", localToIso(f.start.value));
  const clip = f.clip.files[0];
  const progress = $("import-progress");
  guarded("import-error", async () => {
    if (!clip) throw new Error("pick a clip");
    form.append("clip", clip, clip.name);
    progress.hidden = false;
    progress.value = 0;
    $("import-status").textContent = `Uploading ${clip.name}…`;
    await upload("/api/v1/imports", form, (p) => { progress.value = p; });
    $("import-status").textContent = `${clip.name} uploaded; it is imported in the background.`;
    e.target.reset();
    await loadImports();
  }).finally(() => { progress.hidden = true; });
});

const LOADERS = {
  live: loadLive, cameras: loadCameras, watchlists: loadWatchlists, person: loadPerson, search: loadSearch,
  imports: loadImports, settings: loadSettingsPage, audit: loadAudit, users: loadUsers,
};

api("GET", "/api/v1/session").then(enter, () => showOnly("login"));
