// hazardhub operator dashboard: plain ES modules, no external resources.
import { STRINGS, alarms, initAlarms, loadAlarms, onAlarmEvent, renderAlarms } from "/static/alarms.js";

const T = {
  zh: { title: "在线监测预警", apikey: "API 密钥", login: "登录", logout: "退出", offline: "离线",
        online: "实时", alarms: "报警", tier: "等级", sensor: "测点", level: "级别", value: "数值",
        started: "开始时间", state: "状态", sensors: "测点", trend: "趋势", vehicles: "车辆",
        active: "报警中", cleared: "已恢复", comm_loss: "通讯中断", sensor_fault: "传感器故障",
        calibration: "标定", out_of_range: "超量程", stale: "数据陈旧", manual: "人工", good: "",
        nodata: "无数据", badkey: "密钥无效", keygone: "密钥已失效（已撤销或过期），请重新登录",
        trend_help: "滚轮缩放，拖动平移，双击回到最近 15 分钟" },
  en: { title: "online monitoring", apikey: "API key", login: "Log in", logout: "Log out",
        offline: "offline", online: "live", alarms: "Alarms", tier: "Tier", sensor: "Sensor",
        level: "Level", value: "Value", started: "Started", state: "State", sensors: "Sensors",
        trend: "Trend", vehicles: "Vehicles", active: "active", cleared: "cleared",
        comm_loss: "comm loss", sensor_fault: "sensor fault", calibration: "calibration",
        out_of_range: "out of range", stale: "stale", manual: "manual", good: "",
        nodata: "no data", badkey: "invalid key",
        keygone: "the key is no longer valid (revoked or expired): log in again",
        trend_help: "wheel to zoom, drag to pan, double-click for the last 15 min" },
};
Object.assign(T.zh, STRINGS.zh);
Object.assign(T.en, STRINGS.en);
let lang = localStorage.getItem("hh-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
const t = (k) => T[lang][k] ?? k;
const $ = (s) => document.querySelector(s);
let key = sessionStorage.getItem("hh-key") || "";
const sensors = new Map();   // id -> sensor
const latest = new Map();    // id -> {ts, value, quality_name}
let trendSensor = null;
let live = false;

function setLive(on) {
  live = on;
  $("#live").className = `live ${on ? "on" : "off"}`;
  $("#live").textContent = t(on ? "online" : "offline");
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  $("#lang").textContent = lang === "zh" ? "EN" : "中文";
  setLive(live);
  renderAlarms(); renderTiles();
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  if (r.status === 401) throw new Error("unauthorized");
  if (!r.ok) throw new Error(`${r.status} ${path}`);
  return r.json();
}

const fmtVal = (v, unit) => (v === null || v === undefined ? "—" : `${Number(v.toFixed(3))} ${unit || ""}`);

function renderTiles() {
  const root = $("#sites");
  if (!root) return;
  const bySite = new Map();
  for (const s of sensors.values()) {
    const k = `${s.tenant} / ${s.site}`;
    if (!bySite.has(k)) bySite.set(k, []);
    bySite.get(k).push(s);
  }
  const activeSensors = new Set([...alarms.values()].filter((a) => a.state === "active").map((a) => a.sensor));
  root.innerHTML = "";
  for (const [site, list] of bySite) {
    const div = document.createElement("div");
    div.className = "site";
    div.innerHTML = `<h3></h3><div class="tiles"></div>`;
    div.querySelector("h3").textContent = site;
    for (const s of list) {
      const l = latest.get(s.id);
      const tile = document.createElement("div");
      const q = l ? l.quality_name : "none";
      tile.className = `tile q-${q}${l ? "" : " none"}${activeSensors.has(s.id) ? " alarm" : ""}`;
      tile.dataset.sensor = s.id;
      // honest quality: a reading that is not good shows its quality, never a stale number
      const shown = !l ? t("nodata") : q === "good" ? fmtVal(l.value, s.unit) : t(q);
      tile.innerHTML = `<div class="n"></div><div class="v"></div><div class="k"></div>`;
      tile.querySelector(".n").textContent = s.id;
      tile.querySelector(".v").textContent = shown;
      tile.querySelector(".k").textContent = `${s.kind}${s.tag ? " " + s.tag : ""}${s.location ? " · " + s.location : ""}`;
      tile.onclick = () => showTrend(s.id);
      div.querySelector(".tiles").appendChild(tile);
    }
    root.appendChild(div);
  }
}

// the trend's time range: `span` ms ending at `end` (null: now, following the live data)
const SPANS = [15 * 60e3, 3600e3, 6 * 3600e3, 24 * 3600e3];
const trendView = { span: SPANS[0], end: null };
let trendSeq = 0;

async function showTrend(id) {
  if (id !== trendSensor) { trendView.span = SPANS[0]; trendView.end = null; }
  trendSensor = id;
  $("#trend-name").textContent = id;
  const end = trendView.end ?? Date.now() + 1000, start = end - trendView.span;
  const every = Math.max(1000, Math.round(trendView.span / 300));  // about 300 points at any zoom
  const mine = ++trendSeq;
  const pts = await api(`/api/v1/sensors/${encodeURIComponent(id)}/history?start=${Math.round(start)}&end=${Math.round(end)}&every=${every}&aggregate=max`);
  if (mine !== trendSeq) return;  // a newer request (zoom, pan) won
  const c = $("#trend"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  Object.assign(c.dataset, { start: String(Math.round(start)), end: String(Math.round(end)), points: String(pts.length) });
  document.querySelectorAll("#trend-spans button").forEach((b) =>
    b.setAttribute("aria-pressed", String(Number(b.dataset.span) === trendView.span && trendView.end === null)));
  const s = sensors.get(id);
  const vals = pts.filter((p) => p.value !== null);
  const levels = (s?.levels || []).map((l) => l.above ?? l.below);
  const all = [...vals.map((p) => p.value), ...levels];
  g.fillStyle = "#1d2330"; g.font = "12px sans-serif";
  const clock = (ms) => new Date(ms).toLocaleTimeString(lang === "zh" ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai", hour12: false });
  g.fillText(clock(start), 40, c.height - 2);
  g.fillText(clock(end), c.width - 60, c.height - 2);
  if (!all.length) return;
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (ts) => ((ts - start) / (end - start)) * c.width;
  const y = (v) => c.height - 16 - ((v - lo) / (hi - lo)) * (c.height - 28);
  g.strokeStyle = "#d7263d"; g.setLineDash([4, 4]);
  for (const l of levels) { g.beginPath(); g.moveTo(0, y(l)); g.lineTo(c.width, y(l)); g.stroke(); }
  g.setLineDash([]); g.strokeStyle = "#2f6fde"; g.lineWidth = 2; g.beginPath();
  vals.forEach((p, i) => (i ? g.lineTo(x(p.ts), y(p.value)) : g.moveTo(x(p.ts), y(p.value))));
  g.stroke(); g.lineWidth = 1;
  g.fillText(`${Number(hi.toFixed(3))}`, 4, 12); g.fillText(`${Number(lo.toFixed(3))}`, 4, c.height - 18);
}

function zoomTrend(factor, at) {
  // `at`: the fraction of the width the zoom keeps in place (the cursor); at least 1 min shown
  const end = trendView.end ?? Date.now() + 1000, start = end - trendView.span;
  const pivot = start + at * trendView.span;
  const span = Math.min(7 * 86400e3, Math.max(60e3, trendView.span * factor));
  const newEnd = pivot + (1 - at) * span;
  trendView.span = span;
  trendView.end = newEnd >= Date.now() ? null : newEnd;
  if (trendSensor) showTrend(trendSensor).catch(() => {});
}

function initTrendControls() {
  const c = $("#trend");
  c.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = c.getBoundingClientRect();
    zoomTrend(e.deltaY > 0 ? 1.5 : 1 / 1.5, Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)));
  }, { passive: false });
  let drag = null;
  c.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, end: trendView.end ?? Date.now() + 1000 }; c.setPointerCapture(e.pointerId); });
  c.addEventListener("pointerup", (e) => {
    if (!drag) return;
    const moved = e.clientX - drag.x, r = c.getBoundingClientRect();
    if (Math.abs(moved) > 3) {
      const end = drag.end - (moved / r.width) * trendView.span;
      trendView.end = end >= Date.now() ? null : end;
      if (trendSensor) showTrend(trendSensor).catch(() => {});
    }
    drag = null;
  });
  c.addEventListener("dblclick", () => { trendView.span = SPANS[0]; trendView.end = null; if (trendSensor) showTrend(trendSensor).catch(() => {}); });
  $("#trend-spans").addEventListener("click", (e) => {
    const span = Number(e.target?.dataset?.span);
    if (!span) return;
    trendView.span = span; trendView.end = null;
    if (trendSensor) showTrend(trendSensor).catch(() => {});
  });
}

const FENCE_STYLE = {
  speed_zone: ["rgba(47,111,222,0.10)", "rgba(47,111,222,0.55)"],
  corridor: ["rgba(31,143,78,0.10)", "rgba(31,143,78,0.55)"],
  forbidden: ["rgba(215,38,61,0.12)", "rgba(215,38,61,0.70)"],
};

async function drawMap() {
  const [vehicles, fences] = await Promise.all([api("/api/v1/vehicles"), api("/api/v1/geofences")]);
  const end = Date.now() + 1000, start = end - 30 * 60 * 1000;
  const tracks = await Promise.all(vehicles.map((v) => api(`/api/v1/vehicles/${encodeURIComponent(v.id)}/track?start=${start}&end=${end}`)));
  const c = $("#map"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  // the view: the tracks of the last 30 min, else the geofences
  let pts = tracks.flat().map((p) => [p.lat, p.lon]);
  if (!pts.length) pts = fences.flatMap((f) => f.polygon || f.polyline || []);
  c.dataset.geofences = "0";
  if (!pts.length) return;
  let [la0, la1, lo0, lo1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0])),
    Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  const pad = 0.02; la0 -= pad; la1 += pad; lo0 -= pad; lo1 += pad;
  const x = (lon) => ((lon - lo0) / (lo1 - lo0)) * c.width;
  const y = (lat) => c.height - ((lat - la0) / (la1 - la0)) * c.height;
  g.strokeStyle = "#e3e5e9";  // plain grid, no map tiles
  for (let i = 1; i < 10; i++) { g.beginPath(); g.moveTo((c.width * i) / 10, 0); g.lineTo((c.width * i) / 10, c.height); g.stroke();
    g.beginPath(); g.moveTo(0, (c.height * i) / 10); g.lineTo(c.width, (c.height * i) / 10); g.stroke(); }
  // geofences under the tracks: polygons filled, corridors as bands of their buffer's width
  const pxPerM = c.width / ((lo1 - lo0) * 111320 * Math.cos((((la0 + la1) / 2) * Math.PI) / 180));
  for (const f of fences) {
    const [fill, line] = FENCE_STYLE[f.kind] || FENCE_STYLE.speed_zone;
    const path = f.polygon || f.polyline;
    g.beginPath();
    path.forEach(([la, lo], i) => (i ? g.lineTo(x(lo), y(la)) : g.moveTo(x(lo), y(la))));
    if (f.polygon) {
      g.closePath(); g.fillStyle = fill; g.fill(); g.strokeStyle = line; g.lineWidth = 1.5; g.stroke();
    } else {
      g.lineCap = "round"; g.lineJoin = "round";
      g.strokeStyle = fill; g.lineWidth = Math.max(3, 2 * f.buffer_m * pxPerM); g.stroke();
      g.strokeStyle = line; g.lineWidth = 1; g.setLineDash([6, 4]); g.stroke(); g.setLineDash([]);
    }
    g.fillStyle = line; g.font = "11px sans-serif";
    g.fillText(f.id + (f.limit_kmh ? ` ${f.limit_kmh} km/h` : ""), x(path[0][1]) + 4, y(path[0][0]) + 12);
  }
  c.dataset.geofences = String(fences.length);
  const active = new Set([...alarms.values()].filter((a) => a.state === "active").map((a) => a.device));
  vehicles.forEach((v, k) => {
    const tr = tracks[k];
    if (!tr.length) return;
    g.strokeStyle = ["#2f6fde", "#1f8f4e", "#8e44ad", "#f07d00"][k % 4]; g.lineWidth = 2; g.beginPath();
    tr.forEach((p, i) => (i ? g.lineTo(x(p.lon), y(p.lat)) : g.moveTo(x(p.lon), y(p.lat))));
    g.stroke();
    const last = tr[tr.length - 1];
    g.fillStyle = active.has(v.id) ? "#d7263d" : g.strokeStyle;
    g.beginPath(); g.arc(x(last.lon), y(last.lat), 6, 0, 2 * Math.PI); g.fill();
    g.fillStyle = "#1d2330"; g.font = "12px sans-serif";
    g.fillText(`${v.plate} ${last.speed_kmh} km/h`, x(last.lon) + 8, y(last.lat) - 8);
  });
  c.dataset.tracks = String(tracks.filter((tr) => tr.length).length);
}

let streamedBefore = false;
async function stream() {
  // fetch with a streaming body: EventSource cannot send the Authorization header
  for (;;) {
    try {
      const r = await fetch("/api/v1/stream", { headers: { Authorization: `Bearer ${key}` } });
      if (r.status === 401) { signedOut(); return; }  // revoked or expired: not again every 2 s
      if (!r.ok) throw new Error(String(r.status));
      if (streamedBefore) loadAlarms().then(renderTiles).catch(() => {});  // catch up on what was missed
      streamedBefore = true;
      setLive(true);
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1], data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data) onEvent(ev, JSON.parse(data));
        }
      }
    } catch (e) { /* reconnect below */ }
    setLive(false);
    await new Promise((res) => setTimeout(res, 2000));
  }
}

let refreshTimer = null;
function onEvent(kind, d) {
  if (kind === "reading") {
    latest.set(d.sensor, d);
    if (!refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = null; renderTiles(); }, 300);
  } else if (kind === "alarm") {
    onAlarmEvent(d).then(renderTiles).catch(() => {});
    if (trendSensor === d.sensor) showTrend(d.sensor);
  } else if (kind === "lagged") {
    loadAlarms().then(renderTiles).catch(() => {});  // the stream dropped events: read afresh
  }
}

let mapTimer = null;
function signedOut() {
  sessionStorage.removeItem("hh-key"); key = "";
  if (mapTimer) { clearInterval(mapTimer); mapTimer = null; }
  setLive(false);
  $("#app").hidden = true; $("#logout").hidden = true; $("#login").hidden = false;
  $("#login-error").hidden = false; $("#login-error").textContent = t("keygone");
}

async function start() {
  for (const s of await api("/api/v1/sensors")) sensors.set(s.id, s);
  for (const l of await api("/api/v1/latest")) latest.set(l.sensor, l);
  await loadAlarms();
  $("#login").hidden = true; $("#app").hidden = false; $("#logout").hidden = false;
  translate();
  stream();
  drawMap(); mapTimer = setInterval(drawMap, 10000);
}

initTrendControls();
initAlarms({ t, key: () => key, unit: (id) => sensors.get(id)?.unit, onSelect: (id) => showTrend(id).catch(() => {}),
  onChange: () => renderTiles() });
$("#lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("hh-lang", lang); translate(); };
$("#logout").onclick = () => { sessionStorage.removeItem("hh-key"); location.reload(); };
$("#login-form").onsubmit = async (e) => {
  e.preventDefault();
  key = $("#key").value.trim();
  try { await start(); sessionStorage.setItem("hh-key", key); }
  catch (err) { $("#login-error").hidden = false; $("#login-error").textContent = t("badkey"); }
};
translate();
document.body.dataset.ready = "1";  // handlers are attached (browser tests wait for this)
if (key) start().catch(() => sessionStorage.removeItem("hh-key"));
