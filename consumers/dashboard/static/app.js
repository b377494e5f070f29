// The dashboard page: state pushed by the server over /ws, drawn as SVG.
"use strict";

const METHOD_COLOURS = {
  "rss-ml": "#1f77b4", "onnx": "#d62728", "tdoa": "#2ca02c", "hybrid": "#9467bd",
  "rss-ml+track": "#17becf", "onnx+track": "#ff7f0e", "tdoa+track": "#8c8c00", "hybrid+track": "#e377c2",
};
const STATE_COLOURS = {
  online: "#16a34a", connecting: "#f59e0b", stalled: "#ea580c", offline: "#dc2626",
  error: "#dc2626", unknown: "#9ca3af",
};
const MAX_FIXES = 3000, MAX_TRUTH = 3000, TRAIL_NS = 120e9, MAX_POINTS = 600, MAX_ROWS = 120;

const S = {
  config: {}, receivers: new Map(), fixes: [], truth: [], channels: [], pipeline: null,
  selected: null, points: [], channel: "", hidden: new Set(), live: true, cursorNs: 0,
  playing: null, fitted: false, view: new HMap.View(), ws: null, psd: null,
  byId: new Map(), past: null, pastLoading: false, rows: [], // a period fetched from /api/history (the store) for replay
};
// event published -> drawn, ms, measured in this browser (read by the benchmark and tests)
window.heimdallDrawLatencyMs = [];
window.heimdallMessages = 0;

const $ = id => document.getElementById(id);
const esc = HMap.esc;
const colour = m => METHOD_COLOURS[m] || "#6b7280";

// ---------------------------------------------------------------- messages
function onMessage(msg) {
  window.heimdallMessages++;
  if (msg.type === "config") { S.config = msg; return; }
  if (msg.type === "measurements") { onPoints(msg); return; }
  if (msg.type === "snapshot") {
    S.receivers.clear(); S.fixes = []; S.truth = []; S.byId.clear();
  }
  for (const r of msg.receivers || []) S.receivers.set(r.id, r);
  const fresh = [];
  for (const f of msg.fixes || []) {  // a fix sent again (its truth came late) replaces itself
    const old = S.byId.get(f.id);
    if (old) { Object.assign(old, f); continue; }
    S.fixes.push(f); S.byId.set(f.id, f);
    if (msg.type === "update") fresh.push(f);
  }
  if (S.fixes.length > MAX_FIXES) {
    for (const f of S.fixes.splice(0, S.fixes.length - MAX_FIXES)) S.byId.delete(f.id);
  }
  S.truth.push(...(msg.truth || []));
  if (S.truth.length > MAX_TRUTH) S.truth.splice(0, S.truth.length - MAX_TRUTH);
  if (msg.channels) setChannels(msg.channels);
  if (msg.pipeline) S.pipeline = msg.pipeline;
  schedule(fresh);
}

function onPoints(msg) {
  if (msg.receiver_id !== S.selected) return;
  if (msg.reset) S.points = [];
  if (msg.psd) S.psd = msg.psd;
  if (msg.reset) S.rows = [];
  S.rows.push(...(msg.waterfall || []));
  if (S.rows.length > MAX_ROWS) S.rows.splice(0, S.rows.length - MAX_ROWS);
  S.points.push(...msg.points);
  if (S.points.length > MAX_POINTS) S.points.splice(0, S.points.length - MAX_POINTS);
  if (msg.receiver) S.receivers.set(msg.receiver_id, msg.receiver);
  drawReceiverPanel();
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = S.ws = new WebSocket(`${proto}//${location.host}/ws`);
  ws.onopen = () => {
    setStatus("live", "ok");
    if (S.selected) ws.send(JSON.stringify({ select: S.selected }));
  };
  ws.onmessage = ev => onMessage(JSON.parse(ev.data));
  ws.onclose = () => { setStatus("reconnecting…", "bad"); setTimeout(connect, 1000); };
}
function setStatus(text, cls) { const el = $("status"); el.textContent = text; el.className = `status ${cls}`; }

// ---------------------------------------------------------------- drawing
let pending = null;
function schedule(fresh) {
  if (pending === null) { pending = []; requestAnimationFrame(() => { const f = pending; pending = null; render(f); }); }
  if (fresh) pending.push(...fresh);
}

function visibleFix(f) {
  return (!S.channel || f.channel_id === S.channel) && !S.hidden.has(f.method) && f.lat !== null;
}

function render(fresh = []) {
  const svg = $("map"), box = svg.getBoundingClientRect();
  const v = S.view;
  v.w = box.width || 800; v.h = box.height || 600;
  if (!S.fitted) fitView();
  const newest = S.fixes.length ? S.fixes[S.fixes.length - 1].t_ns : 0;
  const tEnd = S.live ? Infinity : S.cursorNs;
  const tStart = (S.live ? newest : S.cursorNs) - TRAIL_NS;
  const pool = S.live || !S.past ? S.fixes : mergeById(S.past.fixes, S.fixes);
  const truthPool = S.live || !S.past ? S.truth : S.past.truth.concat(S.truth);
  const shown = pool.filter(f => visibleFix(f) && f.t_ns <= tEnd && f.t_ns >= tStart);
  const latest = new Map();
  for (const f of shown) {
    const k = `${f.channel_id}|${f.method}`;
    if (!latest.has(k) || latest.get(k).t_ns <= f.t_ns) latest.set(k, f);
  }
  const path = pts => pts.map(([la, lo], i) => { const [x, y] = v.px(la, lo); return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`; }).join("") + "Z";

  let out = HMap.tiles(v, S.config.tiles_url) + HMap.grid(v);
  // tracks: each method's fixes in time order, per channel
  const lines = new Map();
  for (const f of shown) {
    const k = `${f.channel_id}|${f.method}`;
    if (!lines.has(k)) lines.set(k, []);
    lines.get(k).push(f);
  }
  out += `<g id="tracks">`;
  for (const [k, fs] of lines) {
    const m = fs[0].method, tracked = m.endsWith("+track");
    const d = fs.map((f, i) => { const [x, y] = v.px(f.lat, f.lon); return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`; }).join("");
    out += `<path class="track" data-key="${esc(k)}" d="${d}" fill="none" stroke="${colour(m)}" stroke-width="${tracked ? 2 : 0.6}" stroke-opacity="${tracked ? 0.9 : 0.35}"/>`;
    if (!tracked) for (const f of fs) { const [x, y] = v.px(f.lat, f.lon); out += `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="1.6" fill="${colour(m)}" fill-opacity="0.5"/>`; }
  }
  out += `</g>`;
  // truth: each source's path and where it is now
  const truthShown = truthPool.filter(t => (!S.channel || t.channel_id === S.channel) && t.t_ns <= tEnd);
  const srcLatest = new Map();
  for (const t of truthShown) srcLatest.set(t.source_id, t);
  out += `<g id="truth">`;
  for (const [sid, t] of srcLatest) {
    const [x, y] = v.px(t.lat, t.lon);
    out += `<g class="truth" data-source="${esc(sid)}"><path d="M${x - 6},${y}L${x},${y - 6}L${x + 6},${y}L${x},${y + 6}Z"/><text x="${x + 8}" y="${y + 12}">${esc(sid)}</text></g>`;
  }
  out += `</g>`;
  // fixes: the latest per channel and method with its 2σ (dashed) and 1σ ellipses, and the
  // error to the truth
  out += `<g id="fixes">`;
  for (const [k, f] of latest) {
    const c = colour(f.method), [x, y] = v.px(f.lat, f.lon);
    out += `<g class="fix" data-key="${esc(k)}" data-method="${esc(f.method)}" data-channel="${esc(f.channel_id)}" data-t="${f.t_ns}">`;
    for (const hyp of f.hyperbolas || []) {
      const d = hyp.map(([la, lo], i) => { const [hx, hy] = v.px(la, lo); return `${i ? "L" : "M"}${hx.toFixed(1)},${hy.toFixed(1)}`; }).join("");
      out += `<path class="hyperbola" d="${d}" fill="none" stroke="${c}" stroke-width="1" stroke-opacity="0.6"/>`;
    }
    if (f.ellipse_2sigma && f.ellipse_2sigma.length) out += `<path class="ellipse-2" d="${path(f.ellipse_2sigma)}" fill="${c}" fill-opacity="0.06" stroke="${c}" stroke-dasharray="5 4"/>`;
    if (f.ellipse_1sigma && f.ellipse_1sigma.length) out += `<path class="ellipse-1" d="${path(f.ellipse_1sigma)}" fill="${c}" fill-opacity="0.15" stroke="${c}" stroke-width="1.5"/>`;
    if (f.truth) { const [tx, ty] = v.px(f.truth.lat, f.truth.lon); out += `<line class="errline" x1="${x.toFixed(1)}" y1="${y.toFixed(1)}" x2="${tx.toFixed(1)}" y2="${ty.toFixed(1)}"/>`; }
    out += `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4" fill="${c}" stroke="#fff"/><title>${esc(f.method)} ${esc(f.channel_id)}${f.error_m !== null ? ` error ${fmtM(f.error_m)}` : ""}</title></g>`;
  }
  out += `</g>`;
  // receivers on top
  out += `<g id="receivers">`;
  for (const r of S.receivers.values()) {
    if (r.lat === null || r.lon === null) continue;
    const [x, y] = v.px(r.lat, r.lon), st = r.state || "unknown";
    const snrNow = S.channel ? (r.snr_db_by_channel || {})[S.channel] : r.snr_db;  // the filtered channel's
    const snr = snrNow !== null && snrNow !== undefined ? ` ${snrNow.toFixed(0)} dB` : "";
    out += `<g class="receiver${r.id === S.selected ? " selected" : ""}" data-id="${esc(r.id)}" data-state="${esc(st)}">` +
      `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="6" fill="${STATE_COLOURS[st] || STATE_COLOURS.unknown}"/>` +
      `<text x="${(x + 8).toFixed(1)}" y="${(y - 6).toFixed(1)}">${esc(r.id)}${snr}</text><title>${esc(r.id)} ${esc(st)}</title></g>`;
  }
  out += `</g>` + HMap.scaleBar(v);
  svg.innerHTML = out;
  ensurePast();
  drawLegend(); drawPipeline(); drawSlider(); drawReceiverPanel();
  const now = Date.now();
  for (const f of fresh) {
    if (f.published_ns > 0) window.heimdallDrawLatencyMs.push(now - f.published_ns / 1e6);
  }
  if (window.heimdallDrawLatencyMs.length > 1000) window.heimdallDrawLatencyMs.splice(0, window.heimdallDrawLatencyMs.length - 1000);
}

function mergeById(a, b) {
  const seen = new Set(a.map(f => f.id));
  return a.concat(b.filter(f => !seen.has(f.id)));
}

// replay before the live buffer: fetch the period around the cursor from the store
function ensurePast() {
  if (S.live || S.pastLoading || !S.config.history_from_ns) return;
  const oldest = S.fixes.length ? S.fixes[0].t_ns : Infinity;
  const from = S.cursorNs - TRAIL_NS;
  if (from >= oldest) return;
  if (S.past && S.past.from_ns <= from && S.past.to_ns >= S.cursorNs) return;
  S.pastLoading = true;
  const span = 300e9, f0 = Math.floor(from), t0 = Math.ceil(S.cursorNs + span);
  fetch(`/api/history?from_ns=${f0}&to_ns=${t0}`)
    .then(r => r.json())
    .then(h => { S.past = h; })
    .finally(() => { S.pastLoading = false; schedule(); });
}

function fitView() {
  const pts = [];
  for (const r of S.receivers.values()) if (r.lat !== null) pts.push([r.lat, r.lon]);
  for (const f of S.fixes.slice(-50)) if (f.lat !== null) pts.push([f.lat, f.lon]);
  S.fitted = S.view.fit(pts);
}

function fmtM(m) { return m >= 1000 ? `${(m / 1000).toFixed(2)} km` : `${m.toFixed(0)} m`; }
function fmtS(s) { return s === null || s === undefined ? "–" : s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`; }
function pct(arr, q) { if (!arr.length) return null; const a = [...arr].sort((x, y) => x - y); return a[Math.min(a.length - 1, Math.floor(q / 100 * a.length))]; }

function drawLegend() {
  const methods = [...new Set(S.fixes.map(f => f.method))].sort();
  $("legend").innerHTML = methods.map(m => `<div><span class="sw" style="background:${colour(m)}"></span>${esc(m)}</div>`).join("") +
    `<div>ellipses: 1σ solid (39 %), 2σ dashed (86 %)</div><div>◆ truth, dashed: error; thin lines: TDOA hyperbolas</div>`;
  const box = $("methods"), have = new Set([...box.querySelectorAll("input")].map(i => i.value));
  for (const m of methods) if (!have.has(m)) {
    const l = document.createElement("label");
    l.innerHTML = `<input type="checkbox" value="${esc(m)}" checked> <span style="color:${colour(m)}">■</span>${esc(m)} `;
    l.querySelector("input").onchange = e => { if (e.target.checked) S.hidden.delete(m); else S.hidden.add(m); schedule(); };
    box.appendChild(l);
  }
}

function setChannels(chs) {
  const sel = $("channel"), have = new Set([...sel.options].map(o => o.value));
  for (const c of chs) if (!have.has(c)) { const o = document.createElement("option"); o.value = o.textContent = c; sel.appendChild(o); }
}

function drawPipeline() {
  const p = S.pipeline;
  if (!p) return;
  const rates = Object.keys(p.totals || {}).sort();
  $("pipeline-rates").tBodies[0].innerHTML = rates.map(t =>
    `<tr data-topic="${esc(t)}"><td>${esc(t)}</td><td class="num">${(p.rates_per_s[t] || 0).toFixed(1)}</td><td class="num">${(p.totals[t] || 0).toLocaleString()}</td></tr>`).join("");
  $("pipeline-lag").tBodies[0].innerHTML = Object.entries(p.lag || {}).map(([s, n]) =>
    `<tr data-stage="${esc(s)}"><td>${esc(s)}</td><td class="num">${n.toLocaleString()}</td></tr>`).join("");
  const l = p.latency_s || {};
  $("pipeline-latency").textContent = `chunk → localization p50 ${fmtS(l.p50)}, p99 ${fmtS(l.p99)} (${l.n || 0} fixes)`;
  const d = window.heimdallDrawLatencyMs;
  $("pipeline-page-latency").textContent = `published → drawn here p50 ${d.length ? pct(d, 50).toFixed(0) + " ms" : "–"}, p99 ${d.length ? pct(d, 99).toFixed(0) + " ms" : "–"}`;
  $("pipeline-models").textContent = (p.models || []).length ? "model " + p.models.map(m => `${m.model_name} ${m.version}`).join(", ") : "model: none announced";
  $("pipeline-dlq").textContent = `dead letters: ${p.dead_letters_per_min} in the last minute`;
  $("pipeline-dlq-reasons").innerHTML = (p.last_dead_letters || []).slice().reverse().map(x =>
    `<li><b>${esc(x.stage)}</b> ${esc(x.reason)}</li>`).join("");
}

function drawSlider() {
  const sl = $("slider");
  if (!S.fixes.length) return;
  const t0 = Math.min(S.fixes[0].t_ns, S.config.history_from_ns || Infinity), t1 = S.fixes[S.fixes.length - 1].t_ns;
  sl.min = Math.floor(t0 / 1e6); sl.max = Math.ceil(t1 / 1e6);
  if (S.live) { sl.value = sl.max; S.cursorNs = t1; }
  $("cursor").textContent = new Date(S.cursorNs / 1e6).toISOString().slice(11, 19) + (S.live ? " live" : "");
}

function chart(svg, points, idx, label, unit) {
  const box = svg.getBoundingClientRect(), w = box.width || 340, h = box.height || 120, m = 28;
  const pts = points.filter(p => p[idx] !== null && (!S.channel || p[1] === S.channel));
  if (!pts.length) { svg.innerHTML = `<text x="8" y="16" font-size="11">${label}: no measurements</text>`; return; }
  const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 1);
  let y0 = Math.min(...pts.map(p => p[idx])), y1 = Math.max(...pts.map(p => p[idx]));
  if (y1 - y0 < 1) { y0 -= 0.5; y1 += 0.5; }
  const X = t => m + (t - t0) / (t1 - t0) * (w - m - 6), Y = y => h - 14 - (y - y0) / (y1 - y0) * (h - 28);
  const byCh = new Map();
  for (const p of pts) { if (!byCh.has(p[1])) byCh.set(p[1], []); byCh.get(p[1]).push(p); }
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];
  let out = `<text x="4" y="12" font-size="11">${label} (${unit}) ${y1.toFixed(1)}</text><text x="4" y="${h - 3}" font-size="11">${y0.toFixed(1)}  · ${((t1 - t0) / 1e9).toFixed(0)} s</text>`;
  let i = 0;
  for (const [ch, ps] of byCh) {
    const d = ps.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[idx]).toFixed(1)}`).join("");
    out += `<path d="${d}" fill="none" stroke="${palette[i++ % palette.length]}" stroke-width="1.2"><title>${esc(ch)}</title></path>`;
  }
  svg.innerHTML = out;
}

function drawReceiverPanel() {
  const panel = $("receiver-panel");
  if (!S.selected) { panel.hidden = true; return; }
  panel.hidden = false;
  const r = S.receivers.get(S.selected) || {};
  $("rx-id").textContent = S.selected;
  const age = r.last_seen_ns ? ((Date.now() * 1e6 - r.last_seen_ns) / 1e9).toFixed(1) + " s ago" : "–";
  $("rx-info").textContent = `${r.kind || ""} ${r.state || "unknown"} · last seen ${age} · SNR ${r.snr_db ?? "–"} dB · ${r.channel_id || ""}${r.message ? " · " + r.message : ""}`;
  chart($("rx-power"), S.points, 2, "power", "dBm");
  chart($("rx-snr"), S.points, 3, "SNR", "dB");
  psdChart($("rx-psd"), S.psd);
  waterfall(S.rows);
}

// waterfall rows (newest on top), dB of the receiver's own scale, a dark-to-bright colour map
const WF_STOPS = [[0, 0, 40], [40, 20, 140], [200, 40, 120], [250, 160, 30], [255, 255, 200]];
function wfColour(x) {
  const t = Math.min(Math.max(x, 0), 1) * (WF_STOPS.length - 1), i = Math.min(Math.floor(t), WF_STOPS.length - 2), f = t - i;
  return WF_STOPS[i].map((c, k) => Math.round(c + f * (WF_STOPS[i + 1][k] - c)));
}
function waterfall(rows) {
  const box = $("rx-waterfall-box"), cv = $("rx-waterfall");
  box.hidden = !rows.length;
  cv.dataset.rows = rows.length;
  if (!rows.length) return;
  const n = rows[rows.length - 1].values.length;
  let lo = Infinity, hi = -Infinity;
  for (const r of rows) for (const v of r.values) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (hi - lo < 1) hi = lo + 1;
  cv.width = n; cv.height = MAX_ROWS;
  const ctx = cv.getContext("2d"), img = ctx.createImageData(n, MAX_ROWS);
  rows.slice().reverse().forEach((r, y) => {
    r.values.forEach((v, x) => {
      if (x >= n) return;
      const [cr, cg, cb] = v === null ? [0, 0, 0] : wfColour((v - lo) / (hi - lo)), o = 4 * (y * n + x);
      img.data[o] = cr; img.data[o + 1] = cg; img.data[o + 2] = cb; img.data[o + 3] = 255;
    });
  });
  ctx.putImageData(img, 0, 0);
  const last = rows[rows.length - 1];
  $("rx-waterfall-label").textContent = `waterfall ${((last.center_freq_hz - last.span_hz / 2) / 1e6).toFixed(3)}–${((last.center_freq_hz + last.span_hz / 2) / 1e6).toFixed(3)} MHz, ${lo.toFixed(0)}…${hi.toFixed(0)} dB (receiver's scale, not dBm)`;
}

// the latest PSD summary: Welch PSD over the chunk's band, bin i at (i − L/2)·bin_hz
function psdChart(svg, psd) {
  if (!psd || !psd.dbm_hz.length) { svg.innerHTML = `<text x="8" y="16" font-size="11">PSD: none yet</text>`; return; }
  const box = svg.getBoundingClientRect(), w = box.width || 340, h = box.height || 120, m = 28;
  const v = psd.dbm_hz, L = v.length, ok = v.filter(x => x !== null);
  let y0 = Math.min(...ok), y1 = Math.max(...ok);
  if (y1 - y0 < 1) { y0 -= 0.5; y1 += 0.5; }
  const khz = i => (i - L / 2) * psd.bin_hz / 1e3;
  const X = i => m + i / Math.max(L - 1, 1) * (w - m - 6), Y = y => h - 14 - (y - y0) / (y1 - y0) * (h - 28);
  const d = v.map((y, i) => y === null ? "" : `${i ? "L" : "M"}${X(i).toFixed(1)},${Y(y).toFixed(1)}`).join("");
  svg.innerHTML = `<text x="4" y="12" font-size="11">PSD (dBm/Hz) ${esc(psd.channel_id)} ${y1.toFixed(0)}</text>` +
    `<text x="4" y="${h - 3}" font-size="11">${y0.toFixed(0)}  · ${khz(0).toFixed(1)} … ${khz(L - 1).toFixed(1)} kHz from the chunk centre</text>` +
    `<path d="${d}" fill="none" stroke="#1d2430" stroke-width="1"/>`;
}

// ---------------------------------------------------------------- interaction
function select(id) {
  S.selected = id; S.points = []; S.psd = null; S.rows = [];
  if (S.ws && S.ws.readyState === 1) S.ws.send(JSON.stringify({ select: id }));
  schedule();
}

function setup() {
  const svg = $("map");
  let drag = null;
  svg.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY, false]; });
  window.addEventListener("mousemove", e => {
    if (!drag) return;
    const dx = e.clientX - drag[0], dy = e.clientY - drag[1];
    if (Math.abs(dx) + Math.abs(dy) > 2) drag[2] = true;
    S.view.pan(dx, dy); drag[0] = e.clientX; drag[1] = e.clientY; S.fitted = true; writeHash(); schedule();
  });
  window.addEventListener("mouseup", e => {
    if (drag && !drag[2]) {
      const g = e.target.closest && e.target.closest(".receiver");
      if (g) select(g.dataset.id);
    }
    drag = null;
  });
  svg.addEventListener("wheel", e => {
    e.preventDefault();
    const b = svg.getBoundingClientRect();
    S.view.zoomAt(e.clientX - b.left, e.clientY - b.top, e.deltaY < 0 ? 0.25 : -0.25);
    S.fitted = true; writeHash(); schedule();
  }, { passive: false });
  $("fit").onclick = () => { S.fitted = false; schedule(); };
  $("rx-close").onclick = () => select(null);
  $("channel").onchange = e => { S.channel = e.target.value; schedule(); };
  $("live").onchange = e => { S.live = e.target.checked; stopPlay(); schedule(); };
  $("slider").oninput = e => { S.live = false; $("live").checked = false; S.cursorNs = Number(e.target.value) * 1e6; schedule(); };
  $("play").onclick = () => { if (S.playing) stopPlay(); else startPlay(); };
  window.addEventListener("resize", () => schedule());
}

function startPlay() {
  if (S.live) { S.live = false; $("live").checked = false; S.cursorNs = S.fixes.length ? S.fixes[0].t_ns : 0; }
  $("play").textContent = "⏸";
  S.playing = setInterval(() => {
    S.cursorNs += 100e6 * Number($("speed").value);
    const newest = S.fixes.length ? S.fixes[S.fixes.length - 1].t_ns : 0;
    if (S.cursorNs >= newest) { S.live = true; $("live").checked = true; stopPlay(); }
    schedule();
  }, 100);
}
function stopPlay() { if (S.playing) clearInterval(S.playing); S.playing = null; $("play").textContent = "▶"; }

// #view=LAT,LON,ZOOM in the address: open (and share) a given view
function readHash() {
  const m = /view=(-?[\d.]+),(-?[\d.]+),([\d.]+)/.exec(location.hash);
  if (!m) return;
  const [x, y] = HMap.world(Number(m[1]), Number(m[2]));
  S.view.cx = x; S.view.cy = y; S.view.z = Number(m[3]); S.fitted = true;
}
function writeHash() {
  const [lat, lon] = S.view.latlon(S.view.w / 2, S.view.h / 2);
  history.replaceState(null, "", `#view=${lat.toFixed(5)},${lon.toFixed(5)},${S.view.z.toFixed(2)}`);
}

readHash();
setup();
connect();
