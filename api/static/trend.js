// The dashboard's trend (app.js): the lowest and the highest reading of each window of one
// sensor's history, zoomed and panned with the pointer, following the live data while it ends
// now.

let t = null, api = null, hubNow = null, clockCst = null, sensors = null;  // app.js's (initTrend)
const $ = (s) => document.querySelector(s);
export let trendSensor = null;

// the trend's time range: `span` ms ending at `end` (null: now, following the live data)
const SPANS = [15 * 60e3, 3600e3, 6 * 3600e3, 24 * 3600e3];
export const trendView = { span: SPANS[0], end: null };
let trendSeq = 0;

export const trendEvery = () => Math.max(1000, Math.round(trendView.span / 300));  // about 300 points at any zoom
export let trendAsked = 0;  // when the trend was last read (the browser's clock: only intervals)

export async function showTrend(id) {
  if (id !== trendSensor) { trendView.span = SPANS[0]; trendView.end = null; }
  const c = $("#trend"), g = c.getContext("2d");
  if (id !== trendSensor) {
    // another sensor: nothing of the previous one's curve stays under the new name
    g.clearRect(0, 0, c.width, c.height);
    Object.assign(c.dataset, { points: "0", sensor: id, none: "" });
  }
  trendSensor = id;
  $("#trend-name").textContent = id;
  const end = trendView.end ?? hubNow() + 1000, start = end - trendView.span;
  const every = trendEvery();
  const mine = ++trendSeq;
  trendAsked = Date.now();
  if (trendTimer) { clearTimeout(trendTimer); trendTimer = null; }  // this read is the one due
  // the lowest and the highest reading of each window, in one request: a dip below a low limit
  // shows as well as a peak over a high one (a band between the two lines)
  let rows;
  try { rows = await api(`/api/v1/sensors/${encodeURIComponent(id)}/history?start=${Math.round(start)}&end=${Math.round(end)}&every=${every}&aggregate=minmax`); }
  catch (err) {
    if (mine !== trendSeq) return;
    // no history (a device's or gateway's comm-loss alarm has none), or the store is away
    g.clearRect(0, 0, c.width, c.height);
    Object.assign(c.dataset, { points: "0", sensor: id, none: "1", segments: "0" });
    g.fillStyle = "#8a8f98"; g.font = "14px sans-serif";
    g.fillText(`${t("no_trend")}: ${id}`, 16, c.height / 2);
    return;
  }
  if (mine !== trendSeq) return;  // a newer request (zoom, pan) won
  g.clearRect(0, 0, c.width, c.height);
  document.querySelectorAll("#trend-spans button").forEach((b) =>
    b.setAttribute("aria-pressed", String(Number(b.dataset.span) === trendView.span && trendView.end === null)));
  const s = sensors.get(id);
  const band = rows.filter((p) => p.min !== null && p.max !== null).map((p) => ({ ts: p.ts, hi: p.max, lo: p.min }));
  // windows without measurements are gaps: the band is drawn in separate pieces, never across.
  // Windows are `every` apart while the sensor reads faster than that; further apart when its
  // device is polled more slowly (their usual spacing, the median, is no gap) or reports on
  // change (silent up to its max_silent_s)
  const apart = band.slice(1).map((p, i) => p.ts - band[i].ts).sort((a, b) => a - b);
  const usual = apart.length ? apart[Math.floor(apart.length / 2)] : every;
  const gap = Math.max(every, 1.5 * usual, s?.report_on_change && s?.max_silent_s ? s.max_silent_s * 1000 + every : 0);
  const segments = [];
  for (const p of band) {
    const last = segments.at(-1);
    if (last && p.ts - last.at(-1).ts <= gap) last.push(p); else segments.push([p]);
  }
  Object.assign(c.dataset, { start: String(Math.round(start)), end: String(Math.round(end)),
    points: String(band.length), sensor: id, none: "", segments: String(segments.length) });
  c.dataset.min = band.length ? String(Math.min(...band.map((p) => p.lo))) : "";
  c.dataset.max = band.length ? String(Math.max(...band.map((p) => p.hi))) : "";
  // each alarm level at its limit, in its tier's colour (as the alarm list's)
  const marks = (s?.levels || []).map((l) => ({ v: l.above ?? l.below, tier: l.tier, name: l.name }))
    .filter((m) => m.v !== null && m.v !== undefined);
  const levels = marks.map((m) => m.v);
  const all = [...band.map((p) => p.hi), ...band.map((p) => p.lo), ...levels];
  g.fillStyle = "#1d2330"; g.font = "12px sans-serif";
  g.fillText(clockCst(start), 40, c.height - 2);
  g.fillText(clockCst(end), c.width - 60, c.height - 2);
  if (!all.length) {
    g.fillStyle = "#8a8f98"; g.fillText(t("nodata"), 16, c.height / 2);
    return;
  }
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (ts) => ((ts - start) / (end - start)) * c.width;
  const y = (v) => c.height - 16 - ((v - lo) / (hi - lo)) * (c.height - 28);
  // the y-axis: a few round values, each with its tick (no line across: a gap in the data
  // stays blank)
  const ticks = niceTicks(lo, hi, 5);
  g.font = "11px sans-serif";
  g.strokeStyle = "#5b6375"; g.lineWidth = 1;
  g.beginPath(); g.moveTo(AXIS_W, 4); g.lineTo(AXIS_W, c.height - 16); g.stroke();
  for (const v of ticks) {
    g.beginPath(); g.moveTo(AXIS_W - 4, y(v)); g.lineTo(AXIS_W, y(v)); g.stroke();
    g.fillStyle = "#5b6375"; g.fillText(fmtTick(v), 2, y(v) + 4);
  }
  g.setLineDash([4, 4]); g.lineWidth = 1.5;
  for (const m of marks) {
    const colour = TIER_COLOURS[m.tier] ?? "#d7263d";
    g.strokeStyle = colour; g.beginPath(); g.moveTo(AXIS_W, y(m.v)); g.lineTo(c.width, y(m.v)); g.stroke();
    g.fillStyle = colour;
    const label = `${levelName(m.name)} ${fmtTick(m.v)}`;
    g.fillText(label, c.width - g.measureText(label).width - 4, y(m.v) - 3);
  }
  g.setLineDash([]); g.lineWidth = 1; g.font = "12px sans-serif";
  c.dataset.ticks = JSON.stringify(ticks.map(fmtTick));
  c.dataset.levels = JSON.stringify(marks.map((m) => ({ value: m.v, tier: m.tier, colour: TIER_COLOURS[m.tier] ?? "#d7263d" })));
  // a window is drawn across its width (from its start to the next window's), so a lone
  // window between gaps is seen too
  const w = Math.max(1, x(every) - x(0));
  for (const seg of segments) {
    g.fillStyle = "rgba(47,111,222,0.18)"; g.beginPath();
    seg.forEach((p, i) => (i ? g.lineTo(x(p.ts), y(p.hi)) : g.moveTo(x(p.ts), y(p.hi))));
    g.lineTo(x(seg.at(-1).ts) + w, y(seg.at(-1).hi));
    g.lineTo(x(seg.at(-1).ts) + w, y(seg.at(-1).lo));
    for (let i = seg.length - 1; i >= 0; i--) g.lineTo(x(seg[i].ts), y(seg[i].lo));
    g.closePath(); g.fill();
    for (const [key, color] of [["hi", "#2f6fde"], ["lo", "#1f8f4e"]]) {
      g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
      seg.forEach((p, i) => (i ? g.lineTo(x(p.ts), y(p[key])) : g.moveTo(x(p.ts), y(p[key]))));
      g.lineTo(x(seg.at(-1).ts) + w, y(seg.at(-1)[key]));
      g.stroke();
    }
    g.lineWidth = 1;
  }
  g.fillStyle = "#2f6fde"; g.fillText(t("trend_max"), c.width - 80, 12);
  g.fillStyle = "#1f8f4e"; g.fillText(t("trend_min"), c.width - 40, 12);
}

// the alarm list's tier colours (app.css); the axis's width on the left, for its values
const TIER_COLOURS = { red: "#d7263d", orange: "#f07d00", yellow: "#c9a000", blue: "#2f6fde" };
const AXIS_W = 36;
const levelName = (name) => (t(`lvl_${name}`) === `lvl_${name}` ? name : t(`lvl_${name}`));
const fmtTick = (v) => String(Number(v.toPrecision(6)));

/** About `n` round values (1, 2 or 5 times a power of ten apart) between lo and hi. */
export function niceTicks(lo, hi, n) {
  const raw = (hi - lo) / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((k) => k >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number((Math.round(v / step) * step).toPrecision(12)));
  return out;
}

// a trend that ends now follows the live data (its sensor's readings and alarms, and a timer),
// read again at most once a window of its span (`every`: 3 s at 15 min, about 5 min at 24 h)
// and at least 2 s apart: one request per redraw
export const TREND_MIN_GAP_MS = 2000;
let trendTimer = null;
export function trendSoon() {
  if (trendTimer || !trendSensor || trendView.end !== null) return;
  const wait = Math.max(0, trendAsked + Math.max(TREND_MIN_GAP_MS, trendEvery()) - Date.now());
  trendTimer = setTimeout(() => {
    trendTimer = null;
    if (trendSensor && trendView.end === null) showTrend(trendSensor).catch(() => {});
  }, wait);
}

function zoomTrend(factor, at) {
  // `at`: the fraction of the width the zoom keeps in place (the cursor); at least 1 min shown
  const end = trendView.end ?? hubNow() + 1000, start = end - trendView.span;
  const pivot = start + at * trendView.span;
  const span = Math.min(7 * 86400e3, Math.max(60e3, trendView.span * factor));
  const newEnd = pivot + (1 - at) * span;
  trendView.span = span;
  trendView.end = newEnd >= hubNow() ? null : newEnd;
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
  c.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, end: trendView.end ?? hubNow() + 1000 }; c.setPointerCapture(e.pointerId); });
  c.addEventListener("pointerup", (e) => {
    if (!drag) return;
    const moved = e.clientX - drag.x, r = c.getBoundingClientRect();
    if (Math.abs(moved) > 3) {
      const end = drag.end - (moved / r.width) * trendView.span;
      trendView.end = end >= hubNow() ? null : end;
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

/** The page's words, its requests, the hub's clock, its clock format and its sensors; and the
 * trend's controls. */
export function initTrend(context) {
  ({ t, api, hubNow, clockCst, sensors } = context);
  initTrendControls();
}

/** Forget the trend shown (a sign-out): no answer of a request made before is drawn. */
export function forgetTrend() {
  trendSeq++;
  if (trendTimer) { clearTimeout(trendTimer); trendTimer = null; }
  trendSensor = null;
}
