// hazardhub operator dashboard: plain ES modules, no external resources.
import { initAttention } from "/static/attention.js";
import { HANDOVER_STRINGS, clearHandover, handoverTenantChanged, initHandover, renderHandover } from "/static/handover.js";
import { HAZARD_STRINGS, clearHazards, initHazards, renderHazards, reportFromAlarm } from "/static/hazards.js";
import { BYPASS_STRINGS, approveFromAlarm, clearBypasses, initBypasses, renderBypasses } from "/static/bypasses.js";
import { SUPERVISE_STRINGS, clearSupervise, initSupervise, superviseFromAlarm } from "/static/supervise.js";
import { SUPERVISIONS_STRINGS, clearSupervisions, initSupervisions, renderSupervisions, showSupervisionsButton } from "/static/supervisions.js";
import { REQUEST_TIMEOUT_MS } from "/static/hubrequest.js";
import { TREND_MIN_GAP_MS, forgetTrend, initTrend, showTrend, trendAsked, trendEvery, trendSensor, trendSoon, trendView } from "/static/trend.js";
import { MAP_STRINGS, drawMap, initMap } from "/static/map.js";
import { initTiles, kindName, renderTiles, sensorLabel } from "/static/tiles.js";
import { CARGO_STRINGS, cargoFromAlarm, clearCargo, initCargo } from "/static/vehiclecargo.js";
import { HEALTH_STRINGS, initHealth, lookHealth, renderHealth, startHealth, stopHealth } from "/static/health.js";
import { STRINGS, alarms, checkAlarms, clearAlarms, fmtCst, initAlarms, loadAlarms, onAlarmEvent, reloadAlarms, renderAlarms, tenantChanged } from "/static/alarms.js";

export const T = {
  zh: { title: "在线监测预警", apikey: "API 密钥", login: "登录", logout: "退出", offline: "离线",
        online: "实时", alarms: "报警", tier: "等级", sensor: "测点", level: "级别", value: "数值",
        started: "开始时间", state: "状态", sensors: "测点", trend: "趋势", vehicles: "车辆",
        active: "报警中", cleared: "已恢复", comm_loss: "通讯中断", sensor_fault: "传感器故障",
        calibration: "标定", out_of_range: "超量程", stale: "数据陈旧", manual: "人工", good: "",
        nodata: "无数据", badkey: "密钥无效", keygone: "密钥已失效（已撤销或过期），请重新登录",
        trend_help: "滚轮缩放，拖动平移，双击回到最近 15 分钟",
        no_trend: "无趋势数据", trend_max: "最大", trend_min: "最小", last_reading: "最后读数",
        k_methane: "甲烷", k_co: "一氧化碳", k_flammable_gas: "可燃气体", k_toxic_gas: "有毒气体",
        k_oxygen: "氧气", k_level: "液位", k_pressure: "压力", k_temperature: "温度",
        k_wind_speed: "风速", k_load: "载荷", k_moment: "力矩", k_tilt: "倾角", k_power_feed: "馈电",
        k_interlock: "联锁", k_speed: "车速", k_other: "其他", k_device: "设备", k_gateway: "网关",
        oos_tile: "停用 · 不报警", oos_since: "停用", fed: "有电", unfed: "无电",
        flag_normal: "正常", flag_bypassed: "旁路", flag_tripped: "联锁动作", flag_on: "动作",
        stream_refused: "实时数据流被拒绝（{status}）：{why}。{s} 秒后重试",
        stream_key_full: "此密钥已打开 {n} 个实时连接，已达上限：请先关闭其他标签页或显示屏（每块大屏宜用自己的密钥）",
        stream_hub_full: "平台已打开 {n} 个实时连接，已达上限：请稍后", stream_no_reason: "平台未说明原因",
        all_tenants: "全部企业", tenant_filter: "企业" },
  en: { title: "online monitoring", apikey: "API key", login: "Log in", logout: "Log out",
        offline: "offline", online: "live", alarms: "Alarms", tier: "Tier", sensor: "Sensor",
        level: "Level", value: "Value", started: "Started", state: "State", sensors: "Sensors",
        trend: "Trend", vehicles: "Vehicles", active: "active", cleared: "cleared",
        comm_loss: "comm loss", sensor_fault: "sensor fault", calibration: "calibration",
        out_of_range: "out of range", stale: "stale", manual: "manual", good: "",
        nodata: "no data", badkey: "invalid key",
        keygone: "the key is no longer valid (revoked or expired): log in again",
        trend_help: "wheel to zoom, drag to pan, double-click for the last 15 min",
        no_trend: "no trend", trend_max: "max", trend_min: "min", last_reading: "last reading",
        oos_tile: "out of service · raises no alarm", oos_since: "out of service",
        fed: "powered", unfed: "no power",
        flag_normal: "normal", flag_bypassed: "bypassed", flag_tripped: "tripped", flag_on: "set",
        stream_refused: "The live stream is refused ({status}): {why}. Trying again in {s} s",
        stream_key_full: "this key has {n} live streams open, the most one key may: close another tab or display first (give each wall display its own key)",
        stream_hub_full: "the hub has {n} live streams open, the most it keeps: later", stream_no_reason: "the hub gave no reason",
        all_tenants: "All enterprises", tenant_filter: "Enterprise" },
};
Object.assign(T.zh, STRINGS.zh, MAP_STRINGS.zh, CARGO_STRINGS.zh, HANDOVER_STRINGS.zh, HEALTH_STRINGS.zh, HAZARD_STRINGS.zh, BYPASS_STRINGS.zh,
  SUPERVISE_STRINGS.zh, SUPERVISIONS_STRINGS.zh);
Object.assign(T.en, STRINGS.en, MAP_STRINGS.en, CARGO_STRINGS.en, HANDOVER_STRINGS.en, HEALTH_STRINGS.en, HAZARD_STRINGS.en, BYPASS_STRINGS.en,
  SUPERVISE_STRINGS.en, SUPERVISIONS_STRINGS.en);
let lang = localStorage.getItem("hh-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
const t = (k) => T[lang][k] ?? k;
const $ = (s) => document.querySelector(s);
let key = sessionStorage.getItem("hh-key") || "";
const sensors = new Map();   // id -> sensor
const latest = new Map();    // id -> {ts, value, quality_name}
let live = false;
let sensorsVersion = 0;   // the list of sensors (or the enterprise shown) changed: tiles anew
let role = null;             // the key: GET /api/v1/me
let tenantFilter = null;     // the enterprise chosen in the header (null: every one)

function setLive(on) {
  const changed = live !== on;
  live = on;
  $("#live").className = `live ${on ? "on" : "off"}`;
  $("#live").textContent = t(on ? "online" : "offline");
  if (changed) { renderAlarms(); renderTiles(); }  // actions and tiles say whether they are live
}

function translate() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
  $("#lang").textContent = lang === "zh" ? "EN" : "中文";
  setLive(live);
  renderAlarms(); renderTiles(); renderHandover(); renderStreamNote(); renderHealth(); renderHazards(); renderBypasses();
  renderSupervisions();
}

// [id, name] pairs by name as a Chinese reader orders them (by pinyin: 华兴 before 临沂), then id
const byName = (a, b) => a[1].localeCompare(b[1], "zh-CN") || a[0].localeCompare(b[0]);

// The enterprises to choose from: those of the key's sensors, and those of the alarms held (an
// enterprise removed from the configuration keeps its alarms), by name where there is one
let tenantsShown = "";
function renderTenantFilter() {
  const select = $("#tenant-filter");
  if (!select) return;
  const found = new Map();
  for (const s of sensors.values()) if (!found.has(s.tenant)) found.set(s.tenant, s.tenant_name || s.tenant);
  for (const a of alarms.values()) if (!found.has(a.tenant)) found.set(a.tenant, a.tenant_name || a.tenant);
  if (tenantFilter && !found.has(tenantFilter)) found.set(tenantFilter, tenantFilter);
  const choices = [...found].sort(byName);
  // a centre's key of several enterprises (an enterprise's own key has nothing to choose)
  select.hidden = !centre() || choices.length < 2;
  select.title = t("tenant_filter");
  select.setAttribute("aria-label", t("tenant_filter"));
  const sig = JSON.stringify([lang, choices]);
  if (sig === tenantsShown) return;
  tenantsShown = sig;
  select.innerHTML = "";
  select.append(Object.assign(document.createElement("option"), { value: "", textContent: t("all_tenants") }));
  for (const [id, label] of choices) select.append(Object.assign(document.createElement("option"), { value: id, textContent: label }));
  select.value = tenantFilter ?? "";
}

const tenantLabel = () => (tenantFilter ? $("#tenant-filter")?.selectedOptions[0]?.textContent || tenantFilter : "");

/** One enterprise chosen (or all): the list, the tiles and the handover follow. */
function chooseTenant(id) {
  tenantFilter = id || null;
  sensorsVersion++;  // the tiles anew, of that enterprise
  renderTenantFilter();
  renderTiles();
  tenantChanged();
  handoverTenantChanged();
}

// The hub's clock, not the browser's: readings are stamped by the devices and the hub, and a
// browser minutes off would call every live reading stale (or none). The offset comes from the
// `Date` header of the hub's answers (1 s resolution: the middle of its second).
let clockOffset = 0;
function noteHubClock(r) {
  const d = Date.parse(r.headers.get("Date") ?? "");
  if (Number.isFinite(d)) clockOffset = d + 500 - Date.now();
}
const hubNow = () => Date.now() + clockOffset;

// an answer that does not come is an error (a hung request would keep a resync, and the page,
// offline for good)
export { REQUEST_TIMEOUT_MS, TREND_MIN_GAP_MS };
const unauthorized = (e) => e?.status === 401;

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  noteHubClock(r);
  if (r.status === 401) throw Object.assign(new Error("unauthorized"), { status: 401 });
  if (!r.ok) throw Object.assign(new Error(`${r.status} ${path}`), { status: r.status });
  return r.json();
}

// one formatter per language (a toLocaleTimeString with a time zone per tile and render kept
// the page busy at 2,000 sensors)
const CLOCK = {};
const clockCst = (ms) => (CLOCK[lang] ??= new Intl.DateTimeFormat(lang === "zh" ? "zh-CN" : "en-GB",
  { timeZone: "Asia/Shanghai", hourCycle: "h23", hour: "2-digit", minute: "2-digit", second: "2-digit" })).format(ms);


// Events of the stream that arrive while the page reads the hub afresh wait here (null: none
// is being read) and are applied after, over the fresh data; at most MAX_PENDING of them (the
// oldest go, and what they said is read again after)
let pending = null;
let pendingDropped = false;
export const MAX_PENDING = 5000;
let syncSeq = 0;
// a sign-in: what a stream, a resync or a map of an earlier key reads is dropped
let session = 0;

/** Read everything the page holds from the hub afresh and replace it: the key's role, the
 * sensors, their latest readings and the alarms. On every connection of the stream: a hub
 * restarted with a fresh store (the demo's default, a restored state.db) numbers its alarms
 * anew, and what was held from the old one must not be mixed with it. */
async function resync() {
  const mine = ++syncSeq;
  pending = []; pendingDropped = false;
  try {
    // the readings may be away (503 while InfluxDB does not answer): then none is shown until
    // the stream brings them, rather than another run's
    const [me, list, now] = await Promise.all([api("/api/v1/me"), api("/api/v1/sensors"),
      api("/api/v1/latest").catch((e) => { if (unauthorized(e)) throw e; return []; })]);
    await reloadAlarms();
    if (mine !== syncSeq) return;
    role = me;
    sensors.clear();
    for (const s of list) sensors.set(s.id, s);
    sensorsVersion++;
    latest.clear();
    for (const l of now) latest.set(l.sensor, l);
  } finally {
    if (mine === syncSeq) {
      const held = pending, dropped = pendingDropped;
      pending = null; pendingDropped = false;
      for (const [kind, d] of held) onEvent(kind, d);
      if (dropped) reread();
    }
  }
  renderAlarms(); renderTiles(); renderTenantFilter();
  if (trendSensor) showTrend(trendSensor).catch(() => {});
}

/** Events were dropped (the stream's `lagged`, or too many held during a resync): read the
 * alarms and the latest readings again (a reading keeps the newer of the two). */
function reread() {
  const mine = session;
  loadAlarms().then(renderTiles).catch(() => {});
  checkAlarms();  // and those waiting beyond the list's 500 open
  api("/api/v1/latest").then((now) => {
    if (mine !== session) return;
    for (const l of now) keepReading(l);
    renderTiles();
  }).catch(() => {});
}

/** A sensor went out of service or back (its open alarms said so): its tile follows. Sensors
 * added or removed since (a configuration changed live) change the tiles too. */
function rereadService() {
  const mine = session;
  api("/api/v1/sensors").then((list) => {
    if (mine !== session) return;
    const same = list.length === sensors.size && list.every((s) => sensors.has(s.id));
    if (!same) { sensors.clear(); sensorsVersion++; }
    for (const s of list) if (!same || sensors.has(s.id)) sensors.set(s.id, s);
    renderTiles();
  }).catch(() => {});
}

function hold(kind, d) {
  if (pending.length >= MAX_PENDING) { pending.shift(); pendingDropped = true; }
  pending.push([kind, d]);
}

// the longest wait between two connections of the stream (a hub that keeps failing)
const MAX_BACKOFF_MS = 10000;
// two of the hub's heartbeats (a comment every 15 s on a quiet stream) without a byte: the hub
// is frozen or the link dropped in silence. The stream is given up (offline, its actions off)
// and connected again: a hub paused for 98 s was shown live all along (helper-240)
export const STREAM_IDLE_MS = 30000;
let streamAbort = null;  // the connection of the stream now (aborted: it is connected again)
// the shortest first wait a stream's `retry` may set (a hub saying 0 is not asked in a loop)
const MIN_RETRY_MS = 100;
// the longest a refusal's Retry-After is followed (the hub's 429 says 30 s)
const MAX_RETRY_AFTER_MS = 60000;

// A stream the hub answered but refused (429: too many streams of the key or the hub; 503 ...)
// is said over the page, with the hub's reason and when the page tries again: it was retried
// in silence, and a wall display stayed "offline" with nobody knowing why. null: none.
let streamNote = null;  // {status, why, at: when the next try is, by the browser's clock}
let streamNoteTimer = null;

function streamWhy(why) {
  const key = /^this key has (\d+) live streams open/.exec(why);
  if (key) return t("stream_key_full").replace("{n}", key[1]);
  const hub = /^the hub has (\d+) live streams open/.exec(why);
  if (hub) return t("stream_hub_full").replace("{n}", hub[1]);
  return why || t("stream_no_reason");
}

function renderStreamNote() {
  const box = $("#stream-msg");
  if (!box) return;
  box.hidden = !streamNote;
  if (!streamNote) { box.textContent = ""; return; }
  const s = Math.max(0, Math.ceil((streamNote.at - Date.now()) / 1000));
  box.dataset.status = String(streamNote.status);
  box.textContent = t("stream_refused").replace("{status}", String(streamNote.status))
    .replace("{why}", streamWhy(streamNote.why)).replace("{s}", String(s));
}

function noteStream(note) {
  streamNote = note;
  clearInterval(streamNoteTimer);
  streamNoteTimer = note ? setInterval(renderStreamNote, 1000) : null;  // the seconds count down
  renderStreamNote();
}

async function stream(mySession) {
  // fetch with a streaming body: EventSource cannot send the Authorization header. The first
  // wait before connecting again is the stream's `retry` (the hub says 2 s), as EventSource
  // takes it; doubled while the hub keeps failing
  let retryMs = 2000;
  let failed = 0;  // connections in a row that did not go live
  for (;;) {
    let refused = null;  // the hub's answer when it refused the stream
    try {
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
      const r = await fetch("/api/v1/stream", { headers: { Authorization: `Bearer ${key}` }, signal: abort.signal })
        .finally(() => clearTimeout(timer));
      if (mySession !== session) { abort.abort(); return; }
      noteHubClock(r);
      if (r.status === 401) { signedOut(); return; }  // revoked or expired: not again every 2 s
      if (!r.ok) {
        const why = await r.json().then((d) => (typeof d?.detail === "string" ? d.detail : "")).catch(() => "");
        const after = Number(r.headers.get("Retry-After"));
        refused = { status: r.status, why, afterMs: after > 0 ? Math.min(after * 1000, MAX_RETRY_AFTER_MS) : 0 };
        throw new Error(String(r.status));
      }
      noteStream(null);  // taken: no refusal stands
      const reader = r.body.getReader(), dec = new TextDecoder();
      streamAbort = abort;
      let idle = null;  // aborts the read (and so the connection) after STREAM_IDLE_MS of silence
      const quiet = () => { clearTimeout(idle); idle = setTimeout(() => abort.abort(), STREAM_IDLE_MS); };
      quiet();
      // what was missed, or all of it anew from a restarted hub; live once it is read
      let open = true;  // this connection: live only while it lasts
      resync().then(() => { if (open && mySession === session) { setLive(true); failed = 0; lookHealth(); } }).catch((e) => {
        if (unauthorized(e) && mySession === session) signedOut();
        reader.cancel().catch(() => {});  // connect again, and read again
      });
      try {
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          quiet();
          if (done || mySession !== session) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i); buf = buf.slice(i + 2);
            const retry = /^retry: *(\d+)$/m.exec(block)?.[1];
            if (retry) retryMs = Math.min(MAX_BACKOFF_MS, Math.max(MIN_RETRY_MS, Number(retry)));
            const ev = /^event: (.*)$/m.exec(block)?.[1], data = /^data: (.*)$/m.exec(block)?.[1];
            if (ev && data) { if (pending) hold(ev, JSON.parse(data)); else onEvent(ev, JSON.parse(data)); }
          }
        }
        reader.cancel().catch(() => {});
      } finally { open = false; clearTimeout(idle); if (streamAbort === abort) streamAbort = null; }
    } catch (e) { /* reconnect below */ }
    if (!key || mySession !== session) return;  // signed out
    setLive(false);
    // a hub that keeps failing is asked less often (2 s, 4 s, 8 s, then every 10 s: from the
    // stream's `retry`); one that refused says when to ask again (Retry-After), and the page
    // says why and when
    const backoff = Math.min(MAX_BACKOFF_MS, retryMs * 2 ** failed);
    const wait = Math.max(backoff, refused?.afterMs ?? 0);
    noteStream(refused ? { status: refused.status, why: refused.why, at: Date.now() + wait } : null);
    await new Promise((res) => setTimeout(res, wait));
    failed += 1;
    if (mySession !== session) return;
  }
}

// a reading stamped this far ahead of the hub's clock is from a device's wrong clock (the hub
// takes readings up to 5 min ahead): it does not hold its tile against readings of the present
export const FUTURE_MS = 5000;

/** Keep the newer reading by event time (a gateway's backlog replayed between live readings
 * must not take a tile back), unless the held one is from the future and this one is not. */
function keepReading(d) {
  const have = latest.get(d.sensor);
  const present = hubNow() + FUTURE_MS;
  if (have && have.ts > d.ts && !(have.ts > present && d.ts <= present)) return false;
  latest.set(d.sensor, d);
  return true;
}

let refreshTimer = null;
function onEvent(kind, d) {
  if (kind === "reading") {
    if (!keepReading(d)) return;
    if (d.sensor === trendSensor && trendView.end === null) trendSoon();
    if (!refreshTimer) refreshTimer = setTimeout(() => { refreshTimer = null; renderTiles(); }, 300);
  } else if (kind === "alarm") {
    onAlarmEvent(d).then(() => {
      renderTiles(); renderTenantFilter();
      if (d.site === "vehicles") drawMapSoon();  // its dot takes the alarm's tier at once
    }).catch(() => {});
    if (d.kind === "out_of_service" || d.kind === "in_service") rereadService();
    if (trendSensor === d.sensor) trendSoon();
  } else if (kind === "lagged") {
    reread();  // the stream dropped events: read afresh
  }
}

let mapTimer = null, tickTimer = null, mapSoon = null;
// a vehicle's alarm redraws the map within a second (a flood of them, once), not at the next 10 s
function drawMapSoon() {
  if (!mapTimer || mapSoon) return;
  mapSoon = setTimeout(() => { mapSoon = null; if (live && mapTimer) drawMap().catch(() => {}); }, 1000);
}

/** Forget everything of the key: nothing of it stays in view for the next key to see. */
function forget() {
  session++; syncSeq++;
  forgetTrend();
  pending = null; pendingDropped = false;
  if (mapTimer) { clearInterval(mapTimer); mapTimer = null; }
  if (tickTimer) { clearInterval(tickTimer); tickTimer = null; }
  role = null;
  tenantFilter = null; tenantsShown = "";
  noteStream(null);
  stopHealth();
  sensors.clear(); latest.clear(); sensorsVersion++;
  $("#map-panel").hidden = true;  // until the next key's vehicles are read
  clearAlarms(); clearCargo(); clearHandover(); clearHazards(); clearBypasses(); clearSupervise(); clearSupervisions();
  $("#handover-open").hidden = true; $("#hazards-open").hidden = true; $("#bypasses-open").hidden = true;
  $("#trend-name").textContent = "";
  for (const id of ["#trend", "#map"]) {
    const c = $(id);
    c.getContext("2d").clearRect(0, 0, c.width, c.height);
    for (const k of Object.keys(c.dataset)) delete c.dataset[k];
  }
  renderTiles(); renderAlarms();
}

function signedOut() {
  sessionStorage.removeItem("hh-key"); key = "";
  forget();
  setLive(false);
  $("#app").hidden = true; $("#logout").hidden = true; $("#login").hidden = false;
  $("#login-error").hidden = false; $("#login-error").textContent = t("keygone");
}

async function start() {
  const me = await api("/api/v1/me");  // the key is good: the stream reads the rest
  forget();
  role = me;
  const mine = session;
  $("#login").hidden = true; $("#app").hidden = false; $("#logout").hidden = false;
  $("#handover-open").hidden = false; $("#hazards-open").hidden = false; $("#bypasses-open").hidden = false;
  showSupervisionsButton(centreAck());  // the centre's 督办 to follow up
  translate();
  stream(mine);
  startHealth();  // the hub's own health: a banner while it judges nothing (or stores nothing)
  // (not while the stream is down: requests to a hub that does not answer held the browser's
  // few connections to it, and the stream's next try waited behind them)
  drawMap().catch(() => {}); mapTimer = setInterval(() => { if (live) drawMap().catch(() => {}); }, 10000);
  // readings age into staleness without an event; a trend that ends now moves on
  let ticks = 0;
  tickTimer = setInterval(() => {
    renderTiles();
    // a sensor out of service or back without an open alarm to say so: seen within a minute
    if (++ticks % 12 === 0 && live) rereadService();
    // the alarms waiting, compared with the hub's (a gap a flood left heals within a minute)
    if (ticks % 12 === 6 && live) checkAlarms();
    // at the trend's own cadence (a read done before the store had the newest readings is
    // corrected within a window, 5 s at most at 15 min, not 10 s); not while offline, as the map
    const due = Math.max(TREND_MIN_GAP_MS, trendEvery());
    if (live && trendSensor && trendView.end === null && Date.now() - trendAsked >= due) trendSoon();
  }, 5000);
}

initTrend({ t, api, hubNow, clockCst, sensors });
// a monitoring centre's key (operator, admin, or one of several tenants) is told each alarm's
// enterprise and site; an enterprise's own key knows whose alarms they are
const centre = () => !!role && (["admin", "operator"].includes(role.role) || role.tenants === null
  || role.tenants.length > 1);
// the supervising centre itself (an admin or operator key of every tenant): its acknowledgement
// is the centre's (`centre_acked`), apart from the enterprise's (`api.context.is_centre`)
const centreAck = () => !!role && ["admin", "operator"].includes(role.role) && role.tenants === null;
initAlarms({ t, key: () => key, live: () => live, actions: () => role?.alarm_actions ?? [], centre, centreAck,
  tenant: () => tenantFilter,
  unit: (id) => sensors.get(id)?.unit, onSelect: (id) => showTrend(id).catch(() => {}),
  onChange: () => renderTiles(), detailAction: (a) => [cargoFromAlarm(a), reportFromAlarm(a), approveFromAlarm(a), superviseFromAlarm(a)] });
initCargo({ t, key: () => key, fmt: (ms) => fmtCst(ms) });
initSupervise({ t, key: () => key, centre: centreAck });
initSupervisions({ t, key: () => key });
$("#tenant-filter").onchange = (e) => chooseTenant(e.target.value);
initAttention(t);
// a readiness request the hub does not answer: the stream too is given up and connected again
// (a frozen hub, a link gone silent), not shown live until the hub answers
initHealth({ t, api, unanswered: () => streamAbort?.abort() });
initMap({ t, api, hubNow, alarms, session: () => session });
initTiles({ t, clockCst, hubNow, sensors, latest, tenant: () => tenantFilter, live: () => live,
  shape: () => `${lang} ${sensorsVersion}`, onBuilt: () => renderTenantFilter() });
// the hidden-danger ledger: an enterprise by its name where its sensors give one
initHazards({ t, key: () => key, me: () => role,
  tenantName: (id) => [...sensors.values()].find((s) => s.tenant === id)?.tenant_name || id });
initBypasses({ t, key: () => key, me: () => role });  // the interlock bypass approvals (联锁旁路审批)
// the shift handover: the sites of the key's sensors to choose from, each of its enterprise
// (two enterprises may give a site the same id: hx-chem/tank-farm, ly-chem/tank-farm), by name
// where the configuration gives one; [`tenant/site`, label] (ids hold no "/")
const siteChoices = () => {
  const found = new Map();
  for (const s of sensors.values()) {
    const k = `${s.tenant}/${s.site}`;
    if (!found.has(k)) found.set(k, `${s.tenant_name || s.tenant} / ${s.site_name || s.site}`);
  }
  return [...found].sort(byName);
};
initHandover({ t, api, sites: siteChoices, me: () => role, centre, kind: kindName,
  tenant: () => (tenantFilter ? { id: tenantFilter, label: tenantLabel() } : null),
  place: (id) => (sensors.has(id) ? sensorLabel(sensors.get(id)) : "") });
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
