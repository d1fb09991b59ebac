// Vigil's browser UI: log in, change the first password, then the live page (camera tiles,
// alerts with thumbnails as they arrive). Plain DOM, no framework, no build step.
"use strict";

let csrf = "";
const $ = (id) => document.getElementById(id);

function show(page) {
  for (const p of ["login-page", "password-page", "live-page"]) $(p).hidden = p !== page;
  $("logout").hidden = page === "login-page";
}

async function api(method, path, body) {
  const headers = { "X-CSRF-Token": csrf };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((data && data.error) || response.statusText);
  return data;
}

function enter(me) {
  csrf = me.csrf_token;
  $("who").textContent = `${me.user} (${me.role})`;
  if (me.must_change_password) { show("password-page"); return; }
  show("live-page");
  live();
}

function text(tag, value, cls) {
  const e = document.createElement(tag);
  e.textContent = value;
  if (cls) e.className = cls;
  return e;
}

async function live() {
  const cameras = await api("GET", "/api/v1/cameras");
  const tiles = $("cameras");
  tiles.replaceChildren();
  for (const c of cameras) {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.camera = c.id;
    tile.append(text("strong", c.name || c.id), text("div", c.state, `state state-${c.state}`));
    tiles.append(tile);
  }
  const events = new EventSource("/api/v1/events");
  const alert = (e, kind) => {
    const data = JSON.parse(e.data);
    const item = document.createElement("li");
    item.className = kind;
    const img = document.createElement("img");
    img.alt = "best shot";
    img.src = `data:image/jpeg;base64,${data.thumbnail_jpeg_base64}`;
    const label = kind === "matched" ? `${data.person} (${data.watchlist}, ${data.score.toFixed(2)})` : "Unregistered face";
    item.append(img, text("span", `${new Date(data.time).toLocaleTimeString()} ${data.camera}: ${label}`));
    $("alerts").prepend(item);
  };
  events.addEventListener("FaceMatched", (e) => alert(e, "matched"));
  events.addEventListener("UnregisteredFace", (e) => alert(e, "unregistered"));
  events.addEventListener("CameraStateChanged", (e) => {
    const data = JSON.parse(e.data);
    const tile = tiles.querySelector(`[data-camera="${CSS.escape(data.camera)}"] .state`);
    if (tile) { tile.textContent = data.state; tile.className = `state state-${data.state}`; }
  });
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  try {
    enter(await api("POST", "/api/v1/session", { user: form.get("user"), password: form.get("password") }));
    $("login-error").textContent = "";
  } catch (err) { $("login-error").textContent = err.message; }
});

$("password-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  try {
    await api("POST", "/api/v1/session/password", { current: form.get("current"), new: form.get("new") });
    enter(await api("GET", "/api/v1/session"));
  } catch (err) { $("password-error").textContent = err.message; }
});

$("logout").addEventListener("click", async () => {
  try { await api("DELETE", "/api/v1/session"); } finally { show("login-page"); }
});

api("GET", "/api/v1/session").then(enter, () => show("login-page"));
