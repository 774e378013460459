// The shift handover (交接班): one view of GET /api/v1/handover for a dispatcher handing over,
// the last 8 or 12 hours or a range, one site or all; printed on paper with the signatures of
// who hands over and who takes over (the page's print stylesheet prints this panel alone).
import { fmtAlarmValue, fmtCst, fromInput, kindLevel, pointNames, toInput } from "/static/alarmformat.js";

export const HANDOVER_STRINGS = {
  zh: { handover: "交接班", ho_title: "交接班记录", ho_range: "时段", ho_all_sites: "全部场所",
        ho_refresh: "刷新", ho_print: "打印", ho_close: "关闭", ho_period: "时段（北京时间）",
        ho_site: "场所", ho_made: "生成时间", ho_by: "生成人", ho_loading: "正在读取…",
        ho_error: "读取失败：{e}", ho_none: "无",
        ho_raised: "本班报警", ho_total: "合计", ho_acked: "已确认", ho_open: "未结束",
        ho_overdue_ever: "曾超期", ho_shelved_n: "曾搁置",
        ho_red: "本班红色报警（含保护动作未确认）", ho_active_unack: "报警中·未确认", ho_active_ack: "报警中·已确认",
        ho_returned_unack: "已恢复·未确认", ho_overdue: "处置超期", ho_review: "待中心审核销号", ho_centre_unack: "待本中心确认",
        ho_shelved: "搁置中的测点", ho_oos: "停用的测点", ho_chattering: "频繁报警的测点",
        ho_more: "仅列出最新 {n} 条，其余请在报警列表中查看",
        ho_peak: "最高级别读数", ho_due: "期限", ho_by_whom: "操作人", ho_until: "至", ho_since: "自",
        ho_why: "原因", ho_kind: "类型", ho_activations: "本班报警次数", ho_worst: "60 秒内最多",
        ho_worst_at: "{n}（{t} 起）", ho_first: "本班首次报警（北京时间）",
        ho_giver: "交班人：", ho_taker: "接班人：", ho_signed_at: "交接时间：",
        ho_side_above: "超上限", ho_side_below: "低于下限", ho_site_vehicles: "车辆",
        ho_repeats: "{n} 条 · 首次 {first} · 末次 {last}", ho_remarks: "交班备注",
        ho_remarks_ph: "交班人的备注（未处理完的事项、现场情况、需接班人跟进的事）；随交接班记录打印，仅保存在本浏览器标签页，不上传" },
  en: { handover: "Handover", ho_title: "Shift handover", ho_range: "Range",
        ho_all_sites: "all sites", ho_refresh: "Refresh", ho_print: "Print", ho_close: "Close",
        ho_period: "Period (CST)", ho_site: "Site", ho_made: "Made", ho_by: "By",
        ho_loading: "reading…", ho_error: "could not read it: {e}", ho_none: "none",
        ho_raised: "Raised in the shift", ho_total: "total", ho_acked: "acknowledged",
        ho_open: "still open", ho_overdue_ever: "ever overdue", ho_shelved_n: "shelved",
        ho_red: "Red alarms of the shift (failed protective actions included)", ho_active_unack: "Active, unacknowledged", ho_active_ack: "Active, acknowledged",
        ho_returned_unack: "Returned, unacknowledged", ho_overdue: "Disposal overdue",
        ho_review: "Closings waiting for the centre's review",
        ho_centre_unack: "Waiting for the centre's acknowledgement",
        ho_shelved: "Points shelved", ho_oos: "Sensors out of service",
        ho_chattering: "Points chattering most",
        ho_more: "only the newest {n} listed: see the alarm list for the rest",
        ho_peak: "At peak level", ho_due: "due", ho_by_whom: "By", ho_until: "Until", ho_since: "Since",
        ho_why: "Reason", ho_kind: "Kind", ho_activations: "raised in the shift",
        ho_worst: "most within 60 s", ho_worst_at: "{n} (from {t})",
        ho_first: "First in the shift (CST)", ho_giver: "Handed over by:", ho_taker: "Taken over by:",
        ho_signed_at: "At:", ho_side_above: "above a high limit", ho_side_below: "below a low limit", ho_site_vehicles: "vehicles",
        ho_repeats: "{n} alarms · first {first} · last {last}", ho_remarks: "Handover remarks",
        ho_remarks_ph: "the handing-over operator's remarks (what is left to do, the sites' state, what to follow up); printed with the handover, kept in this browser tab only, not sent to the hub" },
};

const TIERS = ["red", "orange", "yellow", "blue"];
const LISTS = ["red", "active_unack", "active_ack", "returned_unack", "overdue", "review"];
const $ = (s) => document.querySelector(s);
let ctx = null;  // {t, api(path), sites(): [[`tenant/site`, label]], me(), centre(), tenant(): {id, label} | null, kind(k), place(sensor)}
let choice = { hours: 8 };  // or {start, end}: ms
let shown = null;    // the answer shown
let shownSite = "";  // the label of the site it was asked for ("" for every site)
let shownTenant = "";  // the label of the enterprise it was asked for ("" for every one)
let error = "";
let seq = 0;
// the operator's own remarks (交班备注): printed with the handover; kept in this tab's session
// storage (a reload keeps them), forgotten at a sign-out, never sent to the hub
const REMARKS_KEY = "hh-ho-remarks";
let remarks = sessionStorage.getItem(REMARKS_KEY) ?? "";
let remarksBox = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}


export function initHandover(context) {
  ctx = context;
  $("#handover-open").onclick = () => openHandover();
  $("#handover-close").onclick = () => showPanel(false);
  $("#handover-refresh").onclick = () => loadHandover();
  $("#handover-print").onclick = () => window.print();
  $("#handover-site").onchange = () => loadHandover();
  $("#handover-span").addEventListener("click", (e) => {
    const h = e.target?.dataset?.hours;
    if (!h) return;
    if (h === "range") {
      const end = shown?.end ?? Date.now(), start = shown?.start ?? end - 8 * 3600e3;
      $("#handover-from").value = toInput(start); $("#handover-to").value = toInput(end);
      choice = { start, end };
    } else {
      choice = { hours: Number(h) };
    }
    loadHandover();
  });
  for (const id of ["#handover-from", "#handover-to"]) {
    $(id).onchange = () => {
      const start = fromInput($("#handover-from").value), end = fromInput($("#handover-to").value);
      if (Number.isFinite(start) && Number.isFinite(end) && end > start) { choice = { start, end }; loadHandover(); }
    };
  }
}

// while the panel is open the page prints it alone (app.css, @media print)
function showPanel(on) {
  $("#handover-panel").hidden = !on;
  document.body.classList.toggle("ho-printing", on);
}

/** Show the panel and read the handover afresh. */
export async function openHandover() {
  const panel = $("#handover-panel");
  showPanel(true);
  fillSites();
  panel.scrollIntoView({ block: "start" });
  await loadHandover();
}

/** Forget what was shown (a key signed out): nothing of it for the next key. */
export function clearHandover() {
  seq++; shown = null; shownSite = ""; shownTenant = ""; error = ""; choice = { hours: 8 };
  remarks = ""; sessionStorage.removeItem(REMARKS_KEY);
  showPanel(false);
  $("#handover-site").innerHTML = "";
  renderHandover();
}

function fillSites() {
  const select = $("#handover-site"), was = select.value;
  const one = ctx.tenant?.();  // the enterprise chosen in the header: its sites alone
  select.innerHTML = "";
  select.append(Object.assign(el("option", "", ctx.t("ho_all_sites")), { value: "" }));
  for (const [id, label] of ctx.sites()) {
    if (one && !id.startsWith(`${one.id}/`)) continue;
    select.append(Object.assign(el("option", "", label), { value: id }));
  }
  select.value = [...select.options].some((o) => o.value === was) ? was : "";
}

/** The enterprise chosen in the header changed: an open handover is read again for it. */
export function handoverTenantChanged() {
  if ($("#handover-panel").hidden) return;
  fillSites();
  loadHandover().catch(() => {});
}

export async function loadHandover() {
  const q = new URLSearchParams();
  if (choice.hours) q.set("hours", String(choice.hours));
  else { q.set("start", String(Math.round(choice.start))); q.set("end", String(Math.round(choice.end))); }
  // a site is its enterprise's: asked with its tenant (site= alone spans the enterprises that
  // share the id; the hub refuses it to a key that sees them both)
  const select = $("#handover-site"), chosen = select.value;
  if (chosen) {
    const at = chosen.indexOf("/");
    q.set("tenant", chosen.slice(0, at));
    q.set("site", chosen.slice(at + 1));
  }
  const label = chosen ? select.selectedOptions[0]?.textContent ?? chosen : "";
  // every site of the enterprise chosen in the header
  const one = ctx.tenant?.();
  if (!chosen && one) q.set("tenant", one.id);
  const enterprise = !chosen && one ? one.label : "";
  const mine = ++seq;
  error = "";
  $("#handover-body").dataset.loading = "1";
  renderHandover();
  try {
    const got = await ctx.api(`/api/v1/handover?${q}`);
    if (mine !== seq) return;
    shown = got; shownSite = label; shownTenant = enterprise;
  } catch (e) {
    if (mine !== seq) return;
    shown = null; shownSite = ""; shownTenant = ""; error = e?.message ?? String(e);
  }
  delete $("#handover-body").dataset.loading;
  renderHandover();
}

function table(head, rows) {
  const tb = el("table", "ho-table");
  const tr = el("tr");
  for (const h of head) tr.append(el("th", "", h));
  tb.append(el("thead"));
  tb.tHead.append(tr);
  const body = el("tbody");
  for (const r of rows) {
    const row = el("tr");
    for (const c of r) {
      const td = el("td");
      if (c instanceof Node) td.append(c); else td.textContent = c ?? "";
      row.append(td);
    }
    body.append(row);
  }
  tb.append(body);
  return tb;
}

function sensorCell(sensor, location, where, device = "") {
  const d = el("div", "", location ? `${sensor} · ${location}` : sensor);
  if (device) d.append(el("div", "device", device));
  if (where) d.append(el("div", "where", where));
  return d;
}

function tierCell(tier) {
  const d = el("span", "");
  d.append(el("span", `tier tier-${tier}`), ` ${ctx.t(`tier_${tier}`)}`);
  return d;
}

const TIER_RANK = { red: 4, orange: 3, yellow: 2, blue: 1 };

/** A list's alarms with the repeated alarms of one point (its enterprise, sensor, rule and kind)
 * together: the worst of them (the highest peak tier, the newest of those) with how many, the
 * first and the last start; in the order of each point's first in the list. */
export function groupByPoint(alarms) {
  const groups = new Map();
  for (const a of alarms) {
    const k = JSON.stringify([a.tenant, a.sensor, a.rule, a.side]);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(a);
  }
  return [...groups.values()].map((list) => {
    const rank = (a) => TIER_RANK[a.peak_tier ?? a.tier] ?? 0;
    const worst = list.reduce((w, a) => (rank(a) > rank(w) || (rank(a) === rank(w) && a.started_ts > w.started_ts) ? a : w));
    const starts = list.map((a) => a.started_ts);
    return { a: worst, n: list.length, first: Math.min(...starts), last: Math.max(...starts) };
  });
}

function alarmRows(list) {
  const t = ctx.t;
  return groupByPoint(list.alarms).map(({ a, n, first, last }) => {
    const peaked = a.peak_ts !== null && a.peak_ts !== undefined;
    const disp = `${t(`disp_${a.disposal}`)}${a.overdue ? ` · ${t("overdue")}` : ""}`
      + (a.disposal_due && a.disposal !== "closed" ? ` (${t("ho_due")} ${fmtCst(a.disposal_due).slice(5, 16)})` : "");
    const where = ctx.centre() ? `${a.tenant_name || a.tenant} · ${a.site_name || siteWord(a.site)}` : "";
    const started = n > 1 ? t("ho_repeats").replace("{n}", String(n)).replace("{first}", fmtCst(first).slice(5, 16))
      .replace("{last}", fmtCst(last).slice(5, 16)) : fmtCst(a.started_ts);
    // the point and its device by the registry's names, the ids kept (as the alarm list)
    const named = pointNames(a, t);
    // the worst it was, all of it: the peak tier and value beside the peak level's name (a
    // level-2 leak back at level 1 printed "红色 · 一级 · 50.2 %LEL"), the last level's where the
    // journal says no peak
    const level = kindLevel(peaked && a.peak_level_name ? { ...a, level_name: a.peak_level_name } : a, t);
    return [tierCell(a.peak_tier ?? a.tier), sensorCell(named.point, "", where, named.device), level,
      fmtAlarmValue(peaked ? a.peak_value : a.value, a.value_unit, t), started, t(`isa_${a.isa_state}`), disp];
  });
}

// the site of vehicles (its id `vehicles`) in the page's language
const siteWord = (site) => (site === "vehicles" ? ctx.t("ho_site_vehicles") : site);

function section(key, count, content, note = "") {
  const s = el("section", "ho-section");
  s.dataset.section = key;
  s.append(el("h3", "", `${ctx.t(`ho_${key}`)} (${count})`));
  if (!count) s.append(el("p", "empty", ctx.t("ho_none")));
  else s.append(content);
  if (note) s.append(el("p", "hint", note));
  return s;
}

export function renderHandover() {
  const body = $("#handover-body");
  if (!body || !ctx) return;
  const t = ctx.t;
  body.innerHTML = "";
  document.querySelectorAll("#handover-span button").forEach((b) => b.setAttribute("aria-pressed",
    String(b.dataset.hours === (choice.hours ? String(choice.hours) : "range"))));
  $("#handover-range").hidden = !!choice.hours;
  const all = $("#handover-site").options[0];
  if (all) all.textContent = t("ho_all_sites");
  if (body.dataset.loading && !shown) { body.append(el("p", "empty", t("ho_loading"))); return; }
  if (error) { body.append(el("p", "error", t("ho_error").replace("{e}", error))); return; }
  if (!shown) return;
  const h = shown;
  body.append(el("h2", "ho-print-title", `${t("ho_title")} · hazardhub`));
  const facts = el("dl", "facts");
  const site = h.site !== null ? shownSite || h.site
    : shownTenant ? `${shownTenant} / ${t("ho_all_sites")}` : t("ho_all_sites");
  for (const [k, v] of [["ho_period", `${fmtCst(h.start).slice(0, 16)} – ${fmtCst(h.end).slice(0, 16)}`],
    ["ho_site", site], ["ho_made", fmtCst(h.now)], ["ho_by", ctx.me()?.name ?? ""]]) {
    facts.append(el("dt", "", t(k)), el("dd", "", v));
  }
  body.append(facts);
  // what the shift raised, by the highest tier each reached, and how it was handled
  const head0 = [t("ho_total"), ...TIERS.map((x) => t(`tier_${x}`)), t("ho_acked"), t("ho_open"),
    t("ho_overdue_ever"), t("ho_shelved_n")];
  const counts = (r) => [String(r.raised), ...TIERS.map((x) => String(r.peak_tier[x] ?? 0)), String(r.acknowledged),
    String(r.open), String(r.overdue_ever), String(r.shelved)];
  const raised = table(head0, [counts(h.raised)]);
  raised.classList.add("ho-raised");
  const s0 = el("section", "ho-section");
  s0.dataset.section = "raised";
  s0.append(el("h3", "", t("ho_raised")), raised);
  // a centre's shift: which enterprise raised what (a hub before the breakdown gives none)
  const by = h.raised_by_tenant ?? [];
  if (ctx.centre() && by.length) {
    const per = table([t("enterprise"), ...head0],
      by.map((x) => [x.tenant_name ? `${x.tenant_name} (${x.tenant})` : x.tenant, ...counts(x)]));
    per.classList.add("ho-raised-by");
    s0.append(per);
  }
  body.append(s0);
  const head = [t("tier"), t("sensor"), t("level"), t("ho_peak"), t("started_cst"), t("isa"), t("disposal")];
  // the centre's own acknowledgements waiting come first on its key's handover (the lists after
  // are the site's side); a hub of before has none
  for (const key of ctx.centre() ? ["centre_unack", ...LISTS] : LISTS) {
    const list = h[key];
    if (!list) continue;  // (a hub of before the centre's review has no `review`)
    const more = list.truncated ? t("ho_more").replace("{n}", String(list.count)) : "";
    body.append(section(key, list.count, table(head, alarmRows(list)), more));
  }
  // the enterprise and site by their names (the page's sites: "华兴化工 / 液氯罐区"), else ids
  const names = new Map(ctx.sites());
  const where = (x) => (ctx.centre() ? names.get(`${x.tenant}/${x.site}`) ?? `${x.tenant} · ${siteWord(x.site)}` : "");
  const kindOf = (side) => (side === "above" || side === "below" ? t(`ho_side_${side}`)
    : t(`kind_${side}`) === `kind_${side}` ? side : t(`kind_${side}`));
  const place = (x) => [x.tag, x.location].filter(Boolean).join(" · ");
  body.append(section("shelved", h.shelved.length, table(
    [t("tier"), t("sensor"), t("level"), t("ho_by_whom"), t("ho_since"), t("ho_until"), t("ho_why")],
    h.shelved.map((s) => [tierCell(s.tier), sensorCell(s.sensor, place(s), where(s)),
      kindLevel(s, t), s.by, fmtCst(s.since), fmtCst(s.until), s.reason]))));
  body.append(section("oos", h.out_of_service.length, table(
    [t("sensor"), t("ho_kind"), t("ho_by_whom"), t("ho_since"), t("ho_why")],
    h.out_of_service.map((o) => [sensorCell(o.sensor, place(o), where(o)), ctx.kind(o.kind), o.by,
      fmtCst(o.since), o.reason]))));
  // started: its first activation in the shift (a hub before `first_ts` gave the worst
  // minute's alone); the worst minute beside its count
  const clock = (ms) => fmtCst(ms).slice(11);
  body.append(section("chattering", h.chattering.length, table(
    [t("sensor"), t("ho_kind"), t("ho_activations"), t("ho_worst"), t("ho_first")],
    h.chattering.map((c) => [sensorCell(c.sensor, ctx.place(c.sensor), where(c)), kindOf(c.side), String(c.activations),
      t("ho_worst_at").replace("{n}", String(c.worst)).replace("{t}", clock(c.worst_start)),
      fmtCst(c.first_ts ?? c.worst_start)]))));
  // the operator's remarks: typed on screen, printed as text (a textarea prints cut)
  const notes = el("section", "ho-section ho-remarks");
  notes.dataset.section = "remarks";
  // (one textarea, kept over the redraws: what is being typed keeps its caret)
  if (!remarksBox) {
    remarksBox = el("textarea", "no-print");
    remarksBox.id = "handover-remarks"; remarksBox.rows = 3; remarksBox.maxLength = 2000;
    remarksBox.addEventListener("input", () => {
      remarks = remarksBox.value;
      document.querySelector(".ho-remarks-print").textContent = remarks;
      sessionStorage.setItem(REMARKS_KEY, remarks);
    });
  }
  if (remarksBox.value !== remarks) remarksBox.value = remarks;
  remarksBox.placeholder = t("ho_remarks_ph");
  remarksBox.setAttribute("aria-label", t("ho_remarks"));
  notes.append(el("h3", "", t("ho_remarks")), remarksBox, el("div", "ho-remarks-print", remarks));
  body.append(notes);
  // on paper: who handed over, who took over, when
  const sign = el("div", "ho-sign");
  for (const k of ["ho_giver", "ho_taker", "ho_signed_at"]) sign.append(el("span", "", t(k)), el("span", "ho-line"));
  body.append(sign);
}
