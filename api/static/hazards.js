// The hidden-danger page (隐患排查治理, docs/hazards.md): the items of the key's enterprises
// (filtered by enterprise, status, grade, overdue), one item with its facts, its plan and its
// audit, and the steps this key may take from the item's status (the hub decides: a refusal is
// shown as the hub says it). An enterprise's key reports, plans, starts and asks for the
// review; the centre's grades, sets deadlines, accepts or rejects, and closes.
import { fmtCst } from "/static/alarms.js";
import { PLAN, el, relabel, reportForm, stepForm } from "/static/hazardforms.js";
import { HAZARD_STRINGS } from "/static/hazardstrings.js";

export { HAZARD_STRINGS };

const STATUSES = ["reported", "graded", "rectifying", "review_requested", "accepted", "rejected", "closed"];
// who takes each step, from which statuses (alerts/hazardflow.py STEPS): the buttons shown
const OPEN = STATUSES.filter((s) => s !== "closed");
const STEPS = [
  ["grade", "centre", ["reported", "graded", "rectifying", "rejected", "review_requested"]],
  ["deadline", "centre", OPEN],
  ["plan", "enterprise", ["reported", "graded", "rectifying", "rejected"]],
  ["start", "enterprise", ["graded", "rejected"]],
  ["request-review", "enterprise", ["rectifying"]],
  ["accept", "centre", ["review_requested"]],
  ["reject", "centre", ["review_requested"]],
  ["close", "centre", ["accepted"]],
  ["comment", "both", STATUSES],
];
const LIST_MAX = 500;  // the newest items read at once: the filters find older ones
const actKey = (step) => `hz_act_${step.replace("-", "_")}`;
const $ = (s) => document.querySelector(s);
let ctx = null;  // {t, key(), me(), tenantName(id)}
const filters = { tenant: "", status: "", grade: "", overdue: false };
let sites = [];      // GET /api/v1/sites: the key's
let items = null;    // the list shown (null: not read)
let item = null;     // the item open, as GET /api/v1/hazards/{id} answers
let form = null;     // the form open: {step, alarm, el}
let note = null;     // {text, ok, where: "report" | "item"}
let listError = "";
let busy = false;
let seq = 0;         // the list's reads: an older answer is dropped
let session = 0;     // a sign-out: what an earlier key asked is dropped

/** The key's party: the centre (admin, operator), the enterprise, or none (a viewer reads). */
export function party() {
  const role = ctx?.me()?.role;
  return role === "admin" || role === "operator" ? "centre" : role === "enterprise" ? "enterprise" : null;
}

async function request(path, init = {}) {
  const headers = { Authorization: `Bearer ${ctx.key()}` };
  if (init.body) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { ...init, headers, signal: AbortSignal.timeout(20000) });
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const list = data?.errors;  // RFC 9457: `detail` says why; `errors` the fields at fault
    const why = Array.isArray(list) && list.length
      ? list.map((x) => `${(x.loc || []).slice(1).join(".")}: ${x.msg}`).join("; ") : data?.detail;
    throw Object.assign(new Error(`${r.status} ${why || r.statusText}`), { status: r.status, why: why || r.statusText });
  }
  return data;
}

export function initHazards(context) {
  ctx = context;
  $("#hazards-open").onclick = () => ($("#hazards-panel").hidden ? openHazards() : closeHazards());
  $("#hz-close").onclick = closeHazards;
  $("#hz-refresh").onclick = () => loadList();
  $("#hz-report").onclick = async () => {
    if (!sites.length) sites = await request("/api/v1/sites").catch(() => []);
    openForm("report", null);
  };
  for (const [id, k] of [["#hz-tenant", "tenant"], ["#hz-status", "status"], ["#hz-grade", "grade"]]) {
    $(id).onchange = (e) => { filters[k] = e.target.value; loadList(); };
  }
  $("#hz-overdue").onchange = (e) => { filters.overdue = e.target.checked; loadList(); };
}

export async function openHazards() {
  $("#hazards-panel").hidden = false;
  $("#hazards-open").setAttribute("aria-expanded", "true");
  renderHazards();
  $("#hazards-panel").scrollIntoView({ block: "start" });
  const mine = session;
  const got = await request("/api/v1/sites").catch(() => []);
  if (mine !== session) return;
  sites = got;
  await loadList();
}

function closeHazards() {
  $("#hazards-panel").hidden = true;
  $("#hazards-open").setAttribute("aria-expanded", "false");
  $("#hazards-open").focus();
}

/** Forget everything of the key (a sign-out): nothing of it for the next key. */
export function clearHazards() {
  seq++; session++;
  Object.assign(filters, { tenant: "", status: "", grade: "", overdue: false });
  sites = []; items = null; item = null; form = null; note = null; listError = ""; busy = false;
  $("#hazards-panel").hidden = true;
  $("#hazards-open").setAttribute("aria-expanded", "false");
  $("#hz-overdue").checked = false;
  renderHazards();
}

/** The button of an alarm's detail that reports it as a hidden danger (`from_alarm`), for a
 * key that may report; none for a hidden danger's own deadline alarm. */
export function reportFromAlarm(a) {
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

async function loadList() {
  const q = new URLSearchParams();
  for (const k of ["tenant", "status", "grade"]) if (filters[k]) q.set(k, filters[k]);
  if (filters.overdue) q.set("overdue", "true");
  q.set("limit", String(LIST_MAX));
  const mine = ++seq;
  try {
    const got = await request(`/api/v1/hazards?${q}`);
    if (mine !== seq) return;
    items = got; listError = "";
  } catch (e) {
    if (mine !== seq) return;
    items = []; listError = e.message;
  }
  renderHazards();
}

async function openItem(id) {
  const mine = session;
  try {
    const got = await request(`/api/v1/hazards/${id}`);
    if (mine !== session) return;
    item = got;
    if (form?.step !== "report") form = null;
    note = null;
  } catch (e) {
    if (mine !== session) return;
    note = { text: ctx.t("hz_error").replace("{e}", e.message), ok: false, where: "item" };
  }
  renderHazards();
  $("#hz-detail h3")?.focus();
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
    item = got; form = null;
    requestAnimationFrame(() => $("#hz-detail h3")?.focus());  // the item as it is now
    note = { text: ctx.t("hz_done").replace("{what}", `${ctx.t(actKey(step === "report" ? "report" : step))} #${got.id}`), ok: true, where: "item" };
    loadList();
  } catch (e) {
    if (mine !== session) return;
    // the hub's refusal as it says it (a network error as the browser says it)
    const text = e.status ? ctx.t("hz_refused").replace("{status}", String(e.status)).replace("{why}", e.why)
      : ctx.t("hz_error").replace("{e}", e.message);
    note = { text, ok: false, where };
  } finally {
    if (mine === session) busy = false;
  }
  renderHazards();
}

const siteName = (tenant, id) => {
  const s = sites.find((x) => x.tenant === tenant && x.id === id);
  return s?.name ? `${s.name} (${id})` : id;
};
const when = (ms) => (ms === null || ms === undefined ? "—" : fmtCst(ms).slice(0, 16));
const label = (k, fallback) => (ctx.t(k) === k ? fallback : ctx.t(k));
const statusText = (s) => label(`hz_st_${s}`, s);
const gradeText = (g) => label(`hz_gr_${g}`, g);

function badges(x) {
  const out = [];
  if (x.overdue) out.push(el("span", "overdue hz-overdue", ctx.t("hz_overdue")));
  if (x.review_overdue) out.push(el("span", "overdue hz-review-overdue", ctx.t("hz_review_overdue")));
  return out;
}

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

function renderList() {
  const t = ctx.t, body = $("#hz-list tbody");
  const had = document.activeElement?.classList.contains("hz-open") ? document.activeElement.closest("tr")?.dataset.hazard : null;
  body.replaceChildren();
  for (const x of items ?? []) {
    const tr = el("tr", `hz-row${item?.id === x.id ? " on" : ""}`);
    tr.dataset.hazard = String(x.id);
    const open = el("button", "hz-open", `#${x.id}`);
    open.type = "button";
    open.setAttribute("aria-label", `${t("hz_details")} #${x.id}`);
    open.onclick = (e) => { e.stopPropagation(); openItem(x.id); };
    const grade = gradeText(x.grade) + (x.status === "reported" ? t("hz_assessed") : "");
    const st = el("td", `hz-status hz-st-${x.status}`, statusText(x.status));
    st.dataset.status = x.status;
    const dl = el("td", "hz-deadline", when(x.deadline));
    dl.append(...badges(x));
    const cells = [open, ctx.tenantName(x.tenant), siteName(x.tenant, x.site), x.description, grade];
    for (const c of cells) { const td = el("td"); td.append(c); tr.append(td); }
    tr.children[3].className = "hz-desc";
    tr.children[4].className = "hz-grade";
    tr.append(st, dl, el("td", "", when(x.reported_at)));
    tr.onclick = () => openItem(x.id);
    body.append(tr);
    if (had === tr.dataset.hazard) open.focus();
  }
  $("#hz-empty").hidden = !items || items.length > 0 || !!listError;
  $("#hz-loading").hidden = items !== null || !!listError;
  $("#hz-more").hidden = (items?.length ?? 0) < LIST_MAX;
  $("#hz-more").textContent = t("hz_more").replace("{n}", String(LIST_MAX));
  $("#hz-list-error").hidden = !listError;
  $("#hz-list-error").textContent = listError ? t("hz_error").replace("{e}", listError) : "";
}

function changesText(changes) {
  const t = ctx.t, out = [];
  for (const [k, v] of Object.entries(changes ?? {})) {
    let said = v;
    if (k.endsWith("deadline")) said = when(v);
    else if (k === "grade") said = gradeText(v);
    else if (k === "production_stop") said = label(`hz_ps_${v}`, v);
    else if (k === "plan" && v && typeof v === "object") {
      said = PLAN.filter((p) => v[p]).map((p) => `${t(`hz_pl_${p}`)}: ${v[p]}`).join("; ");
    }
    out.push(`${label(`hz_f_${k}`, k)}: ${said ?? "—"}`);
  }
  return out.join("; ");
}

function renderDetail() {
  const t = ctx.t, box = $("#hz-detail");
  box.hidden = !item;
  if (!item) { box.replaceChildren(); return; }
  const x = item;
  const head = el("h3", "", `#${x.id} ${x.description}`);
  head.tabIndex = -1;
  const facts = el("dl", "facts hz-facts");
  const fact = (k, v) => {
    if (v === null || v === undefined || v === "") return;
    const dd = el("dd", "", typeof v === "string" ? v : "");
    if (typeof v !== "string") dd.append(...v);
    dd.dataset.fact = k;
    facts.append(el("dt", "", t(k)), dd);
  };
  fact("hz_f_status", [el("span", `hz-st-${x.status}`, statusText(x.status)), ...badges(x)]);
  fact("hz_f_tenant", ctx.tenantName(x.tenant));
  fact("hz_f_site", siteName(x.tenant, x.site));
  fact("hz_f_grade", gradeText(x.grade) + (x.status === "reported" ? t("hz_assessed") : ""));
  fact("hz_f_category", x.category);
  fact("hz_f_source", label(`hz_src_${x.source}`, x.source));
  fact("hz_f_location", x.location);
  fact("hz_f_found_at", when(x.found_at));
  fact("hz_f_found_by", x.found_by);
  fact("hz_f_reported_by", `${x.reported_by} · ${when(x.reported_at)}`);
  fact("hz_f_alarm_ids", x.alarm_ids.map((a) => `#${a}`).join(", "));
  fact("hz_f_sensor_ids", x.sensor_ids.join(", "));
  fact("hz_f_deadline", x.deadline === null ? "" : when(x.deadline));
  fact("hz_f_interim_measures", x.interim_measures);
  fact("hz_f_responsible_person", x.responsible_person);
  fact("hz_f_measures", x.measures);
  fact("hz_f_funds_yuan", x.funds_yuan === null ? "" : String(x.funds_yuan));
  fact("hz_f_production_stop", x.production_stop ? label(`hz_ps_${x.production_stop}`, x.production_stop) : "");
  fact("hz_f_requested_at", x.requested_at === null ? "" : when(x.requested_at));
  fact("hz_f_review_due", x.review_due === null ? "" : when(x.review_due));
  if (x.closed_at !== null) fact("hz_f_closed_by", `${x.closed_by ?? ""} · ${when(x.closed_at)}`);
  // a major item's governance plan, its six elements (those given)
  const plan = el("dl", "facts hz-plan-facts");
  for (const p of PLAN.filter((k) => x.plan?.[k])) plan.append(el("dt", "", t(`hz_pl_${p}`)), el("dd", "", x.plan[p]));
  // the steps of this key's party from the item's status (the hub has the last word)
  const acts = el("div", "acts hz-acts");
  acts.setAttribute("role", "group");
  acts.setAttribute("aria-label", t("hz_actions"));
  const mine = STEPS.filter(([, who, from]) => party() && (who === "both" || who === party()) && from.includes(x.status));
  for (const [step] of mine) {
    const b = el("button", `act hz-act${form?.step === step ? " on" : ""}`, t(actKey(step)));
    b.type = "button";
    b.dataset.step = step;
    b.setAttribute("aria-pressed", String(form?.step === step));
    b.disabled = busy;
    b.onclick = () => (form?.step === step ? (form = null, renderHazards()) : openForm(step, null));
    acts.append(b);
  }
  if (!mine.length) acts.append(el("span", "ro", t("hz_no_actions")));
  const audit = el("table", "journal hz-audit");
  const hr = el("tr");
  for (const k of ["hz_at", "hz_action", "hz_change", "hz_actor", "hz_party", "hz_comment", "hz_changes"]) hr.append(el("th", "", t(k)));
  audit.append(hr);
  for (const e of x.events) {
    const r = el("tr");
    r.dataset.action = e.action;
    const change = e.from_status && e.from_status !== e.to_status
      ? `${statusText(e.from_status)} → ${statusText(e.to_status)}` : statusText(e.to_status);
    r.append(el("td", "", fmtCst(e.at)), el("td", "hz-ev-action", label(actKey(e.action), e.action)),
      el("td", "", change), el("td", "actor", e.actor ?? t("hz_party_hub")),
      el("td", "", label(`hz_party_${e.party}`, e.party)), el("td", "note", e.comment || ""),
      el("td", "note hz-ev-changes", changesText(e.changes)));
    audit.append(r);
  }
  // the heading or step button that had the focus has it again (the open form stays in place)
  const had = document.activeElement;
  const again = had === box.querySelector("h3") ? "h3"
    : had?.dataset?.step && box.contains(had) && !form?.el.contains(had) ? `.hz-act[data-step="${had.dataset.step}"]` : null;
  place(box, [head, facts, ...(plan.children.length ? [el("h4", "", t("hz_plan")), plan] : []),
    el("h4", "", t("hz_actions")), acts, ...(form && form.step !== "report" ? [form.el] : []),
    message("item"), el("h4", "", t("hz_audit")), audit]);
  if (again) box.querySelector(again)?.focus();
}

/** `nodes` as `box`'s children; one already there is not moved (a form keeps its focus). */
function place(box, nodes) {
  for (const c of [...box.childNodes]) if (!nodes.includes(c)) c.remove();
  nodes.forEach((n, i) => { if (box.childNodes[i] !== n) box.insertBefore(n, box.childNodes[i] ?? null); });
}

function message(where) {
  const m = el("div", `msg hz-msg ${note?.ok ? "ok" : "error"}`, note?.where === where ? note.text : "");
  m.hidden = note?.where !== where;
  m.setAttribute("role", note?.ok ? "status" : "alert");
  return m;
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
  place(top, [...(form?.step === "report" ? [form.el] : []), message("report")]);
  if (form) form.el.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = busy; });
  renderList();
  renderDetail();
}
