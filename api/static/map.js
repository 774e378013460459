// The vehicle map of the operator dashboard: tracks, silent vehicles, geofences, on a canvas.
// A vehicle with an active alarm is drawn in its highest active tier's colour (as the alarm
// list's), ringed; a click on a vehicle opens its newest active alarm in the list.
const $ = (s) => document.querySelector(s);

export const MAP_STRINGS = {
  zh: { last_seen: "{age}前最后位置", age_min: "{n} 分钟", age_h: "{n} 小时", age_d: "{n} 天" },
  en: { last_seen: "last seen {age} ago", age_min: "{n} min", age_h: "{n} h", age_d: "{n} d" },
};

// what the page gives the map: t, api, hubNow, alarms (id -> alarm), session() (the sign-in's
// number: a map read with a key signed out since is dropped)
let ctx = null;
export function initMap(c) { ctx = c; }

const FENCE_STYLE = {
  speed_zone: ["rgba(47,111,222,0.10)", "rgba(47,111,222,0.55)"],
  corridor: ["rgba(31,143,78,0.10)", "rgba(31,143,78,0.55)"],
  forbidden: ["rgba(215,38,61,0.12)", "rgba(215,38,61,0.70)"],
};

// the alarm list's tier colours (app.css), highest first; the tracks' own colours are none of them
export const TIER_COLOURS = { red: "#d7263d", orange: "#f07d00", yellow: "#f2c200", blue: "#2f6fde" };
const TIER_RANK = ["blue", "yellow", "orange", "red"];
const TRACK_COLOURS = ["#1f8f4e", "#8e44ad", "#00838f", "#6d4c41"];
let dots = [];  // the vehicles drawn: {id, x, y} in the canvas's pixels (for a click)

/** Each vehicle's highest tier among its active alarms (vehicle id -> tier). */
export function vehicleTiers(alarms) {
  const top = new Map();
  for (const a of alarms) {
    if (a.state !== "active" || a.site !== "vehicles") continue;
    const was = top.get(a.device);
    if (!was || TIER_RANK.indexOf(a.tier) > TIER_RANK.indexOf(was)) top.set(a.device, a.tier);
  }
  return top;
}

/** The newest active alarm of a vehicle, opened in the alarm list (its row clicked open when
 * closed) and scrolled to; false when it has none shown. */
export function openVehicleAlarm(vehicle) {
  const mine = [...ctx.alarms.values()].filter((a) => a.state === "active" && a.site === "vehicles" && a.device === vehicle);
  mine.sort((a, b) => b.started_ts - a.started_ts || b.id - a.id);
  const row = mine.length ? document.querySelector(`tr.alarm[data-alarm='${mine[0].id}']`) : null;
  if (!row) return false;
  if (!row.classList.contains("expanded")) row.click();
  row.scrollIntoView({ block: "center" });
  return true;
}

/** The vehicle drawn under a point of the canvas (its CSS pixels), within 10 px; null if none. */
function vehicleAt(c, e) {
  const r = c.getBoundingClientRect();
  const px = ((e.clientX - r.left) * c.width) / r.width, py = ((e.clientY - r.top) * c.height) / r.height;
  let best = null, dist = 10;
  for (const d of dots) {
    const k = Math.hypot(d.x - px, d.y - py);
    if (k <= dist) { best = d; dist = k; }
  }
  return best;
}

let clickable = false;
function makeClickable(c) {
  if (clickable) return;
  clickable = true;
  c.addEventListener("click", (e) => { const v = vehicleAt(c, e); if (v) openVehicleAlarm(v.id); });
  c.addEventListener("mousemove", (e) => { c.style.cursor = vehicleAt(c, e) ? "pointer" : ""; });
}

/** How long ago, roughly: minutes under 2 h, hours under 2 days, then days. */
function ageText(ms) {
  const min = Math.max(0, Math.round(ms / 60000));
  if (min < 120) return ctx.t("age_min").replace("{n}", min);
  if (min < 2880) return ctx.t("age_h").replace("{n}", Math.round(min / 60));
  return ctx.t("age_d").replace("{n}", Math.round(min / 1440));
}

/** Draws the vehicles of the key (their tracks of the last 30 min, the silent ones where last
 * seen) over the geofences; read again every 10 s by the page. */
export async function drawMap() {
  const mine = ctx.session();
  // each vehicle with its newest position: one silent for longer than the track's 30 min is
  // still shown, where it was last seen, hollow and grey, with how long ago
  const [vehicles, fences] = await Promise.all([ctx.api("/api/v1/vehicles?with=last_position"),
    ctx.api("/api/v1/geofences")]);
  const end = ctx.hubNow() + 1000, start = end - 30 * 60 * 1000;
  const tracks = await Promise.all(vehicles.map((v) => ctx.api(`/api/v1/vehicles/${encodeURIComponent(v.id)}/track?start=${start}&end=${end}`)));
  if (mine !== ctx.session()) return;  // read with a key signed out since
  // a key without vehicles (a mine's) is shown no empty map: the panel comes with the first
  // vehicle (the map is read every 10 s)
  $("#map-panel").hidden = !vehicles.length;
  const c = $("#map"), g = c.getContext("2d");
  makeClickable(c);
  g.clearRect(0, 0, c.width, c.height);
  dots = [];
  // the view: the tracks of the last 30 min, else the geofences
  const silent = vehicles.filter((v, k) => !tracks[k].length && v.last_position);
  let pts = tracks.flat().concat(silent.map((v) => v.last_position)).map((p) => [p.lat, p.lon]);
  if (!pts.length) pts = fences.flatMap((f) => f.polygon || f.polyline || []);
  c.dataset.geofences = "0";
  if (!pts.length) return;
  let [la0, la1, lo0, lo1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0])),
    Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  const pad = 0.02; la0 -= pad; la1 += pad; lo0 -= pad; lo1 += pad;
  // one scale in metres for both axes (a degree of longitude is shorter than one of latitude by
  // cos(latitude)), the view centred: shapes and corridor widths are not distorted
  const midLat = (la0 + la1) / 2, midLon = (lo0 + lo1) / 2;
  const mLon = 111320 * Math.cos((midLat * Math.PI) / 180), mLat = 110574;
  const pxPerM = Math.min(c.width / ((lo1 - lo0) * mLon), c.height / ((la1 - la0) * mLat));
  const x = (lon) => c.width / 2 + (lon - midLon) * mLon * pxPerM;
  const y = (lat) => c.height / 2 - (lat - midLat) * mLat * pxPerM;
  c.dataset.pxPerM = String(pxPerM);
  // labels inside the canvas, each moved down until it overlaps none placed before
  const boxes = [];
  const label = (text, lx, ly) => {
    const w = g.measureText(text).width, h = 12;
    let bx = Math.min(Math.max(2, lx), c.width - w - 2), by = Math.min(Math.max(h, ly), c.height - 2);
    for (let k = 0; k < 20 && boxes.some((b) => bx < b.x + b.w && b.x < bx + w && by - h < b.y && b.y - h < by); k++) {
      by += h + 2;
      if (by > c.height - 2) by = h;
    }
    boxes.push({ x: bx, y: by, w });
    g.fillText(text, bx, by);
  };
  g.strokeStyle = "#e3e5e9";  // plain grid, no map tiles
  for (let i = 1; i < 10; i++) { g.beginPath(); g.moveTo((c.width * i) / 10, 0); g.lineTo((c.width * i) / 10, c.height); g.stroke();
    g.beginPath(); g.moveTo(0, (c.height * i) / 10); g.lineTo(c.width, (c.height * i) / 10); g.stroke(); }
  // geofences under the tracks: polygons filled, corridors as bands of their buffer's width
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
    label(f.id + (f.limit_kmh ? ` ${f.limit_kmh} km/h` : ""), x(path[0][1]) + 4, y(path[0][0]) + 12);
  }
  c.dataset.geofences = String(fences.length);
  const tiers = vehicleTiers(ctx.alarms.values());
  // a vehicle in alarm: a larger dot of its tier's colour, ringed in dark
  const ring = (px, py) => { g.strokeStyle = "#1d2330"; g.lineWidth = 1.5; g.beginPath(); g.arc(px, py, 8, 0, 2 * Math.PI); g.stroke(); };
  vehicles.forEach((v, k) => {
    const tr = tracks[k];
    if (!tr.length) return;
    g.strokeStyle = TRACK_COLOURS[k % TRACK_COLOURS.length]; g.lineWidth = 2; g.beginPath();
    tr.forEach((p, i) => (i ? g.lineTo(x(p.lon), y(p.lat)) : g.moveTo(x(p.lon), y(p.lat))));
    g.stroke();
    const last = tr[tr.length - 1];
    const tier = tiers.get(v.id);
    g.fillStyle = tier ? TIER_COLOURS[tier] : g.strokeStyle;
    g.beginPath(); g.arc(x(last.lon), y(last.lat), tier ? 8 : 6, 0, 2 * Math.PI); g.fill();
    if (tier) ring(x(last.lon), y(last.lat));
    dots.push({ id: v.id, x: x(last.lon), y: y(last.lat), tier: tier ?? "" });
    g.fillStyle = "#1d2330"; g.font = "12px sans-serif";
    label(`${v.plate} ${last.speed_kmh} km/h`, x(last.lon) + 8, y(last.lat) - 8);
  });
  const seen = silent.map((v) => {
    const p = v.last_position, text = `${v.plate} ${ctx.t("last_seen").replace("{age}", ageText(ctx.hubNow() - p.ts))}`;
    const tier = tiers.get(v.id);
    g.strokeStyle = tier ? TIER_COLOURS[tier] : "#7a8294"; g.lineWidth = tier ? 3 : 2;
    g.beginPath(); g.arc(x(p.lon), y(p.lat), 6, 0, 2 * Math.PI); g.stroke();
    dots.push({ id: v.id, x: x(p.lon), y: y(p.lat), tier: tier ?? "" });
    g.fillStyle = "#5b6375"; g.font = "12px sans-serif";
    label(text, x(p.lon) + 8, y(p.lat) - 8);
    return text;
  });
  c.dataset.silent = String(silent.length);
  c.dataset.vehicles = JSON.stringify(dots.map((d) => ({ id: d.id, x: Math.round(d.x), y: Math.round(d.y), tier: d.tier })));
  c.dataset.lastSeen = JSON.stringify(seen);
  c.dataset.tracks = String(tracks.filter((tr) => tr.length).length);
  c.dataset.labels = JSON.stringify(boxes.map((b) => [Math.round(b.x), Math.round(b.y), Math.round(b.w)]));
}
