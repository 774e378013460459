// The sensor tiles of the operator dashboard: one per sensor, by enterprise and site, each
// reading as its operator says it (有电/无电, 旁路/联锁动作), honest about quality and age.
import { alarms, fmtCst } from "/static/alarms.js";
import { showTrend } from "/static/trend.js";

const $ = (s) => document.querySelector(s);
// what the page gives the tiles: t, clockCst(ms), hubNow(), sensors (id -> sensor), latest
// (id -> reading), tenant() (the enterprise chosen, or null), live(), shape() (the language and
// the sensors' version: the tiles are built anew when it changes), onBuilt()
let ctx = null;
export function initTiles(c) { ctx = c; }

// a reading older (by the hub's clock) than the sensor's no-data time (`no_data_s`) is shown as
// stale, not as the present value; without one, older than the most its device stays silent
// when it reports on change (`max_silent_s`, and a little for the way), else than 5 min
export const STALE_DEFAULT_MS = 5 * 60e3;
export const SILENT_SLACK_MS = 15e3;
const staleAfter = (s) => (s?.no_data_s ? s.no_data_s * 1000
  : s?.report_on_change && s?.max_silent_s ? s.max_silent_s * 1000 + SILENT_SLACK_MS : STALE_DEFAULT_MS);
export const kindName = (k) => (ctx.t(`k_${k}`) === `k_${k}` ? k : ctx.t(`k_${k}`));
const fmtVal = (v, unit) => (v === null || v === undefined ? "—" : `${Number(v.toFixed(3))} ${unit || ""}`);
// a sensor's reading as its operator says it: a feed point's 1 or 0 is 有电 or 无电, not "1 on/off";
// an interlock's state (a flag or a state word) the state its rule's levels name at that value
// (旁路, 联锁动作), else 正常, not "0 联锁"
const flagState = (v, s) => {
  const reached = (s.levels || []).filter((l) => l.above !== null && l.above !== undefined && v >= l.above)
    .sort((a, b) => b.above - a.above)[0];
  if (!reached) return ctx.t("flag_normal");
  return ctx.t(reached.name.startsWith("bypass") ? "flag_bypassed" : reached.name.startsWith("trip") ? "flag_tripped" : "flag_on");
};
const fmtReading = (v, s) => {
  if (s.kind === "power_feed" && (v === 0 || v === 1)) return ctx.t(v ? "fed" : "unfed");
  if (s.kind === "interlock" && Number.isInteger(v) && v >= 0 && v <= 255) return flagState(v, s);
  return fmtVal(v, s.unit);
};

/** A sensor's name for people: its placement tag and location ("T1 · 1301 回风巷"), "" when
 * the configuration gives neither. */
export const sensorLabel = (s) => [s.tag, s.location].filter(Boolean).join(" · ");

// the tiles are built once per list of sensors and language, and then only those whose
// reading, quality, alarm or liveness changed are written (2,000 tiles rebuilt on every
// reading kept the page busy)
const tileEls = new Map();   // sensor id -> {el, v, sig}
let tilesBuilt = "";

function buildTiles(root) {
  // by enterprise and site (two enterprises may give a site the same id), headed by their
  // names where the configuration gives them
  const bySite = new Map();
  for (const s of ctx.sensors.values()) {
    if (ctx.tenant() && s.tenant !== ctx.tenant()) continue;
    const k = `${s.tenant}/${s.site}`;
    if (!bySite.has(k)) bySite.set(k, { label: `${s.tenant_name || s.tenant} / ${s.site_name || s.site}`, list: [] });
    bySite.get(k).list.push(s);
  }
  root.innerHTML = "";
  tileEls.clear();
  for (const [site, { label: heading, list }] of bySite) {
    const div = document.createElement("div");
    div.className = "site";
    div.dataset.site = site;
    div.innerHTML = `<h3></h3><div class="tiles"></div>`;
    div.querySelector("h3").textContent = heading;
    const tiles = div.querySelector(".tiles");
    for (const s of list) {
      const tile = document.createElement("div");
      tile.dataset.sensor = s.id;
      tile.innerHTML = `<div class="n"></div><div class="id"></div><div class="v"></div><div class="k"></div>`;
      // the sensor as the mine names it (its tag and location, where the configuration gives
      // them: "T1 · 1301 回风巷"), its id smaller beneath; the id alone when it has neither
      const label = sensorLabel(s);
      tile.querySelector(".n").textContent = label || s.id;
      tile.querySelector(".id").textContent = label ? s.id : "";
      tile.querySelector(".id").hidden = !label;
      tile.querySelector(".k").textContent = kindName(s.kind);
      tile.onclick = () => showTrend(s.id);
      tiles.appendChild(tile);
      tileEls.set(s.id, { el: tile, v: tile.querySelector(".v"), sig: "" });
    }
    root.appendChild(div);
  }
}

export function renderTiles() {
  const root = $("#sites");
  if (!root) return;
  // a key without sensors (a transport company's with no speed sensors yet) is shown no empty
  // tiles and trend: they come with the first sensor
  $("#sites-panel").hidden = $("#trend-panel").hidden = !ctx.sensors.size;
  const shape = ctx.shape();
  if (shape !== tilesBuilt) { buildTiles(root); tilesBuilt = shape; ctx.onBuilt(); }
  const activeSensors = new Set();
  for (const a of alarms.values()) if (a.state === "active") activeSensors.add(a.sensor);
  const now = ctx.hubNow();
  for (const s of ctx.sensors.values()) {
    const rec = tileEls.get(s.id);
    if (!rec) continue;
    const l = ctx.latest.get(s.id);
    // a good reading older than the sensor's no-data time is stale by age
    const aged = !!l && l.quality_name === "good" && now - l.ts > staleAfter(s);
    const q = !l ? "none" : aged ? "stale" : l.quality_name;
    const alarm = activeSensors.has(s.id);
    const out = !!s.out_of_service;
    const sig = `${q} ${l?.ts} ${l?.value} ${alarm} ${ctx.live()} ${out} ${s.out_of_service_since}`;
    if (sig === rec.sig) continue;
    rec.sig = sig;
    const tile = rec.el;
    tile.className = `tile q-${q}${l ? "" : " none"}${aged ? " aged" : ""}${alarm ? " alarm" : ""}${ctx.live() ? "" : " offline"}${out ? " oos" : ""}`;
    tile.dataset.quality = q;
    tile.dataset.oos = out ? "1" : "";
    // honest quality: a reading that is not good shows its quality, never a stale number
    rec.v.textContent = !l ? ctx.t("nodata") : q === "good" ? fmtReading(l.value, s) : ctx.t(q);
    tile.title = `${s.kind}${l ? ` · ${ctx.t("last_reading")} ${fmtReading(l.value, s)} ${ctx.clockCst(l.ts)}` : ""}`;
    // out of service: its value raises no alarm, whatever it reads (a dispatcher took a quiet
    // tile for a safe one); who took it out, why and since when in its tooltip
    tile.querySelector(".oos-badge")?.remove();
    if (out) {
      tile.prepend(Object.assign(document.createElement("div"), { className: "oos-badge", textContent: ctx.t("oos_tile") }));
      tile.title += `\n${ctx.t("oos_since")} ${s.out_of_service_since ? fmtCst(s.out_of_service_since) : ""}`
        + ` · ${s.out_of_service_by ?? ""}: ${s.out_of_service_reason ?? ""}`;
    }
    // the stream is down: what the tile shows may no longer be so
    tile.querySelector(".off")?.remove();
    if (!ctx.live()) tile.append(Object.assign(document.createElement("div"), { className: "off", textContent: ctx.t("offline") }));
  }
}

