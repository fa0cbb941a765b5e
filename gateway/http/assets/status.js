// The status page: reads api/status from the gateway that served it and draws
// it. DOM built with textContent only (device names and topics come from the
// network); the chart is inline SVG drawn here.
"use strict";

const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";  // the SVG namespace name, not a URL that is fetched

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function age(seconds) {
  if (seconds === undefined || seconds === null) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function when(unixMs, nowMs) {
  return unixMs ? age((nowMs - unixMs) / 1000) + " ago" : "never";
}

function fillBody(table, rows) {
  const body = table.tBodies[0];
  if (rows.length === 0) {
    const td = el("td", "none", "empty");
    td.colSpan = table.tHead.rows[0].cells.length;
    rows = [row([td])];
  }
  body.replaceChildren(...rows);
}

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  for (const c of cells) {
    const td = c instanceof Node ? c : el("td", c[0], c[1]);
    if (c instanceof Array && c[2]) td.dataset.field = c[2];
    tr.appendChild(td);
  }
  return tr;
}

function drawChart(rate) {
  const W = 960, H = 220, L = 56, R = 10, T = 10, B = 26;
  const points = rate.points;  // [[slot start unix s, readings per second], ...], oldest first
  const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", id: "rate-chart",
                           "aria-label": "readings stored per second over the last hour"});
  const max = Math.max(1, ...points.map(p => p[1]));
  const first = points.length ? points[0][0] : 0;
  const span = Math.max(1, (points.length ? points[points.length - 1][0] : 1) - first + rate.slot_seconds);
  const x = t => L + (W - L - R) * (t - first) / span;
  const y = v => T + (H - T - B) * (1 - v / max);
  root.appendChild(svg("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B}));
  root.appendChild(svg("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}));
  const label = (text, attrs) => { const t = svg("text", attrs); t.textContent = text; root.appendChild(t); };
  label(max.toFixed(max < 10 ? 1 : 0) + "/s", {x: L - 6, y: T + 10, "text-anchor": "end"});
  label("0", {x: L - 6, y: H - B, "text-anchor": "end"});
  label("-60 min", {x: L, y: H - 8});
  label("-30 min", {x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle"});
  label("now", {x: W - R, y: H - 8, "text-anchor": "end"});
  if (points.length) {
    const line = points.map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    const area = `${x(first).toFixed(1)},${y(0)} ${line} ${x(points[points.length - 1][0]).toFixed(1)},${y(0)}`;
    root.appendChild(svg("polygon", {class: "area", points: area}));
    root.appendChild(svg("polyline", {class: "line", points: line, "data-points": points.length}));
  }
  document.getElementById("chart").replaceChildren(root);
}

function render(s) {
  const now = s.now_unix_ms;
  document.getElementById("version").textContent = "version " + s.version;
  const badge = document.getElementById("health");
  badge.textContent = s.healthy ? "healthy" : "unhealthy";
  badge.className = "badge " + (s.healthy ? "ok" : "unhealthy");
  document.getElementById("updated").textContent = "updated " + new Date(now).toISOString();
  document.getElementById("checks").replaceChildren(...s.checks.map(c => {
    const li = el("li", `${c.name}: ${c.detail}`, c.ok ? "passing" : "failing");
    li.dataset.check = c.name;
    return li;
  }));

  drawChart(s.rate);
  const t = s.totals;
  document.getElementById("totals").textContent =
      `received ${t.received} · stored ${t.stored} · duplicates ${t.duplicates} · dead letters ${t.dead_letters}` +
      ` · commits ${t.commits} · queue ${t.queue_depth}/${t.queue_capacity}`;

  document.getElementById("devices-total").textContent =
      s.devices.length < s.devices_total ? `(${s.devices.length} of ${s.devices_total} shown)` : `(${s.devices_total})`;
  fillBody(document.getElementById("devices"), s.devices.map(d => {
    const state = d.online === true ? "online" : d.online === false ? "offline" : "unknown";
    return row([
      [d.device, "", "device"],
      (() => { const td = el("td"); td.dataset.field = "state"; td.appendChild(el("span", state, "state " + state)); return td; })(),
      [d.firmware, "", "firmware"],
      [d.incarnation, "", "incarnation"],
      [d.readings, "num", "readings"],
      [d.watermark, "num", "watermark"],
      [when(d.last_seen_unix_ms, now), "", "last-seen"],
      [d.spool_depth === undefined ? "" : d.spool_depth, "num", "backlog"],
      [age(d.oldest_unacked_age_s), "", "oldest-unacked"],
      [d.dropped === undefined ? "" : d.dropped, "num", "dropped"],
      [d.reconnects === undefined ? "" : d.reconnects, "num", "reconnects"],
    ], {"data-device": d.device});
  }));

  document.getElementById("upstreams-section").hidden = s.upstreams.length === 0;
  fillBody(document.getElementById("upstreams"), s.upstreams.map(u => row([
    [u.name, "", "upstream"], [u.connected ? "connected" : "disconnected", "", "state"],
    [u.lag_rows, "num", "lag-rows"], [age(u.lag_seconds), "", "lag-time"], [u.forwarded, "num", "forwarded"],
  ], {"data-upstream": u.name})));

  fillBody(document.getElementById("dead-letters-by-error"),
           Object.entries(s.dead_letters.by_error).map(([error, n]) => row([[error, "", "error"], [n, "num", "count"]],
                                                                            {"data-error": error})));
  fillBody(document.getElementById("dead-letters"), s.dead_letters.recent.map(d => row([
    [d.id, "", "id"], [new Date(d.received_unix_ms).toISOString(), "", "received"], [d.topic, "", "topic"],
    [d.error, "", "error"], [d.bytes, "num", "bytes"],
  ])));
  document.body.dataset.loaded = "true";
}

async function refresh() {
  try {
    const response = await fetch("api/status", {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
  } catch (e) {
    const badge = document.getElementById("health");
    badge.textContent = "gateway unreachable (" + e.message + ")";
    badge.className = "badge unhealthy";
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
