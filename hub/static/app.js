// The status page: polls GET /status once a second and draws the pipeline graph
// (sources -> topics -> sinks, inline SVG), two line charts (sink lag, throughput) on
// canvases, and a table. No libraries and no network beyond this hub: it works offline.
"use strict";

const POLL_MS = 1000;
const HISTORY = 180; // points kept per series: three minutes at one poll a second
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2",
                "#4d7c0f", "#be185d"];

const history = { lag: new Map(), rate: new Map() }; // name -> [[time, value], ...]
let token = sessionStorage.getItem("changehub.token");

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function poll() {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let answer;
  try {
    answer = await fetch("/status", { headers });
  } catch (e) {
    document.getElementById("updated").textContent = "hub not answering: " + e;
    return;
  }
  if (answer.status === 401) {
    askToken(token ? "that token was refused" : "");
    return;
  }
  if (!answer.ok) {
    document.getElementById("updated").textContent = "hub answered " + answer.status;
    return;
  }
  const status = await answer.json();
  render(status);
}

function askToken(message) {
  const form = document.getElementById("login");
  form.hidden = false;
  document.getElementById("main").hidden = true;
  document.getElementById("login-error").textContent = message;
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value;
  sessionStorage.setItem("changehub.token", token);
  document.getElementById("login").hidden = true;
  document.getElementById("main").hidden = false;
  poll();
});

function render(status) {
  document.getElementById("pipeline").textContent = status.pipeline;
  const when = new Date(status.time * 1000).toLocaleTimeString();
  const mib = (status.memory_bytes / 1048576).toFixed(0);
  document.getElementById("updated").textContent = `updated ${when} · ${mib} MiB resident`;
  record(status);
  drawProblems(status.connectors);
  drawGraph(status);
  drawChart("lag-chart", history.lag, (v) => fmt(v));
  drawChart("rate-chart", history.rate, (v) => fmt(v));
  drawTable(status.connectors);
}

function record(status) {
  for (const c of status.connectors) {
    if (c.kind === "sink" && c.lag) push(history.lag, c.name, status.time, c.lag.records);
    push(history.rate, c.name, status.time, c.records_per_second);
  }
}

function push(map, name, t, v) {
  if (!map.has(name)) map.set(name, []);
  const series = map.get(name);
  series.push([t, v]);
  if (series.length > HISTORY) series.shift();
}

function fmt(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e4) return (v / 1e3).toFixed(0) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function drawProblems(connectors) {
  const box = document.getElementById("problems");
  box.replaceChildren();
  const bad = connectors.filter((c) => c.state === "FAILED" || c.state === "RETRYING");
  box.hidden = bad.length === 0;
  if (!bad.length) return;
  box.append(el("h2", {}, "Needs attention"));
  for (const c of bad) {
    box.append(el("div", { class: "problem", "data-name": c.name },
                  `${c.kind} ${c.name} is ${c.state}`));
    box.append(el("pre", { class: "bad" }, c.error || "no error text"));
  }
}

function drawGraph(status) {
  const svg = document.getElementById("graph");
  const sources = status.connectors.filter((c) => c.kind === "source");
  const sinks = status.connectors.filter((c) => c.kind === "sink");
  const topics = status.topics.map((t) => ({ name: t.name, kind: "topic", state: "topic",
                                             records: t.records }));
  const columns = [sources, topics, sinks];
  const width = svg.clientWidth || 900;
  const boxW = Math.min(240, width / 3 - 40);
  const boxH = 44;
  const gap = 14;
  const rows = Math.max(1, ...columns.map((c) => c.length));
  const height = Math.max(120, rows * (boxH + gap) + gap);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = height + "px";
  svg.replaceChildren();
  const at = new Map();
  columns.forEach((items, col) => {
    const x = 20 + col * ((width - boxW - 40) / 2);
    const top = (height - items.length * (boxH + gap) + gap) / 2;
    items.forEach((item, i) => at.set(item.name, { x, y: top + i * (boxH + gap), item }));
  });
  for (const e of status.edges) {
    const a = at.get(e.source), b = at.get(e.target);
    if (!a || !b) continue;
    const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x, y2 = b.y + boxH / 2;
    const mid = (x1 + x2) / 2;
    svg.append(el("svg:path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
                                "data-from": e.source, "data-to": e.target }));
  }
  for (const { x, y, item } of at.values()) {
    const kind = item.kind;
    const g = el("svg:g", { class: `node ${kind} ${item.state}`, "data-name": item.name,
                            "data-kind": kind, "data-state": item.state,
                            transform: `translate(${x},${y})` });
    g.append(el("svg:rect", { width: boxW, height: boxH }));
    g.append(el("svg:text", { x: 10, y: 18 }, fit(item.name, boxW - 16, 7)));
    let sub;
    if (kind === "topic") sub = `topic · ${fmt(item.records)} records`;
    else if (kind === "sink") sub = `${item.type} · ${item.state}` +
      (item.lag ? ` · lag ${fmt(item.lag.records)}` : "");
    else sub = `${item.type} · ${item.state}` + (item.progress ? " · " + progress(item.progress) : "");
    g.append(el("svg:text", { x: 10, y: 35, class: "sub" }, fit(sub, boxW - 16, 6.2)));
    g.append(el("svg:title", {}, item.error ? `${item.name}: ${item.error}` : `${item.name} · ${sub}`));
    svg.append(g);
  }
}

// Text cut to the node's width (about `perChar` pixels a character), so it stays in its box;
// the whole text is in the node's tooltip and in the table below.
function fit(text, width, perChar) {
  const most = Math.max(4, Math.floor(width / perChar));
  return text.length > most ? text.slice(0, most - 1) + "…" : text;
}

function progress(p) {
  return p.total ? `${p.what} ${Math.round((100 * p.done) / p.total)}%` : `${p.what} ${fmt(p.done)}`;
}

function drawChart(id, series, label) {
  const canvas = document.getElementById(id);
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 400, h = canvas.clientHeight || 180;
  canvas.width = w * ratio;
  canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 48, r: 8, t: 8, b: 20 };
  let t0 = Infinity, t1 = -Infinity, top = 1;
  for (const points of series.values()) {
    for (const [t, v] of points) { t0 = Math.min(t0, t); t1 = Math.max(t1, t); top = Math.max(top, v); }
  }
  if (t1 <= t0) t1 = t0 + 1;
  const X = (t) => pad.l + ((t - t0) / (t1 - t0)) * (w - pad.l - pad.r);
  const Y = (v) => h - pad.b - (v / top) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#d6d9de";
  ctx.fillStyle = "#6b7280";
  ctx.font = "11px system-ui, sans-serif";
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4, y = Y(v);
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.fillText(label(v), 4, y + 4);
  }
  ctx.fillText(`${Math.round(t1 - t0)}s`, w - pad.r - 24, h - 4);
  let i = 0, legendX = pad.l + 4;
  for (const [name, points] of series) {
    const color = COLORS[i++ % COLORS.length];
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach(([t, v], k) => (k ? ctx.lineTo(X(t), Y(v)) : ctx.moveTo(X(t), Y(v))));
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.fillText(name, legendX, pad.t + 10);
    legendX += ctx.measureText(name).width + 12;
  }
  ctx.lineWidth = 1;
}

function drawTable(connectors) {
  const body = document.querySelector("#connectors tbody");
  body.replaceChildren();
  for (const c of connectors) {
    const row = el("tr", { "data-name": c.name });
    const cells = [
      [c.name], [c.kind], [c.type], [c.state, `state ${c.state}`],
      [fmt(c.records), "num"], [fmt(c.records_per_second), "num"],
      [c.lag ? `${fmt(c.lag.records)} / ${c.lag.seconds.toFixed(1)}s` : "", "num"],
      [String(c.retries), "num"], [String(c.dead_letters), "num"],
      [c.progress ? progress(c.progress) : ""],
    ];
    for (const [text, cls] of cells) row.append(el("td", cls ? { class: cls } : {}, text));
    if (c.error) row.title = c.error;
    body.append(row);
  }
}

poll();
setInterval(poll, POLL_MS);
