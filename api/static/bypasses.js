// The interlock bypass approvals page (联锁旁路审批, docs/rules.md "Bypass approvals"): the written
// approvals of the key's enterprises' loop bypasses (filtered by enterprise, flag, covering now or
// not, party; paged with `before`), the form that records one (of the key's bypass flags: a
// sensor whose rule has a level bypassed...), and the revocation of one with its note. A refusal
// is shown in the page's words, naming the fields at fault, above the hub's own. An alarm
// `bypass_unapproved` offers, in its detail, to record its loop's approval (approveFromAlarm).
import { isFlag, markFields, message, placeOf, recordForm, refusal, revokeForm, when } from "/static/bypassform.js";
import { BYPASS_STRINGS } from "/static/bypassstrings.js";
import { el, relabel } from "/static/hazardforms.js";
import { place } from "/static/hazarddetail.js";
import { hubRequest } from "/static/hubrequest.js";

export { BYPASS_STRINGS };

const PAGE = 50;     // approvals read at once: "Older approvals" reads the next page (`before`)
const $ = (s) => document.querySelector(s);
let ctx = null;      // {t, key(), me()}
const filters = { tenant: "", sensor: "", active: "", party: "" };
let sensors = null;  // GET /api/v1/sensors: the key's (null: not read)
let rows = null;     // the approvals shown, newest first (null: not read)
let older = false;   // the last page read was full: older ones may follow
let form = null;     // the record form open: {alarm, el, sending}
let revoking = null; // the revocation open: {id, el}
let note = null;     // {text, lead, ok, where: "form" | approval id}
let listError = "";
let busy = false;
let seq = 0;         // the list's reads: an older answer is dropped
let session = 0;     // a sign-out: what an earlier key asked is dropped

/** Whether the key writes (admin, operator, enterprise): a viewer reads. */
const writer = () => ["admin", "operator", "enterprise"].includes(ctx?.me()?.role);
const flags = () => (sensors ?? []).filter(isFlag).filter((s) => !filters.tenant || s.tenant === filters.tenant);
const sensorOf = (id) => (sensors ?? []).find((s) => s.id === id);
const tenantName = (id) => (sensors ?? []).find((s) => s.tenant === id)?.tenant_name || id;

const request = (path, init = {}) => hubRequest(ctx.key(), path, init);

export function initBypasses(context) {
  ctx = context;
  $("#bypasses-open").onclick = () => ($("#bypasses-panel").hidden ? openBypasses() : closeBypasses());
  $("#bp-close").onclick = closeBypasses;
  $("#bp-refresh").onclick = () => { readSensors(); loadList(); };
  $("#bp-record").onclick = () => openForm(null);
  $("#bp-older").onclick = () => loadList(true);
  for (const k of Object.keys(filters)) {
    $(`#bp-${k}`).onchange = (e) => {
      filters[k] = e.target.value;
      if (k === "tenant" && filters.sensor && sensorOf(filters.sensor)?.tenant !== filters.tenant) filters.sensor = "";
      loadList();
    };
  }
}

async function readSensors() {
  const mine = session;
  const got = await request("/api/v1/sensors").catch(() => null);
  if (mine !== session || !got) return;
  sensors = got;
  if (form && !form.el.querySelector("select[name=sensor] option")) swapForm();
  renderBypasses();
}

export async function openBypasses() {
  $("#bypasses-panel").hidden = false;
  $("#bypasses-open").setAttribute("aria-expanded", "true");
  renderBypasses();
  $("#bypasses-panel").scrollIntoView({ block: "start" });
  const list = loadList();
  if (sensors === null) await readSensors();
  await list;
}

function closeBypasses() {
  $("#bypasses-panel").hidden = true;
  $("#bypasses-open").setAttribute("aria-expanded", "false");
  $("#bypasses-open").focus();
}

/** Forget everything of the key (a sign-out): nothing of it for the next key. */
export function clearBypasses() {
  seq++; session++;
  Object.assign(filters, { tenant: "", sensor: "", active: "", party: "" });
  sensors = null; rows = null; older = false; form = null; revoking = null; note = null; listError = ""; busy = false;
  $("#bypasses-panel").hidden = true;
  $("#bypasses-open").setAttribute("aria-expanded", "false");
  renderBypasses();
}

/** The button of a `bypass_unapproved` alarm's detail that records its loop's approval (the
 * form opened with the alarm's flag chosen), for a key that writes. */
export function approveFromAlarm(a) {
  if (a.side !== "bypass_unapproved" || a.state !== "active" || !writer()) return null;  // (cleared: approved, or ended)
  const b = el("button", "bp-from-alarm", ctx.t("bp_approve_alarm"));
  b.type = "button";
  b.dataset.alarm = String(a.id);
  b.onclick = (e) => {
    e.stopPropagation();
    openBypasses().catch(() => {});  // shown first: the form's field then takes the focus
    openForm(a);
  };
  return b;
}

/** Read the first page (`more`: the next, older page, appended); the latest read wins. */
async function loadList(more = false) {
  const q = new URLSearchParams();
  for (const k of ["tenant", "sensor", "active", "party"]) if (filters[k]) q.set(k, filters[k]);
  q.set("limit", String(PAGE));
  if (more && rows?.length) q.set("before", String(rows[rows.length - 1].id));
  const mine = ++seq;
  if (!more) { rows = null; older = false; renderBypasses(); }
  try {
    const got = await request(`/api/v1/bypass-approvals?${q}`);
    if (mine !== seq) return;
    rows = more ? [...(rows ?? []), ...got] : got;
    older = got.length === PAGE;
    listError = "";
  } catch (e) {
    if (mine !== seq) return;
    if (!more) rows = [];
    listError = e.message;
  }
  renderBypasses();
}

function openForm(alarm) {
  if (form?.sending) return;  // the form sent stays until the hub answers
  form = { alarm, el: null, sending: false };
  swapForm();
  note = null;
  renderBypasses();
  form.el.querySelector(alarm ? "[name=approved_by]" : "select, input")?.focus();
}

/** The record form (anew: in the page's language, or with the flags read), what was typed kept. */
function swapForm() {
  const cancel = () => {
    if (form?.sending) return;  // sent: the hub's answer is awaited (and shown), the form kept
    form = null;
    if (note?.where === "form") note = null;
    renderBypasses();
    $("#bp-record").focus();
  };
  const fresh = recordForm(ctx.t, flags(), form.alarm?.sensor ?? filters.sensor, form.alarm, cancel, tenantName);
  fresh.onsubmit = (e) => { e.preventDefault(); submit(); };
  if (form.el) {
    const chosen = form.el.elements.sensor.value;
    form.el.replaceWith(relabel(form.el, fresh));
    if ([...fresh.elements.sensor.options].some((o) => o.value === chosen)) fresh.elements.sensor.value = chosen;
  }
  form.el = fresh;
}

function makeRevoke(a) {
  const cancel = () => {
    if (busy) return;  // (its buttons disabled too)
    revoking = null;
    note = null;
    renderBypasses();
    $(`#bp-list tr[data-approval="${a.id}"] .bp-revoke`)?.focus();
  };
  const f = revokeForm(ctx.t, a, cancel);
  f.onsubmit = (e) => { e.preventDefault(); revoke(a.id); };
  return f;
}

function openRevoke(a) {
  revoking = { id: a.id, el: makeRevoke(a), a };
  note = null;
  renderBypasses();
  revoking.el.elements.note.focus();
}

/** A write's refusal as the page says it; no answer (the network, or none within 20 s):
 * `unsure`, as the hub may have done it. */
function refused(e, where, f, unsure) {
  if (!e.status) return { text: ctx.t(unsure).replace("{e}", e.message), ok: false, where };
  const { lead, fields } = refusal(ctx.t, e);
  markFields(f, fields);
  return { text: ctx.t("bp_refused").replace("{status}", String(e.status)).replace("{why}", e.why), lead, ok: false, where };
}

/** Send the record form; the hub's answer is shown: the approval recorded, or its refusal.
 * The form stays (not cancelled, not replaced) until the hub answers. */
async function submit() {
  if (busy || !form) return;
  const sent = form;
  busy = true; sent.sending = true; note = null;
  renderBypasses();
  const mine = session;
  try {
    const got = await request("/api/v1/bypass-approvals", { method: "POST", body: JSON.stringify(sent.el.body()) });
    if (mine !== session) return;
    if (form === sent) form = null;
    const said = ctx.t("bp_done").replace("{id}", String(got.approval.id)) + (got.alarm_events ? ctx.t("bp_cleared") : "");
    note = { text: said, ok: true, where: "form" };
    requestAnimationFrame(() => $("#bp-record")?.focus());  // the form gone: its button again
    loadList();
  } catch (e) {
    if (mine !== session) return;
    note = refused(e, "form", form === sent ? sent.el : null, "bp_unsure_record");
    if (!e.status) loadList();  // recorded perhaps: the list says
  } finally {
    sent.sending = false;
    if (mine === session) busy = false;
  }
  renderBypasses();
}

/** Approval `a` (as the hub answered it) in place of its row: the rows read, and the scroll, kept. */
function replaceRow(a) {
  if (rows) rows = rows.map((r) => (r.id === a.id ? a : r));
}

/** The row of approval `id` read again (a revocation not answered: the hub may have done it). */
async function reread(id) {
  const mine = session;
  const got = await request(`/api/v1/bypass-approvals/${id}`).catch(() => null);
  if (mine !== session || !got) return;
  replaceRow(got);
  if (got.revoked_at !== null && revoking?.id === id && !busy) revoking = null;  // it was
  renderBypasses();
}

async function revoke(id) {
  if (busy || revoking?.id !== id) return;
  busy = true; note = null;
  renderBypasses();
  const mine = session;
  try {
    const got = await request(`/api/v1/bypass-approvals/${id}/revoke`, { method: "POST", body: JSON.stringify(revoking.el.body()) });
    if (mine !== session) return;
    if (revoking?.id === id) revoking = null;
    replaceRow(got.approval);  // its row as it is now, where it was: the rest not read again
    note = { text: ctx.t("bp_revoked_done").replace("{id}", String(id)), ok: true, where: id };
  } catch (e) {
    if (mine !== session) return;
    note = refused(e, id, revoking?.el, "bp_unsure_revoke");
    if (!e.status) reread(id);
  } finally {
    if (mine === session) busy = false;
  }
  renderBypasses();
  if (!revoking) $(`#bp-list tr[data-approval="${id}"] .bp-cover`)?.focus({ preventScroll: true });
}

function fillSelect(select, choices, all, value) {
  const sig = JSON.stringify([choices, all]);
  if (select.dataset.sig !== sig) {
    select.replaceChildren(Object.assign(el("option", "", all), { value: "" }),
      ...choices.map(([v, text]) => Object.assign(el("option", "", text), { value: v })));
    select.dataset.sig = sig;
  }
  select.value = [...select.options].some((o) => o.value === value) ? value : "";
}

function renderControls() {
  // the enterprises with a bypass flag (an approval names one)
  const t = ctx.t, tenants = [...new Set((sensors ?? []).filter(isFlag).map((s) => s.tenant))];
  fillSelect($("#bp-tenant"), tenants.map((x) => [x, tenantName(x)]), t("bp_all_tenants"), filters.tenant);
  $("#bp-tenant-wrap").hidden = tenants.length < 2;  // an enterprise's own key: its own
  fillSelect($("#bp-sensor"), flags().map((s) => [s.id, [s.id, s.location].filter(Boolean).join(" · ")]),
    t("bp_all_sensors"), filters.sensor);
  fillSelect($("#bp-active"), [["true", t("bp_active_true")], ["false", t("bp_active_false")]], t("bp_any_state"), filters.active);
  fillSelect($("#bp-party"), ["enterprise", "centre"].map((p) => [p, t(`bp_party_${p}`)]), t("bp_any_party"), filters.party);
  $("#bp-record").hidden = !writer();
  $("#bp-record").disabled = !!form?.sending;
}

/** Whether approval `a` covers now, and if not why: revoked, ended, not begun. */
function coverOf(a) {
  if (a.active) return "covers";
  if (a.revoked_at !== null) return "revoked_st";
  return a.until <= Date.now() ? "ended" : "not_begun";
}

function drawRow(t, a) {
  const tr = el("tr", "bp-row");
  tr.dataset.approval = String(a.id);
  tr.dataset.tenant = a.tenant;
  tr.dataset.party = a.party ?? "";
  const s = sensorOf(a.sensor), cover = coverOf(a);
  tr.dataset.cover = cover;
  const point = el("td", "bp-point", a.sensor);
  if (s?.tenant === a.tenant) point.append(el("div", "device", placeOf(s)));
  const status = el("td", `bp-cover bp-${cover}`, t(`bp_${cover}`));
  status.tabIndex = -1;  // (focused once its approval is revoked)
  if (a.revoked_at !== null) {
    status.append(el("div", "note bp-revoked-by", t("bp_revoked_by").replace("{who}", a.revoked_by ?? "—")
      .replace("{at}", when(a.revoked_at)).replace("{why}", a.revoke_note ?? "")));
  }
  const acts = el("td", "acts-cell");
  if (writer() && a.revoked_at === null && a.until > Date.now()) {
    const b = el("button", `act bp-revoke${revoking?.id === a.id ? " on" : ""}`, t("bp_revoke"));
    b.type = "button";
    b.setAttribute("aria-label", `${t("bp_revoke")} #${a.id}`);
    b.disabled = busy;
    b.onclick = () => (revoking?.id === a.id ? (revoking = null, renderBypasses()) : openRevoke(a));
    acts.append(b);
  }
  const party = a.party ? t(`bp_party_${a.party}`) : t("bp_party_unknown");
  tr.append(el("td", "", `#${a.id}`), el("td", "", tenantName(a.tenant)), point, el("td", "bp-approver", a.approved_by),
    el("td", "note", a.reason), el("td", "note bp-measures", a.measures), el("td", "", a.ticket || "—"),
    el("td", "bp-valid", `${when(a.valid_from)} – ${when(a.until)}`), el("td", "bp-party", `${party} · ${a.actor}`),
    status, acts);
  return tr;
}

function renderList() {
  const t = ctx.t, body = $("#bp-list tbody");
  const had = document.activeElement;
  const keep = revoking?.el.contains(had);
  const nodes = [];
  for (const a of rows ?? []) {
    nodes.push(drawRow(t, a));
    if (revoking?.id === a.id || note?.where === a.id) {
      const extra = el("tr", "bp-extra");
      extra.dataset.for = String(a.id);
      const td = el("td");
      td.colSpan = 11;
      if (revoking?.id === a.id) td.append(revoking.el);
      if (note?.where === a.id) td.append(message(note));
      extra.append(td);
      nodes.push(extra);
    }
  }
  body.replaceChildren(...nodes);
  if (keep && !revoking.el.contains(document.activeElement)) had.focus();
  if (revoking) revoking.el.querySelectorAll("button").forEach((b) => { b.disabled = busy; });
  $("#bp-empty").hidden = !rows || rows.length > 0 || !!listError;
  $("#bp-loading").hidden = rows !== null || !!listError;
  $("#bp-older").hidden = !older;
  $("#bp-list-error").hidden = !listError;
  $("#bp-list-error").textContent = listError ? t("bp_error").replace("{e}", listError) : "";
}

export function renderBypasses() {
  if (!ctx || !$("#bypasses-panel")) return;
  const lang = document.documentElement.lang;
  if (form && form.el.dataset.lang !== lang) swapForm();
  if (revoking && revoking.el.dataset.lang !== lang) {  // anew in the page's language, as typed
    const fresh = makeRevoke(revoking.a);
    fresh.elements.note.value = revoking.el.elements.note.value;
    revoking.el = fresh;
  }
  renderControls();
  const noFlags = sensors !== null && writer() && !flags().length;
  const hint = el("p", "hint bp-no-flags", filters.tenant
    ? ctx.t("bp_no_flags_tenant").replace("{tenant}", tenantName(filters.tenant)) : ctx.t("bp_no_flags"));
  place($("#bp-form"), [...(form ? [form.el] : []), ...(form && noFlags ? [hint] : []),
    ...(note?.where === "form" ? [message(note)] : [])]);
  if (form) {
    form.el.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = busy; });
    form.el.querySelectorAll("button.cancel").forEach((b) => { b.disabled = form.sending; });
  }
  renderList();
}
