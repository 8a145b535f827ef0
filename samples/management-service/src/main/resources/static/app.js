// The management page: devices from /api/devices, live numbers and charts from the /api/stats event stream,
// a form to create a device and a button to delete one; each mirror's replicas with their states and resync progress
// (refreshed every 2 s), buttons to reinstate or replace a FAILED replica; API errors (RFC 9457 problem bodies) are shown as
// they come. The page signs in through /login (a session cookie): every POST and DELETE carries the CSRF token that
// Spring Security left in the XSRF-TOKEN cookie, as X-XSRF-TOKEN; an expired session leads back to the login page.
// Everything is in this file: the page's Content-Security-Policy allows no inline script.
"use strict";

const HISTORY = 60;                      // seconds of chart history
const history = new Map();               // device id -> {t: [], r: [], w: [], p50: [], p99: []}
const cards = new Map();                 // device id -> card element
const MIRROR_REFRESH_MS = 2000;          // how often the mirrors' states are read again

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function showError(problem) {
  const box = document.getElementById("error");
  box.replaceChildren(el("b", {}, (problem.status ? problem.status + " " : "") + (problem.title || "Error")),
      document.createTextNode(problem.detail || ""));
  box.hidden = false;
}

function clearError() {
  document.getElementById("error").hidden = true;
}

function csrfToken() {
  const c = document.cookie.split("; ").find(x => x.startsWith("XSRF-TOKEN="));
  return c ? decodeURIComponent(c.substring("XSRF-TOKEN=".length)) : "";
}

async function api(method, path, body) {
  const init = { method, headers: { "Accept": "application/json, application/problem+json" } };
  if (method !== "GET") init.headers["X-XSRF-TOKEN"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) { window.location.assign("/login"); throw { status: 401, title: "Signed out", detail: "" }; }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (!res.ok) {
    throw (json && (json.detail || json.title)) ? json
        : { status: res.status, title: res.statusText, detail: text || "no detail" };
  }
  return json;
}

async function refresh() {
  try {
    const list = await api("GET", "/api/devices");
    const ids = new Set(list.map(d => d.id));
    for (const [id, card] of cards) {
      if (!ids.has(id)) { card.remove(); cards.delete(id); history.delete(id); }
    }
    for (const d of list) card(d);
    document.getElementById("empty").hidden = list.length > 0;
  } catch (p) {
    showError(p);
  }
}

function chart(label, legend) {
  const canvas = el("canvas", { width: 360, height: 120 });
  return { canvas, box: el("div", { class: "chart" }, el("span", { class: "legend" }, label, " ", ...legend), canvas) };
}

function card(d) {
  let c = cards.get(d.id);
  if (!c) {
    const iops = chart("IOPS", [el("span", { class: "r" }, "read"), el("span", { class: "w" }, "write")]);
    const lat = chart("latency ms", [el("span", { class: "p50" }, "p50"), el("span", { class: "p99" }, "p99")]);
    iops.canvas.className = "iops-chart";
    lat.canvas.className = "latency-chart";
    const del = el("button", { class: "delete" }, "Delete");
    del.addEventListener("click", async () => {
      clearError();
      del.disabled = true;
      try { await api("DELETE", "/api/devices/" + d.id); await refresh(); }
      catch (p) { showError(p); del.disabled = false; }
    });
    c = el("div", { class: "device", id: "device-" + d.id, "data-id": d.id },
        el("header", {}, el("h3", {}, ""), del),
        el("div", { class: "numbers" }, "waiting for statistics…"),
        el("div", { class: "mirrors" }),
        el("div", { class: "charts" }, iops.box, lat.box));
    c.iops = iops.canvas;
    c.latency = lat.canvas;
    cards.set(d.id, c);
    document.getElementById("devices").append(c);
  }
  c.querySelector("h3").textContent = `${d.path} — ${d.target}, ${fmtBytes(d.sizeBytes)}, ${d.queueCount} queue(s) × ${d.depth}, ${d.state}`;
  c.querySelector(".mirrors").replaceChildren(...(d.mirrors || []).map(m => mirror(d, m)));
  return c;
}

// One mirror of a device: a line on its health and a row per replica; a FAILED replica has Reinstate and Replace.
function mirror(d, m) {
  const query = d.mirrors.length > 1 ? "?mirror=" + m.index : "";
  const rows = m.replicas.map(r => {
    const cell = el("td", { class: "action" });
    if (r.state === "FAILED") {
      const b = el("button", { class: "reinstate" }, "Reinstate");
      b.addEventListener("click", async () => {
        clearError();
        b.disabled = true;
        try { await api("POST", `/api/devices/${d.id}/mirror/replicas/${r.slot}/reinstate${query}`); await refresh(); }
        catch (p) { showError(p); b.disabled = false; }
      });
      cell.append(b);
    }
    if (r.state === "FAILED" || r.state === "RESYNCING") {
      // A replacement is a target spec (a blank file, another disk): the mirror copies everything to it.
      const b = el("button", { class: "replace" }, "Replace…");
      b.addEventListener("click", async () => {
        clearError();
        const target = window.prompt(`Replace replica ${r.slot} (${r.target}) with the target spec (e.g. file:/srv/disks/new.img):`, "");
        if (!target) return;
        b.disabled = true;
        try { await api("POST", `/api/devices/${d.id}/mirror/replicas/${r.slot}/replace${query}`, { target }); await refresh(); }
        catch (p) { showError(p); b.disabled = false; }
      });
      cell.append(b);
    }
    const progress = r.resyncPercent === null ? "–" : fmt(r.resyncPercent, 1) + " %";
    return el("tr", { class: "replica " + r.state.toLowerCase(), "data-slot": r.slot, "data-state": r.state },
        el("td", {}, String(r.slot)), el("td", {}, r.target), el("td", { class: "replica-state" }, r.state),
        el("td", {}, String(r.dirtyRegions)), el("td", {}, progress), cell);
  });
  const summary = `mirror ${m.index}${m.mirrorId ? " " + m.mirrorId : ""}: `
      + (m.degraded ? "DEGRADED" : "every replica in sync")
      + ` · events ${m.events} · ${m.copiedRegions} region(s) copied by resyncs · ${m.regions} regions of ${fmtBytes(m.regionBytes)}`;
  return el("div", { class: "mirror" + (m.degraded ? " degraded" : ""), "data-index": m.index },
      el("div", { class: "mirror-summary" }, summary),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "slot"), el("th", {}, "replica"), el("th", {}, "state"),
          el("th", {}, "dirty regions"), el("th", {}, "in sync"), el("th", {}, ""))), el("tbody", {}, ...rows)));
}

function fmtBytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (Math.round(n * 10) / 10) + " " + u[i];
}

function fmt(n, digits) {
  return n === null || n === undefined ? "–" : Number(n).toFixed(digits);
}

function draw(canvas, series, colors) {
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 24;
  g.clearRect(0, 0, w, h);
  let max = 0;
  for (const s of series) for (const v of s) if (v !== null && v > max) max = v;
  max = max > 0 ? max * 1.15 : 1;
  g.strokeStyle = "#e3e6eb"; g.fillStyle = "#777"; g.font = "10px sans-serif"; g.lineWidth = 1;
  for (let i = 0; i <= 2; i++) {
    const y = pad / 2 + (h - pad) * i / 2;
    g.beginPath(); g.moveTo(pad + 16, y); g.lineTo(w - 4, y); g.stroke();
    g.fillText(String(Math.round(max * (2 - i) / 2 * 100) / 100), 2, y + 3);
  }
  series.forEach((s, k) => {
    // The second series dashed, so that equal series (a 50/50 mix) both show.
    g.strokeStyle = colors[k]; g.lineWidth = 2; g.setLineDash(k === 1 ? [6, 4] : []); g.beginPath();
    let started = false;
    s.forEach((v, i) => {
      if (v === null) { started = false; return; }
      const x = pad + 16 + (w - pad - 20) * (i + HISTORY - s.length) / (HISTORY - 1);
      const y = pad / 2 + (h - pad) * (1 - v / max);
      if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
    });
    g.stroke();
  });
}

function onFrame(frame) {
  const seen = new Set();
  for (const s of frame.devices) {
    seen.add(s.id);
    const c = cards.get(s.id);
    if (!c) { refresh(); continue; }
    let h = history.get(s.id);
    if (!h) { h = { r: [], w: [], p50: [], p99: [] }; history.set(s.id, h); }
    h.r.push(s.readIops); h.w.push(s.writeIops); h.p50.push(s.p50Millis); h.p99.push(s.p99Millis);
    for (const k of Object.keys(h)) if (h[k].length > HISTORY) h[k].shift();
    c.dataset.samples = String((Number(c.dataset.samples) || 0) + 1);
    c.dataset.reads = String(s.reads);
    c.dataset.writes = String(s.writes);
    c.querySelector(".numbers").textContent =
        `read ${fmt(s.readIops, 0)} IOPS ${fmt(s.readMBps, 1)} MB/s · write ${fmt(s.writeIops, 0)} IOPS ${fmt(s.writeMBps, 1)} MB/s`
        + ` · in flight ${s.inFlight} · p50 ${fmt(s.p50Millis, 3)} ms · p99 ${fmt(s.p99Millis, 3)} ms`
        + ` · totals: ${s.reads} reads, ${s.writes} writes, ${s.errors} errors`;
    draw(c.iops, [h.r, h.w], ["#2f6fdb", "#d9480f"]);
    draw(c.latency, [h.p50, h.p99], ["#2b8a3e", "#862e9c"]);
  }
  for (const id of cards.keys()) if (!seen.has(id)) { refresh(); break; }
}

function connect() {
  const state = document.getElementById("stream-state");
  const es = new EventSource("/api/stats");
  es.addEventListener("stats", e => {
    state.textContent = "live"; state.className = "state live";
    onFrame(JSON.parse(e.data));
  });
  es.onerror = () => { state.textContent = "reconnecting…"; state.className = "state"; };
}

document.getElementById("create-form").addEventListener("submit", async e => {
  e.preventDefault();
  clearError();
  const body = { target: document.getElementById("target").value.trim() };
  const size = document.getElementById("size").value.trim();
  const queues = document.getElementById("queues").value.trim();
  if (size) body.size = size;
  if (queues) body.queues = Number(queues);
  const button = document.getElementById("create");
  button.disabled = true;
  try { await api("POST", "/api/devices", body); await refresh(); }
  catch (p) { showError(p); }
  finally { button.disabled = false; }
});

document.getElementById("sign-out").addEventListener("click", async () => {
  await fetch("/logout", { method: "POST", headers: { "X-XSRF-TOKEN": csrfToken() } });
  window.location.assign("/login?logout");
});

refresh();
connect();
// The statistics stream says nothing of mirrors: read the devices again while any has one.
setInterval(() => {
  for (const c of cards.values()) if (c.querySelector(".mirror")) { refresh(); return; }
}, MIRROR_REFRESH_MS);
