// Vigil's browser UI. Plain DOM, no framework, no build step: every page reads and writes
// through the REST API (/api/v1, documented at /api/v1/openapi.json) with the session's
// CSRF token; nothing here holds state the server does not.
"use strict";

let me = null;
let csrf = "";
let events = null;
let snapshotTimer = null;
const $ = (id) => document.getElementById(id);
const PAGES = ["live", "cameras", "watchlists", "search", "imports", "settings", "audit", "users"];
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
  if (!response.ok) throw new Error((data && data.error) || response.statusText);
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
  let page = location.hash.slice(1) || "live";
  const link = $("nav").querySelector(`a[data-page="${page}"]`);
  if (!link || link.hidden) page = "live";
  for (const a of $("nav").querySelectorAll("a")) a.classList.toggle("current", a.dataset.page === page);
  showOnly(page);
  if (page !== "live" && snapshotTimer) { clearInterval(snapshotTimer); snapshotTimer = null; }
  LOADERS[page]().catch((err) => console.error(err));
}

window.addEventListener("hashchange", route);

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

async function loadLive() {
  const cameras = await api("GET", "/api/v1/cameras");
  const tiles = $("live-cameras");
  tiles.replaceChildren(...cameras.map((c) => el("div", { class: "tile", dataset: { camera: c.id } },
    el("strong", {}, c.name || c.id),
    el("div", { class: `state state-${c.state}` }, c.state + (c.reason ? `: ${c.reason}` : "")),
    el("img", { class: "snapshot", alt: `latest frame of ${c.id}` }))));
  const refresh = () => {
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
  events = new EventSource("/api/v1/events");
  const alert = (e, kind) => {
    const data = JSON.parse(e.data);
    const label = kind === "matched"
      ? `${data.person} (${data.watchlist}, ${data.score.toFixed(2)})${data.upgrade ? " — better shot" : ""}`
      : "Unregistered face";
    $("alerts").prepend(el("li", { class: `alert ${kind}`, dataset: { person: data.person || "", camera: data.camera } },
      el("img", { alt: "best shot", src: `data:image/jpeg;base64,${data.thumbnail_jpeg_base64}` }),
      el("span", {}, `${new Date(data.time).toLocaleTimeString()} ${data.camera}: ${label}`)));
    while ($("alerts").children.length > 200) $("alerts").lastChild.remove();
  };
  events.addEventListener("FaceMatched", (e) => alert(e, "matched"));
  events.addEventListener("UnregisteredFace", (e) => alert(e, "unregistered"));
  events.addEventListener("CameraStateChanged", (e) => {
    const data = JSON.parse(e.data);
    const state = tiles.querySelector(`[data-camera="${CSS.escape(data.camera)}"] .state`);
    if (state) { state.textContent = data.state + (data.reason ? `: ${data.reason}` : ""); state.className = `state state-${data.state}`; }
    else loadLive();
  });
}

// --- cameras --------------------------------------------------------------------------

async function loadCameras() {
  const cameras = await api("GET", "/api/v1/cameras");
  $("camera-rows").replaceChildren(...cameras.map((c) => {
    const actions = c.source === "api"
      ? el("span", {}, el("button", { onclick: () => editCamera(c) }, "Edit"), " ",
          el("button", { onclick: () => guarded("camera-error", async () => {
            if (!confirm(`Remove camera ${c.id}?`)) return;
            await api("DELETE", `/api/v1/cameras/${encodeURIComponent(c.id)}`);
            await loadCameras();
          }) }, "Remove"))
      : "configuration file";
    return row(c.id, c.name, c.url, c.mode, String(c.fps),
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

async function loadWatchlists() {
  const lists = await api("GET", "/api/v1/watchlists");
  $("watchlist-rows").replaceChildren(...lists.map((l) => row(
    el("a", { href: "#watchlists", onclick: (e) => { e.preventDefault(); openList(l); } }, l.name),
    String(l.persons), l.threshold.toFixed(2), l.active ? "yes" : "no",
    el("button", { onclick: () => guarded("watchlist-error", async () => {
      if (!confirm(`Delete watchlist ${l.name}, its persons and their sightings?`)) return;
      await api("DELETE", `/api/v1/watchlists/${l.id}`);
      if (currentList && currentList.id === l.id) { currentList = null; $("watchlist-detail").hidden = true; }
      await loadWatchlists();
    }) }, "Delete"))));
  if (currentList) {
    const fresh = lists.find((l) => l.id === currentList.id);
    if (fresh) await openList(fresh);
  }
}

async function openList(list) {
  currentList = list;
  $("watchlist-detail").hidden = false;
  $("watchlist-title").textContent = `${list.name}: ${list.persons} person(s)`;
  const persons = await api("GET", `/api/v1/watchlists/${list.id}/persons`);
  $("person-rows").replaceChildren(...persons.map((p) => el("tr", { dataset: { person: p.name } },
    el("td", {}, p.name), el("td", {}, String(p.photos)), el("td", {}, when(p.created)),
    el("td", {}, p.valid_until ? when(p.valid_until) : "for ever"),
    el("td", {}, el("button", { onclick: () => guarded("enrol-error", async () => {
      const name = prompt("Name", p.name);
      if (name === null) return;
      const until = prompt("Matched until (YYYY-MM-DD; empty: for ever)", p.valid_until ? p.valid_until.slice(0, 10) : "");
      if (until === null) return;
      await api("PATCH", `/api/v1/persons/${p.id}`,
        { name, valid_until: until ? new Date(`${until}T23:59:59`).toISOString() : null });
      await loadWatchlists();
    }) }, "Edit"), " ", el("button", { onclick: () => guarded("enrol-error", async () => {
      if (!confirm(`Delete ${p.name} with their photos and every sighting of them?`)) return;
      const removed = await api("DELETE", `/api/v1/persons/${p.id}`);
      $("person-status").textContent =
        `Deleted ${removed.person}: ${removed.enrolments} enrolled photo(s), ${removed.sightings} sighting(s), ${removed.faces} stored face(s).`;
      await loadWatchlists();
    }) }, "Delete")))));
}

$("watchlist-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = e.target.elements;
  guarded("watchlist-error", async () => {
    await api("POST", "/api/v1/watchlists", { name: f.name.value, threshold: Number(f.threshold.value) });
    e.target.reset();
    await loadWatchlists();
  });
});

/// Sends the form with upload progress (fetch has none), resolving with the JSON answer.
function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    request.setRequestHeader("X-CSRF-Token", csrf);
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

async function loadSearch() {
  const cameras = await api("GET", "/api/v1/cameras");
  $("search-cameras").replaceChildren(...cameras.map((c) =>
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "camera", value: c.id }), c.name || c.id)));
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

function card(sighting, similarity) {
  const o = sighting.outcome;
  const who = o.kind === "matched" ? `${o.person} (${o.score.toFixed(2)})` : "unregistered";
  return el("figure", { class: "result", dataset: { sighting: sighting.id }, onclick: () => openSighting(sighting) },
    sighting.has_face ? el("img", { alt: "best shot", src: `/api/v1/sightings/${sighting.id}/thumbnail` }) : el("div", { class: "noface" }, "no face kept"),
    el("figcaption", {}, `${when(sighting.start)} · ${sighting.camera} · ${who}` + (similarity !== undefined ? ` · similarity ${similarity.toFixed(2)}` : "")));
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

async function loadSettings() {
  const settings = await api("GET", "/api/v1/settings");
  const fields = [];
  const titles = { privacy: "Storage and retention", analysis: "Analysis", onvif: "ONVIF" };
  for (const section of Object.keys(titles)) {
    if (!settings[section]) continue;
    fields.push(el("h3", {}, titles[section]));
    for (const [key, value] of Object.entries(settings[section])) {
      if (typeof value === "object" && value !== null) continue;
      const name = `${section}.${key}`;
      const label = key.replaceAll("_", " ");
      fields.push(typeof value === "boolean"
        ? el("label", { class: "check" }, el("input", { type: "checkbox", name, checked: value }), label)
        : typeof value === "string"
          ? el("label", {}, label, el("input", { type: "text", name, value }))
          : el("label", {}, label, el("input", { type: "number", step: "any", name, value })));
    }
  }
  $("settings-fields").replaceChildren(...fields);
}

$("settings-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const changes = {};
  for (const input of e.target.querySelectorAll("input[name]")) {
    const [section, key] = input.name.split(".");
    changes[section] = changes[section] || {};
    changes[section][key] = input.type === "checkbox" ? input.checked
      : input.type === "text" ? input.value : Number(input.value);
  }
  guarded("settings-error", async () => {
    const now = await api("PUT", "/api/v1/settings", changes);
    $("settings-status").textContent = now.restart_needed
      ? "Saved. The smallest face takes effect at the next start."
      : "Saved and applied.";
    await loadSettings();
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
      u.name === me.user ? "" : el("button", { onclick: () => guarded("user-error", async () => {
        if (!confirm(`Delete user ${u.name}?`)) return;
        await api("DELETE", `/api/v1/users/${encodeURIComponent(u.name)}`);
        await loadUsers();
      }) }, "Delete"))));
  }
  const tokens = await api("GET", "/api/v1/tokens");
  $("token-rows").replaceChildren(...tokens.map((t) => row(t.label, t.user, when(t.created),
    el("button", { onclick: () => guarded("token-error", async () => {
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
      ? el("button", { onclick: () => guarded("import-error", async () => {
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
  live: loadLive, cameras: loadCameras, watchlists: loadWatchlists, search: loadSearch, imports: loadImports,
  settings: loadSettings, audit: loadAudit, users: loadUsers,
};

api("GET", "/api/v1/session").then(enter, () => showOnly("login"));
