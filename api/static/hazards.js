// The hidden-danger page (隐患排查治理, docs/hazards.md): the items of the key's enterprises
// (filtered by enterprise, status, grade, overdue), one item with its facts, its plan and its
// audit, and the steps this key may take now (the detail's `steps`, as the hub says them: a
// refusal is shown as the hub says it). The list is a box of its own height, the item's detail
// beside it (hazarddetail.js). An enterprise's key reports, plans, starts and asks for the
// review; the centre's grades, sets deadlines, accepts or rejects, and closes.
import { el, relabel, reportForm, stepForm } from "/static/hazardforms.js";
import { STATUSES, actKey, badges, drawDetail, due, label, message, missingLead, place, when } from "/static/hazarddetail.js";
import { HAZARD_STRINGS } from "/static/hazardstrings.js";
import { hubRequest } from "/static/hubrequest.js";

export { HAZARD_STRINGS };

const LIST_MAX = 500;  // the newest items read at once: the filters find older ones
const $ = (s) => document.querySelector(s);
let ctx = null;  // {t, key(), me(), tenantName(id)}
const filters = { tenant: "", status: "", grade: "", overdue: false };
let sites = [];      // GET /api/v1/sites: the key's
let items = null;    // the list shown (null: not read)
let item = null;     // the item open, as GET /api/v1/hazards/{id} answers
let form = null;     // the form open: {step, alarm, el}
let note = null;     // {text, lead, ok, where: "report" | "item"}
let listError = "";
let busy = false;
let seq = 0;         // the list's reads: an older answer is dropped
let itemSeq = 0;     // the item's reads and steps: an older answer is dropped
let drawn = null;    // what the list's rows were drawn of: {items, lang, sites}
let session = 0;     // a sign-out: what an earlier key asked is dropped
let timer = null;    // the open page's own refresh (REFRESH_MS)
// the open page reads its list again by itself (and the item open, unless a form is open on
// it): what another key reported or did meanwhile shows without a click; and at once when the
// browser's tab is shown again
const REFRESH_MS = 60000;

/** The key's party (api/hazards.py `_party`): the centre (an admin or operator key of every
 * tenant), the enterprise (any other writer: an admin or operator key limited to some tenants
 * too), or none (a viewer reads). */
export function party() {
  const me = ctx?.me();
  const role = me?.role;
  if (role === "admin" || role === "operator") return me.tenants == null ? "centre" : "enterprise";
  return role === "enterprise" ? "enterprise" : null;
}

const request = (path, init = {}) => hubRequest(ctx.key(), path, init);

export function initHazards(context) {
  ctx = context;
  $("#hazards-open").onclick = () => ($("#hazards-panel").hidden ? openHazards() : closeHazards());
  $("#hz-close").onclick = closeHazards;
  layout();
  // the list and the item open, read again (a step taken elsewhere shows)
  $("#hz-refresh").onclick = () => { loadList(); if (item) openItem(item.id, false); };
  $("#hz-report").onclick = async () => {
    if (!sites.length) sites = await request("/api/v1/sites").catch(() => []);
    openForm("report", null);
  };
  for (const [id, k] of [["#hz-tenant", "tenant"], ["#hz-status", "status"], ["#hz-grade", "grade"]]) {
    $(id).onchange = (e) => { filters[k] = e.target.value; loadList(); };
  }
  $("#hz-overdue").onchange = (e) => { filters.overdue = e.target.checked; loadList(); };
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
}

/** The list (and the item open, unless a form is open) read again, quietly: the list redrawn
 * only when it changed, kept when the hub cannot be read. Not while the page is closed or hidden. */
function refresh() {
  if ($("#hazards-panel").hidden || document.hidden || busy || !ctx?.key()) return;
  loadList(true);
  if (item && !form) openItem(item.id, false);
}

export async function openHazards() {
  $("#hazards-panel").hidden = false;
  timer ??= setInterval(refresh, REFRESH_MS);
  $("#hazards-open").setAttribute("aria-expanded", "true");
  renderHazards();
  $("#hazards-panel").scrollIntoView({ block: "start" });
  const mine = session;
  const got = await request("/api/v1/sites").catch(() => []);
  if (mine !== session) return;
  sites = got;
  await loadList();
}

function stopRefresh() {
  clearInterval(timer);
  timer = null;
}

function closeHazards() {
  stopRefresh();
  $("#hazards-panel").hidden = true;
  $("#hazards-open").setAttribute("aria-expanded", "false");
  $("#hazards-open").focus();
}

/** Forget everything of the key (a sign-out): nothing of it for the next key. */
export function clearHazards() {
  seq++; itemSeq++; session++;
  stopRefresh();
  Object.assign(filters, { tenant: "", status: "", grade: "", overdue: false });
  sites = []; items = null; item = null; form = null; note = null; listError = ""; busy = false;
  $("#hazards-panel").hidden = true;
  $("#hazards-open").setAttribute("aria-expanded", "false");
  $("#hz-overdue").checked = false;
  renderHazards();
}

/** The button of an alarm's detail that reports it as a hidden danger (`from_alarm`), for a
 * key that may report; for a hidden danger's own deadline alarm (its point `hazard:<id>`), the
 * button that opens its item instead. */
export function reportFromAlarm(a) {
  const own = String(a.side).startsWith("hazard_") && /^hazard:(\d+)$/.exec(String(a.sensor));
  if (own) {
    const b = el("button", "hz-open-item", ctx.t("hz_open_item").replace("{id}", own[1]));
    b.type = "button";
    b.dataset.hazard = own[1];
    b.onclick = (e) => {
      e.stopPropagation();
      openHazards().catch(() => {});
      openItem(Number(own[1])).catch(() => {});
    };
    return b;
  }
  if (!party() || String(a.side).startsWith("hazard_")) return null;
  const b = el("button", "hz-from-alarm", ctx.t("hz_report_alarm"));
  b.type = "button";
  b.dataset.alarm = String(a.id);
  b.onclick = (e) => {
    e.stopPropagation();
    openHazards().catch(() => {});
    openForm("report", a);
  };
  return b;
}

async function loadList(quiet = false) {
  const q = new URLSearchParams();
  for (const k of ["tenant", "status", "grade"]) if (filters[k]) q.set(k, filters[k]);
  if (filters.overdue) q.set("overdue", "true");
  q.set("limit", String(LIST_MAX));
  const mine = ++seq;
  try {
    const got = await request(`/api/v1/hazards?${q}`);
    if (mine !== seq) return;
    if (!quiet || JSON.stringify(got) !== JSON.stringify(items)) items = got;
    listError = "";
  } catch (e) {
    if (mine !== seq) return;
    if (!quiet || !items) items = [];  // (a quiet read that failed keeps the list shown)
    listError = e.message;
  }
  renderHazards();
}

/** The list in a box of its own height, the item's detail beside it (above it on a narrow
 * screen): an item opened is seen without scrolling the page, and the alarms below stay near. */
function layout() {
  if ($(".hz-main")) return;
  const main = el("div", "hz-main"), col = el("div", "hz-listcol"), box = el("div", "hz-listbox");
  $("#hz-list").before(main);
  box.append($("#hz-list"));
  col.append(box, $("#hz-empty"), $("#hz-loading"), $("#hz-more"), $("#hz-list-error"));
  main.append($("#hz-detail"), col);
}

/** Read item `id` and show it (`focus`: its heading takes the focus); the latest read wins. A
 * form open on it stays while the item is as it was; a changed item drops it. */
async function openItem(id, focus = true) {
  const mine = ++itemSeq, was = session;
  try {
    const got = await request(`/api/v1/hazards/${id}`);
    if (mine !== itemSeq || was !== session) return;
    const same = got.id === item?.id && got.updated_at === item.updated_at;
    if (form && form.step !== "report" && !same) form = null;
    item = got;
    if (note?.where === "item" && !same) note = null;  // (a step's answer stays while it holds)
  } catch (e) {
    if (mine !== itemSeq || was !== session) return;
    note = { text: ctx.t("hz_error").replace("{e}", e.message), ok: false, where: "item" };
  }
  renderHazards();
  if (focus) $("#hz-detail h3")?.focus();
}

// a form left (Cancel, Escape): the focus back on the button that opened it
function cancelForm() {
  const step = form?.step;
  form = null;
  renderHazards();
  (step === "report" ? $("#hz-report") : $(`#hz-detail .hz-act[data-step="${step}"]`))?.focus();
}

function openForm(step, alarm) {
  const t = ctx.t, cancel = cancelForm;
  const made = step === "report"
    ? reportForm(t, sites, filters.tenant, alarm, cancel, ctx.tenantName)
    : stepForm(t, item, step, cancel);
  made.onsubmit = (e) => { e.preventDefault(); submit(); };
  form = { step, alarm, el: made };
  note = null;
  renderHazards();
  made.querySelector("input:not([type=hidden]):not([hidden]), select, textarea")?.focus();
}

/** Send the open form; the hub's answer is shown: the item as it is now, or its refusal. */
async function submit() {
  if (busy || !form) return;
  const { step } = form, where = step === "report" ? "report" : "item";
  const path = step === "report" ? "/api/v1/hazards" : `/api/v1/hazards/${item.id}/${step}`;
  busy = true;
  renderHazards();
  const mine = session;
  try {
    const got = await request(path, { method: "POST", body: JSON.stringify(form.el.body()) });
    if (mine !== session) return;
    item = got; form = null; itemSeq++;  // (a read asked before the step is older)
    requestAnimationFrame(() => $("#hz-detail h3")?.focus());  // the item as it is now
    note = { text: ctx.t("hz_done").replace("{what}", `${ctx.t(actKey(step === "report" ? "report" : step))} #${got.id}`), ok: true, where: "item" };
    loadList();
  } catch (e) {
    if (mine !== session) return;
    // the hub's refusal as it says it; no answer (a network error, the 20 s passed): the hub
    // may have taken it, so the list is read again and the key told to look before sending again
    const text = e.status ? ctx.t("hz_refused").replace("{status}", String(e.status)).replace("{why}", e.why)
      : ctx.t("hz_unsure").replace("{e}", e.message);
    if (!e.status) loadList(true);
    note = { text, lead: e.status === 422 ? missingLead(ctx.t, e.why) : "", ok: false, where };
  } finally {
    if (mine === session) busy = false;
  }
  renderHazards();
}

const siteName = (tenant, id) => {
  const s = sites.find((x) => x.tenant === tenant && x.id === id);
  return s?.name ? `${s.name} (${id})` : id;
};
const statusText = (s) => label(ctx.t, `hz_st_${s}`, s);
const gradeText = (g) => label(ctx.t, `hz_gr_${g}`, g);

function fillSelect(select, choices, all) {
  const sig = JSON.stringify([choices, all]);
  if (select.dataset.sig !== sig) {
    select.replaceChildren(Object.assign(el("option", "", all), { value: "" }),
      ...choices.map(([v, text]) => Object.assign(el("option", "", text), { value: v })));
    select.dataset.sig = sig;
  }
  select.value = [...select.options].some((o) => o.value === select.value) ? select.value : "";
}

function renderControls() {
  const t = ctx.t, tenants = [...new Set(sites.map((s) => s.tenant))];
  fillSelect($("#hz-tenant"), tenants.map((x) => [x, ctx.tenantName(x)]), t("hz_all_tenants"));
  $("#hz-tenant").value = filters.tenant;
  $("#hz-tenant-wrap").hidden = tenants.length < 2;  // an enterprise's own key: its own items
  fillSelect($("#hz-status"), STATUSES.map((s) => [s, statusText(s)]), t("hz_all_status"));
  $("#hz-status").value = filters.status;
  fillSelect($("#hz-grade"), ["general", "major"].map((g) => [g, gradeText(g)]), t("hz_all_grades"));
  $("#hz-grade").value = filters.grade;
  $("#hz-report").hidden = !party();
}

/** The list's rows, drawn anew only when the list read or the language changed: opening an item
 * only marks its row. */
function renderList() {
  const t = ctx.t, body = $("#hz-list tbody"), lang = document.documentElement.lang;
  if (drawn?.items !== items || drawn.lang !== lang || drawn.sites !== sites) drawRows(t, body);
  drawn = { items, lang, sites };
  for (const tr of body.children) tr.classList.toggle("on", tr.dataset.hazard === String(item?.id));
  $("#hz-empty").hidden = !items || items.length > 0 || !!listError;
  $("#hz-loading").hidden = items !== null || !!listError;
  $("#hz-more").hidden = (items?.length ?? 0) < LIST_MAX;
  $("#hz-more").textContent = t("hz_more").replace("{n}", String(LIST_MAX));
  $("#hz-list-error").hidden = !listError;
  $("#hz-list-error").textContent = listError ? t("hz_error").replace("{e}", listError) : "";
}

function drawRows(t, body) {
  const had = document.activeElement?.classList.contains("hz-open") ? document.activeElement.closest("tr")?.dataset.hazard : null;
  body.replaceChildren();
  for (const x of items ?? []) {
    const tr = el("tr", "hz-row");
    tr.dataset.hazard = String(x.id);
    const open = el("button", "hz-open", `#${x.id}`);
    open.type = "button";
    open.setAttribute("aria-label", `${t("hz_details")} #${x.id}`);
    open.onclick = (e) => { e.stopPropagation(); openItem(x.id); };
    const grade = gradeText(x.grade) + (x.status === "reported" ? t("hz_assessed") : "");
    const st = el("td", `hz-status hz-st-${x.status}`, statusText(x.status));
    st.dataset.status = x.status;
    const dl = el("td", "hz-deadline", due(x.deadline));
    dl.append(...badges(t, x));
    const cells = [open, ctx.tenantName(x.tenant), siteName(x.tenant, x.site), x.description, grade];
    for (const c of cells) { const td = el("td"); td.append(c); tr.append(td); }
    tr.children[3].className = "hz-desc";
    tr.children[4].className = "hz-grade";
    tr.append(st, dl, el("td", "", when(x.reported_at)));
    tr.onclick = () => openItem(x.id);
    body.append(tr);
    if (had === tr.dataset.hazard) open.focus();
  }
}

export function renderHazards() {
  if (!ctx || !$("#hazards-panel")) return;
  const lang = document.documentElement.lang;
  if (form && form.el.dataset.lang !== lang) {  // the form anew in the page's language
    const cancel = cancelForm;
    const fresh = form.step === "report"
      ? reportForm(ctx.t, sites, filters.tenant, form.alarm, cancel, ctx.tenantName) : stepForm(ctx.t, item, form.step, cancel);
    fresh.onsubmit = (e) => { e.preventDefault(); submit(); };
    form.el.replaceWith(relabel(form.el, fresh));
    form.el = fresh;
  }
  renderControls();
  const top = $("#hz-form");
  place(top, [...(form?.step === "report" ? [form.el] : []), message(note, "report")]);
  if (form) form.el.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = busy; });
  renderList();
  drawDetail($("#hz-detail"), { t: ctx.t, item, party: party(), form, busy, note, tenantName: ctx.tenantName, siteName,
    onStep: (step) => (form?.step === step ? (form = null, renderHazards()) : openForm(step, null)) });
}
