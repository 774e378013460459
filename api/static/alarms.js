// The operator's alarm list: ISA-18.2 state, tier, closed-loop disposal, the lifecycle actions
// (acknowledge, shelve, unshelve, comment, verify / dispose / close, and the centre's review of an
// enterprise's closing: approve / return) in inline forms, and each
// alarm's journal. Rows are updated in place, so a half-typed form survives live updates.
import { fmtAlarmValue, fmtCst, kindLevel, pointNames } from "/static/alarmformat.js";
import { STRINGS } from "/static/alarmstrings.js";
import { updateAttention } from "/static/attention.js";
import { hubRequest } from "/static/hubrequest.js";

export { STRINGS, fmtAlarmValue, fmtCst, kindLevel, pointNames };

export const alarms = new Map();  // alarm id -> the newest AlarmPublic seen
const NEXT_STEP = { received: "verify", verified: "dispose", disposed: "close" };
const NEXT_STEP_VERBS = new Set(Object.values(NEXT_STEP));
// the monitoring centre's review of an enterprise's closing (审核销号): POST .../review
const REVIEW_VERBS = new Set(["approve", "return"]);
const SHELVE_HOURS = [1, 8, 24];
const SHOWN = 100;
const ui = new Map();    // alarm id -> {expanded, form, refused, busy, msg, msgOk, pointIds, pointRed, pointEpoch}
const rows = new Map();  // alarm id -> {main, extra, sig}
let filter = "open";
let ctx = null;          // {t, key(), live(), actions(), centre(), tenant(), unit(sensor), onSelect(sensor), onChange(), detailAction(alarm)}
// the hub's data the page holds belongs to one connection of the event stream: a reconnect
// (perhaps to a hub restarted with another alarm store, where ids mean other alarms) reads it
// all afresh and starts a new epoch; answers of requests made in an older epoch are dropped
let epoch = 0;

export function initAlarms(context) {
  ctx = context;
  document.querySelectorAll("#alarm-filter button").forEach((b) => {
    b.onclick = () => setFilter(b.dataset.filter);
  });
  // rows do not move under the pointer (an overdue alarm sorted first would put another
  // alarm's button where the operator was about to click): the order is kept until it leaves
  const list = document.querySelector("#alarms");
  list?.addEventListener("pointerenter", () => { pointerOver = true; });
  list?.addEventListener("pointerleave", () => { pointerOver = false; renderAlarms(); });
  // new alarms that came while the pointer rested over the list: a banner says how many, and
  // a click on it puts them in their places at the top
  const banner = document.querySelector("#alarms-new");
  if (banner) banner.onclick = releaseHeld;
  const more = document.querySelector("#alarms-more");
  if (more) more.onclick = () => { showAll = true; renderAlarms(); };
}
let pointerOver = false;

/** Forget every alarm held (a sign-out: the next key must not see them). */
export function clearAlarms() {
  epoch++;
  showAll = false;
  bulk = null;
  bulkStep = null;
  bulkMsg("");
  alarms.clear();
  for (const u of ui.values()) clearTimeout(u.msgTimer);
  ui.clear();
  for (const r of rows.values()) { r.main.remove(); r.extra.remove(); }
  rows.clear();
  renderAlarms();
}

const isOpen = (a) => !(a.isa_state === "normal" && a.disposal === "closed");
const version = (a) => (a.events.length ? a.events[a.events.length - 1].id : 0);
const uiOf = (id) => { if (!ui.has(id)) ui.set(id, { expanded: false, form: null, busy: false, msg: "" }); return ui.get(id); };

const request = (path, init = {}) => hubRequest(ctx.key(), path, init);

/** Keep a snapshot of an alarm unless one with a later journal event is already held. */
export function accept(a) {
  const have = alarms.get(a.id);
  if (!have || version(a) >= version(have)) alarms.set(a.id, a);
}

/** The same alarm (not merely the same id: a hub restarted with a fresh store numbers anew). */
const same = (a, b) => a.tenant === b.tenant && a.sensor === b.sensor && a.rule === b.rule
  && a.side === b.side && a.raised_at === b.raised_at;

// One enterprise chosen (`ctx.tenant()`, the header's filter): the list shows its alarms, read
// with `tenant=` (all of its open ones, not those among every enterprise's newest 500), beside
// every enterprise's, which are still held: the sound, the title and a count beside the list's
// say that other enterprises have alarms waiting (a filter must not silence them)
const inView = (a) => !ctx.tenant?.() || a.tenant === ctx.tenant();

/** The alarm list's reads: every enterprise's, and the chosen enterprise's. */
function listReads() {
  const q = filter === "open" ? "open=true&limit=500" : "limit=100";
  const one = ctx.tenant?.();
  const paths = [`/api/v1/alarms?${q}`];
  if (one) paths.push(`/api/v1/alarms?${q}&tenant=${encodeURIComponent(one)}`);
  return Promise.all(paths.map((p) => request(p))).then((lists) => lists.flat());
}

/** The enterprise chosen changed: its alarms are read (the others stay held). */
export function tenantChanged() {
  showAll = false;
  bulk = null;
  bulkStep = null;
  bulkMsg("");
  renderAlarms();
  loadAlarms().catch(() => {});
}

/** Read the alarms afresh and let them replace everything held (after a reconnect of the
 * stream). The open form, the expanded journal and the message of an alarm are kept only when
 * the hub still has that same alarm under its id. Returns the new epoch. */
export async function reloadAlarms() {
  const mine = ++epoch;
  const got = await listReads();
  if (mine !== epoch) return epoch;  // a newer reload won
  clearNotes();  // what an action did is said of the list before this one
  const fresh = new Map(got.map((a) => [a.id, a]));
  for (const [id, a] of alarms) {
    const b = fresh.get(id);
    if (b && same(a, b)) continue;
    ui.delete(id);
    const r = rows.get(id);
    if (r) { r.main.remove(); r.extra.remove(); rows.delete(id); }
  }
  alarms.clear();
  for (const a of got) alarms.set(a.id, a);
  renderAlarms();
  return epoch;
}

export async function loadAlarms() {
  const mine = epoch;
  const got = await listReads();
  if (mine !== epoch) return;  // read before a reconnect: the reload's answer replaced it
  clearNotes();  // the list read afresh: what an action did was said of the one before
  got.forEach(accept);
  if (filter === "open") {
    // alarms held as open that the hub no longer lists as open finished meanwhile: read them
    const ids = new Set(got.map((a) => a.id));
    const gone = [...alarms.values()].filter((a) => isOpen(a) && !ids.has(a.id)).slice(0, 50);
    await Promise.all(gone.map((a) => request(`/api/v1/alarms/${a.id}`)
      .then((b) => { if (mine === epoch && same(a, b)) accept(b); }).catch(() => {})));
  }
  renderAlarms();
}

function setFilter(f) {
  filter = f;
  renderAlarms();
  loadAlarms().catch(() => {});
}

/** An alarm event from the live stream: show its state at once, then fetch the whole alarm. */
export function onAlarmEvent(d) {
  const a = alarms.get(d.alarm_id);
  if (a && d.event_id > version(a)) {
    const next = { ...a, isa_state: d.isa_state, disposal: d.disposal,
      events: [...a.events, { id: d.event_id, kind: d.kind, ts: d.ts, arrival: d.arrival, level: d.level,
        level_name: d.level_name, tier: d.tier, value: d.value, actor: d.actor, comment: d.comment,
        isa_state: d.isa_state }] };
    if (d.kind === "cleared") next.state = "cleared";
    if (d.kind === "centre_acknowledged") next.centre_acked = true;
    if (d.kind === "raised" || d.kind === "escalated") next.centre_acked = false;
    if (["unack", "ack", "rtn_unack", "normal"].includes(d.isa_state)) {
      next.acked = d.isa_state === "ack" || d.isa_state === "normal";
      next.shelved_until = null;
    }
    alarms.set(a.id, next);
    renderAlarms();
  }
  const mine = epoch;
  return request(`/api/v1/alarms/${d.alarm_id}`).then((full) => {
    if (mine === epoch) { accept(full); renderAlarms(); }
  });
}

async function act(id, verb, body) {
  const u = uiOf(id);
  const path = verb === "ack" ? "acknowledge" : NEXT_STEP_VERBS.has(verb) ? "disposal"
    : REVIEW_VERBS.has(verb) ? "review" : verb;
  clearNotes();
  u.busy = true; u.msg = "";
  renderAlarms();
  const mine = epoch;
  try {
    const got = await request(`/api/v1/alarms/${id}/${path}`,
      { method: "POST", body: body ? JSON.stringify(body) : undefined });
    if (mine === epoch) accept(got);
    u.form = null; u.refused = null;
  } catch (err) {
    u.busy = false;
    u.refused = u.form;  // its form stays, with why (onButton)
    showMsg(id, err.status ? hubError(err) : ctx.t("neterr"));
  }
  u.busy = false;
  renderAlarms();
  ctx.onChange();
}

// acknowledging many at once (POST /api/v1/alarms/acknowledge): the alarms the operator was
// shown and counted, by id, never "whatever the point has now"; at most the hub's 500 a call
const BULK_MAX = 500;
// the acknowledgement a key gives and waits for: the centre's (`centre_acked`) for the supervising
// centre's key, the enterprise's (the ISA state's) for any other; an alarm of a hub of before
// (no `centre_acked`) has one acknowledgement for both
const centreAck = () => !!ctx?.centreAck?.();
const byCentre = (a) => centreAck() && typeof a.centre_acked === "boolean";
const ACKABLE = new Set(["unack", "ack", "rtn_unack", "normal"]);
const mineAcked = (a) => (byCentre(a) ? a.centre_acked : a.acked);
const waiting = (a) => (byCentre(a) ? ACKABLE.has(a.isa_state) && !a.centre_acked
  : a.isa_state === "unack" || a.isa_state === "rtn_unack");
// the ISA state as the caller's side sees it: for the centre's key, acknowledged or not by the
// centre (`centre_acked`); the enterprise's (`isa_state`) is shown beside it. A red "rtn unack"
// badge the centre had acknowledged, and no button to act on it, read as work left undone
// (helper-133); the list sorted by it too
const ownIsa = (a) => {
  if (!byCentre(a) || !ACKABLE.has(a.isa_state)) return a.isa_state;
  const active = a.state === "active";
  if (a.centre_acked) return active ? "ack" : "normal";
  return active ? "unack" : "rtn_unack";
};
const reachedRed = (a) => (a.peak_tier ?? a.tier) === "red";
const pointOf = (a) => [a.tenant, a.sensor, a.rule, a.side].join("\u0001");
let waitingByPoint = new Map();  // point -> its alarms waiting for an acknowledgement
let bulk = null;  // the open confirmation of the shown lower tiers: {ids, tiers, epoch, busy}

async function acknowledgeMany(ids, note) {
  const mine = epoch;
  const got = await request("/api/v1/alarms/acknowledge",
    { method: "POST", body: JSON.stringify({ ids, note }) });
  // shown at once; each alarm's event on the stream brings the whole of it after
  if (mine === epoch) {
    for (const r of got.results) {
      const a = alarms.get(r.id);
      if (a && r.result === "acknowledged") {
        alarms.set(r.id, byCentre(a) ? { ...a, centre_acked: true, isa_state: r.isa_state }
          : { ...a, acked: true, isa_state: r.isa_state });
      }
    }
  }
  return got;
}

const BULK_REASONS = { "the sensor is out of service": "err_out_of_service" };
function bulkSummary(got) {
  const t = ctx.t, c = got.counts;
  const parts = [t("bulk_done").replace("{n}", c.acknowledged)];
  if (c.already) parts.push(t("bulk_already").replace("{n}", c.already));
  if (c.not_found) parts.push(t("bulk_missing").replace("{n}", c.not_found));
  if (c.refused) {
    const why = got.results.find((r) => r.result === "refused").reason ?? "";
    const k = BULK_REASONS[why] ?? (why.includes(RED_NOTE) ? "err_red_note" : null);
    parts.push(t("bulk_refused").replace("{n}", c.refused).replace("{why}", k ? t(k) : why));
  }
  return parts.join("；");
}

/** The point's alarms waiting, acknowledged from one of its rows (after its confirmation). */
async function ackPoint(id, ids, note, at) {
  const u = uiOf(id);
  if (at !== epoch) { u.form = null; showMsg(id, ctx.t("bulk_stale")); return; }
  clearNotes();
  u.busy = true; u.msg = "";
  renderAlarms();
  try {
    const got = await acknowledgeMany(ids, note);
    u.form = null; u.refused = null;
    u.busy = false;
    showMsg(id, bulkSummary(got), true);
  } catch (err) {
    u.busy = false;
    u.refused = u.form;
    showMsg(id, err.status ? hubError(err) : ctx.t("neterr"));
  }
  renderAlarms();
  ctx.onChange();
}

// a disposal step for many at once (POST /api/v1/alarms/disposal): the shown alarms of one point
// at the same step, counted when asked; a close only of those returned to normal (the hub
// refuses the others). Red ones too: the note is required anyway (docs/alarms.md)
const stepKey = (a) => `${pointOf(a)}\u0001${a.disposal}`;
const steppable = (a) => !!NEXT_STEP[a.disposal] && !(a.disposal === "disposed" && a.state === "active");
let stepByPoint = new Map();  // point and disposal -> its shown alarms that may take the next step

/** Take `ids` through `step` at once; the rows show their new step at once (each alarm's
 * event on the stream brings the whole of it after). Answers the hub's `{counts, results}`. */
async function stepMany(ids, step, note) {
  const mine = epoch;
  const got = await request("/api/v1/alarms/disposal",
    { method: "POST", body: JSON.stringify({ ids, step, note }) });
  if (mine === epoch) {
    for (const r of got.results) {
      const a = alarms.get(r.id);
      if (a && r.result === "done") alarms.set(r.id, { ...a, disposal: r.disposal, overdue: false });
    }
  }
  return got;
}

/** What a disposal step for many did, in the page's language. */
function stepSummary(got, step) {
  const t = ctx.t, c = got.counts;
  const parts = [t("step_done").replace("{n}", c.done).replace("{step}", t(step))];
  if (c.already) parts.push(t("step_already").replace("{n}", c.already));
  if (c.not_found) parts.push(t("bulk_missing").replace("{n}", c.not_found));
  if (c.refused) {
    const why = got.results.find((r) => r.result === "refused").reason ?? "";
    parts.push(t("bulk_refused").replace("{n}", c.refused).replace("{why}", HUB_ERRORS[why] ? t(HUB_ERRORS[why]) : why));
  }
  return parts.join("；");
}

async function stepPoint(id, step, ids, note, at) {
  const u = uiOf(id);
  if (at !== epoch) { u.form = null; showMsg(id, ctx.t("bulk_stale")); return; }
  clearNotes();
  u.busy = true; u.msg = "";
  renderAlarms();
  try {
    const got = await stepMany(ids, step, note);
    u.form = null; u.refused = null;
    u.busy = false;
    showMsg(id, stepSummary(got, step), true);
  } catch (err) {
    u.busy = false;
    u.refused = u.form;
    showMsg(id, err.status ? hubError(err) : ctx.t("neterr"));
  }
  renderAlarms();
  ctx.onChange();
}

// a disposal step for the shown alarms at once, from the bar over the list: the rows shown
// (not those held back under the pointer, nor those below "N more") that may take their next
// step, by step; asked first which step, how many and how many of them reached red, with a
// required note; exactly the alarms counted are sent (POST /api/v1/alarms/disposal)
const STEPS = ["verify", "dispose", "close"];
let bulkStep = null;  // the open question: {ids: {step: [id]}, red: {step: n}, step, epoch, busy}

async function stepShown(note) {
  const b = bulkStep;
  if (!b) return;
  if (b.epoch !== epoch) { bulkStep = null; bulkMsg(ctx.t("bulk_stale"), false); renderAlarms(); return; }
  clearNotes();
  b.busy = true;
  renderAlarms();
  try {
    const got = await stepMany(b.ids[b.step], b.step, note);
    if (bulkStep === b) bulkStep = null;
    bulkMsg(stepSummary(got, b.step), true);
  } catch (err) {
    b.busy = false;
    bulkMsg(err.status ? hubError(err) : ctx.t("neterr"), false);
  }
  renderAlarms();
  ctx.onChange();
}

function stepForm(form) {
  const t = ctx.t, b = bulkStep;
  const pick = el("select"); pick.name = "step";
  for (const s of STEPS) {
    if (!b.ids[s]) continue;
    const o = el("option", "", `${t(s)} ${b.ids[s].length}`); o.value = s;
    pick.append(o);
  }
  pick.value = b.step;
  pick.onchange = () => { b.step = pick.value; renderAlarms(); };
  const n = b.ids[b.step].length;
  const red = b.red[b.step] ? t("steppoint_red").replace("{n}", String(b.red[b.step])) : "";
  const ask = t("step_shown_ask").replace("{step}", t(b.step)).replace("{n}", String(n)).replace("{red}", red);
  const note = el("input"); note.name = "note"; note.required = true; note.placeholder = t("note_ph");
  const l = el("label", "", `${t("note")} `); l.append(note);
  const ok = el("button", "submit", t("step_n").replace("{step}", t(b.step)).replace("{n}", String(n))); ok.type = "submit";
  const no = el("button", "cancel", t("cancel")); no.type = "button";
  no.onclick = () => { bulkStep = null; renderAlarms(); };
  form.replaceChildren(pick, el("p", "bulk-ask", ask), l, ok, no);
  form.onsubmit = (e) => {
    e.preventDefault();
    if (!note.value.trim()) { bulkMsg(t("note_ph"), false); return; }
    if (chars(note.value) > NOTE_MAX) { bulkMsg(`${t("too_long")} (${chars(note.value)}/${NOTE_MAX})`, false); return; }
    stepShown(note.value);
  };
}

/** The button over the list that takes the shown alarms through a disposal step, and its
 * question (which step, how many, how many reached red). */
function renderStepShown(shown) {
  const btn = document.querySelector("#step-shown"), form = document.querySelector("#step-form");
  if (!btn || !form) return;
  if (bulkStep && bulkStep.epoch !== epoch) bulkStep = null;  // read afresh: other alarms
  const by = {};
  for (const a of shown) if (steppable(a)) (by[NEXT_STEP[a.disposal]] ??= []).push(a);
  const n = Object.values(by).reduce((m, l) => m + Math.min(l.length, BULK_MAX), 0);
  btn.hidden = !ctx.actions().includes("disposal") || !!bulkStep || n < 2;
  btn.textContent = ctx.t("step_shown").replace("{n}", String(n));
  btn.disabled = !ctx.live();
  btn.onclick = () => {
    const ids = {}, red = {};
    for (const s of STEPS) {
      const some = (by[s] ?? []).slice(0, BULK_MAX);
      if (!some.length) continue;
      ids[s] = some.map((a) => a.id);
      red[s] = some.filter(reachedRed).length;
    }
    // the step of the most alarms first (the first of the order when as many)
    const step = STEPS.filter((s) => ids[s]).reduce((m, s) => (ids[s].length > ids[m].length ? s : m));
    clearNotes();
    bulk = null;
    bulkStep = { ids, red, step, epoch, busy: false };
    renderAlarms();
    form.querySelector("input")?.focus();
  };
  form.hidden = !bulkStep;
  if (!bulkStep) { form.replaceChildren(); delete form.dataset.sig; return; }
  const sig = `${document.documentElement.lang} ${bulkStep.step}`;
  if (form.dataset.sig !== sig) {  // anew in the page's language or for another step, with what was typed
    const kept = form.elements.note?.value ?? "";
    stepForm(form);
    form.elements.note.value = kept;
    form.dataset.sig = sig;
  }
  form.querySelectorAll("button, select").forEach((b) => {
    b.disabled = bulkStep.busy || (b.type === "submit" && !ctx.live());
  });
}

/** The notes that said what an action did ("已确认 3 条"): gone at the next refresh of the list
 * or the next action, rather than standing over a list that changed since. */
function clearNotes() {
  bulkMsg("");
  for (const u of ui.values()) {
    if (u.msg && u.msgOk) { u.msg = ""; clearTimeout(u.msgTimer); }
  }
}

let bulkMsgTimer = 0;
function bulkMsg(text, ok = true) {
  const box = document.querySelector("#bulk-msg");
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
  box.className = `msg ${ok ? "ok" : "error"}`;
  clearTimeout(bulkMsgTimer);
  if (text) bulkMsgTimer = setTimeout(() => { box.hidden = true; }, MSG_MS);
}

/** The shown lower tiers' alarms waiting, acknowledged from the bar over the list. */
async function ackLower(note) {
  const b = bulk;
  if (!b) return;
  if (b.epoch !== epoch) { bulk = null; bulkMsg(ctx.t("bulk_stale"), false); renderAlarms(); return; }
  clearNotes();
  b.busy = true;
  renderAlarms();
  try {
    const got = await acknowledgeMany(b.ids, note);
    if (bulk === b) bulk = null;
    bulkMsg(bulkSummary(got), true);
  } catch (err) {
    b.busy = false;
    bulkMsg(err.status ? hubError(err) : ctx.t("neterr"), false);
  }
  renderAlarms();
  ctx.onChange();
}

function bulkForm(form) {
  const t = ctx.t;
  const tiers = ["orange", "yellow", "blue", "none"].filter((k) => bulk.tiers[k])
    .map((k) => `${t(`tier_${k}`)} ${bulk.tiers[k]}`).join(" · ");
  const ask = t("ack_lower_ask").replace("{n}", String(bulk.ids.length)).replace("{tiers}", tiers);
  const note = el("input"); note.name = "note"; note.placeholder = t("note_opt_ph");
  const l = el("label", "", `${t("note")} `); l.append(note);
  const ok = el("button", "submit", t("ack_n").replace("{n}", String(bulk.ids.length))); ok.type = "submit";
  const no = el("button", "cancel", t("cancel")); no.type = "button";
  no.onclick = () => { bulk = null; renderAlarms(); };
  form.replaceChildren(el("p", "bulk-ask", ask), l, ok, no);
  form.onsubmit = (e) => { e.preventDefault(); ackLower(note.value); };
}

/** The button over the list that acknowledges the shown alarms waiting below red, and its
 * confirmation (how many, of which tiers). */
function renderBulk(shown) {
  const btn = document.querySelector("#ack-lower"), form = document.querySelector("#bulk-form");
  if (!btn || !form) return;
  if (bulk && bulk.epoch !== epoch) bulk = null;  // read afresh: those ids may be other alarms
  const lower = shown.filter((a) => waiting(a) && !reachedRed(a)).slice(0, BULK_MAX);
  btn.hidden = !ctx.actions().includes("acknowledge") || !!bulk || lower.length < 2;
  btn.textContent = ctx.t("ack_lower").replace("{n}", String(lower.length));
  btn.disabled = !ctx.live();
  btn.onclick = () => {
    const tiers = {};
    for (const a of lower) tiers[a.tier] = (tiers[a.tier] ?? 0) + 1;
    bulk = { ids: lower.map((a) => a.id), tiers, epoch, busy: false };
    bulkStep = null;
    clearNotes();
    renderAlarms();
    form.querySelector("input")?.focus();
  };
  form.hidden = !bulk;
  if (!bulk) { form.replaceChildren(); delete form.dataset.lang; return; }
  const lang = document.documentElement.lang;
  if (form.dataset.lang !== lang) {  // anew in the page's language, with what was typed
    const kept = form.elements.note?.value ?? "";
    bulkForm(form);
    form.elements.note.value = kept;
    form.dataset.lang = lang;
  }
  form.querySelectorAll("button").forEach((b) => { b.disabled = bulk.busy || (b.type === "submit" && !ctx.live()); });
}

// the API's action of each button (GET /api/v1/me lists those the key's role may take)
const ACTION = { ack: "acknowledge", ackpoint: "acknowledge", steppoint: "disposal", shelve: "shelve", unshelve: "unshelve",
  comment: "comment", verify: "disposal", dispose: "disposal", close: "disposal",
  approve: "review", return: "review" };

function buttonsFor(a) {
  const may = new Set(ctx.actions());
  return stateButtons(a).filter((verb) => may.has(ACTION[verb]));
}

function stateButtons(a) {
  const out = [];
  if (!mineAcked(a) && !a.out_of_service) out.push("ack");
  if (waiting(a) && (waitingByPoint.get(pointOf(a))?.length ?? 0) > 1) out.push("ackpoint");
  const handled = a.acked || a.centre_acked || a.disposal === "closed";  // as alerts/lifecycle.py
  if (!a.out_of_service && !(a.state === "cleared" && handled) && a.shelved_until === null) out.push("shelve");
  if (a.shelved_until !== null) out.push("unshelve");
  out.push("comment");
  if (NEXT_STEP[a.disposal]) out.push(NEXT_STEP[a.disposal]);
  if (a.disposal === "review") out.push("approve", "return");  // the centre's (`review` of /me)
  if (steppable(a) && (stepByPoint.get(stepKey(a))?.length ?? 0) > 1) out.push("steppoint");
  return out;
}

// a message under a row goes after a while (or at the next action), not staying for ever
const MSG_MS = 20000;
function showMsg(id, text, ok = false) {
  const u = uiOf(id);
  u.msg = text;
  u.msgOk = ok;
  clearTimeout(u.msgTimer);
  u.msgTimer = setTimeout(() => { if (u.msg === text) { u.msg = ""; renderAlarms(); } }, MSG_MS);
  renderAlarms();
}

// the hub's reasons an operator meets most, in the page's language (others as the hub says)
const AWAITS_REVIEW = "awaits the monitoring centre's review";
const NOT_REVIEWER = "(审核销号: approve, return) is the monitoring centre's";
const HUB_ERRORS = {
  "this key may only read": "err_read_only",
  "a shelve needs a reason": "err_shelve_reason",
  "cannot close: the alarm is still active": "err_close_active",
  "cannot submit: the alarm is still active": "err_close_active",  // an enterprise's close of a red one
  "the alarm is already acknowledged": "err_already_acked",
  "the alarm is already acknowledged by the centre": "err_already_acked",
  "the alarm is not shelved": "err_not_shelved",
  "the sensor is out of service": "err_out_of_service",
  "the alarm has returned to normal and is acknowledged": "err_normal_acked",
  "the alarm has returned to normal and is acknowledged by the centre": "err_normal_acked",
  "the alarm has returned to normal and its disposal is closed": "err_normal_closed",
};
// the hub's refusal of a red alarm acknowledged without a note (alone or in bulk)
const RED_NOTE = "a red alarm is acknowledged only with a note";
function hubError(err) {
  const why = typeof err.why === "string" ? err.why : "";
  const k = HUB_ERRORS[why] ?? (why.startsWith("shelves, silences and sensors out of service are the monitoring centre's") ? "err_centre"
    : why.includes(RED_NOTE) ? "err_red_note" : why.includes(AWAITS_REVIEW) ? "err_awaits_review"
      : why.includes(NOT_REVIEWER) || why.includes("never the enterprise's own") ? "err_reviewer" : null);
  return k ? `${err.status} ${ctx.t(k)}` : err.message;
}

function onButton(a, verb) {
  const u = uiOf(a.id);
  const input = () => rows.get(a.id)?.extra.querySelector("form input");
  // a refused action keeps its form, what was typed and why: its button clicked again (to try
  // again: "Close" reads as closing the form too) no longer takes the form away with the reason
  if (u.form === verb && u.refused === verb) { input()?.focus(); return; }
  clearNotes();
  u.msg = "";
  // a red one asks its note first (the hub refuses it without)
  if (verb === "unshelve" || (verb === "ack" && !reachedRed(a))) { act(a.id, verb); return; }
  if (verb === "ackpoint" && u.form !== verb) {
    // the alarms counted now are those acknowledged, whatever comes meanwhile
    const mine = waitingByPoint.get(pointOf(a)) ?? [];
    u.pointIds = mine.map((x) => x.id).slice(0, BULK_MAX);
    u.pointRed = mine.some(reachedRed);
    u.pointEpoch = epoch;
  }
  if (verb === "steppoint" && u.form !== verb) {
    // the alarms counted now are those stepped, whatever comes meanwhile
    const mine = stepByPoint.get(stepKey(a)) ?? [];
    u.stepIds = mine.map((x) => x.id).slice(0, BULK_MAX);
    u.stepRed = mine.filter(reachedRed).length;
    u.step = NEXT_STEP[a.disposal];
    u.pointEpoch = epoch;
  }
  u.form = u.form === verb ? null : verb;
  u.refused = null;
  renderAlarms();
  input()?.focus();
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function isaBadge(state) {
  const b = el("span", `isa isa-${state}`, ctx.t(`isa_${state}`));
  b.dataset.isa = state;
  return b;
}


// an enterprise and a site by name where they have one: a city's monitoring centre cannot tell
// enterprises apart by their ids, let alone by their sensors' ids
const enterpriseOf = (a) => a.tenant_name || a.tenant;
const siteOf = (a) => a.site_name || a.site;

function fillMain(tr, a) {
  const t = ctx.t, u = uiOf(a.id);
  tr.className = `alarm ${a.state} row-${ownIsa(a)} tier-row-${a.tier}${u.expanded ? " expanded" : ""}`;
  tr.innerHTML = "<td></td><td></td><td></td><td></td><td></td><td></td><td></td><td></td>";
  const c = tr.querySelectorAll("td");
  const tier = el("span", `tier tier-${a.tier}`);
  tier.title = t(`tier_${a.tier}`);
  c[0].append(el("span", "caret", u.expanded ? "▾" : "▸"), tier);
  // the point as the registry names it beside its id (its tag and place, a vehicle's plate),
  // and under it what it measures on which device, by their names (ids where there are none)
  const named = pointNames(a, t);
  c[1].textContent = named.point;
  if (named.device) c[1].append(el("div", "device", named.device));
  // a centre's key sees many enterprises: each row says whose alarm it is, and where
  if (ctx.centre()) c[1].append(el("div", "where", `${enterpriseOf(a)} · ${siteOf(a)}`));
  c[2].textContent = kindLevel(a, t);
  c[2].title = `${a.side} ${a.level_name}`;  // the names the API and the rules use
  // the unit of the alarm's value: a fatigue alarm's is seconds of driving (shown in hours and minutes), not the speed
  // sensor's km/h; a data_lost alarm's the readings lost (`value_unit` of the API)
  const unit = a.value_unit === undefined ? ctx.unit(a.sensor) : a.value_unit;
  // the worst it was (a dispatcher read the clear's value): the peak level, with the value and
  // the time it first reached it; the value at its last change in the tooltip
  const peaked = a.peak_ts !== null && a.peak_ts !== undefined;
  c[3].textContent = fmtAlarmValue(peaked ? a.peak_value : a.value, unit, t);
  if (peaked) {
    c[3].className = "peak";
    const lvl = t(`lvl_${a.peak_level_name}`) === `lvl_${a.peak_level_name}` ? a.peak_level_name : t(`lvl_${a.peak_level_name}`);
    c[3].append(el("div", "peak-at", `${lvl} · ${fmtCst(a.peak_ts)}`));
    c[3].title = t("peak_hint").replace("{v}", fmtAlarmValue(a.value, unit, t));
  }
  c[4].textContent = fmtCst(a.started_ts);
  c[5].append(isaBadge(ownIsa(a)), el("span", "cond", t(a.state)));
  if (ownIsa(a) !== a.isa_state) {
    const site = el("div", "site-isa", t("site_isa").replace("{s}", t(`isa_${a.isa_state}`)));
    site.dataset.isa = a.isa_state;
    site.title = t("site_isa_hint");
    c[5].append(site);
  }
  const disp = el("span", `disp disp-${a.disposal}`, t(`disp_${a.disposal}`));
  disp.dataset.disposal = a.disposal;
  c[6].append(disp);
  if (a.overdue) c[6].append(el("span", "overdue", t("overdue")));
  const acts = el("div", "acts");
  for (const verb of buttonsFor(a)) {
    const n = verb === "ackpoint" ? waitingByPoint.get(pointOf(a)).length
      : verb === "steppoint" ? stepByPoint.get(stepKey(a)).length : 0;
    const text = verb === "ackpoint" ? t("ackpoint").replace("{n}", String(n))
      : verb === "steppoint" ? t("steppoint").replace("{step}", t(NEXT_STEP[a.disposal])).replace("{n}", String(n))
        : t(verb);
    const b = el("button", `act act-${verb}${u.form === verb ? " on" : ""}`, text);
    b.type = "button"; b.dataset.act = verb;
    // which alarm the button acts on, for a screen reader and a tooltip
    b.setAttribute("aria-label", `${verb.endsWith("point") ? text : t(verb)}: ${a.sensor} #${a.id}`);
    // offline, the page's alarms may be another hub's: no action until they are read afresh
    b.disabled = u.busy || !ctx.live();
    if (!ctx.live()) b.title = t("offline");
    b.onclick = (e) => { e.stopPropagation(); onButton(a, verb); };
    acts.append(b);
  }
  c[7].className = "acts-cell";
  c[7].append(acts);
  if (!ctx.actions().length) acts.append(el("span", "ro", t("read_only")));  // a viewer's key
  const msg = el("div", `msg ${u.msgOk ? "ok" : "error"}`, u.msg);
  msg.hidden = !u.msg;
  msg.setAttribute("role", "alert");
  c[7].append(msg);
  c[7].onclick = (e) => e.stopPropagation();
  tr.onclick = () => { u.expanded = !u.expanded; renderAlarms(); ctx.onSelect(a.sensor); };
}

// the hub takes notes and reasons of at most 2000 characters (code points, as Python counts)
export const NOTE_MAX = 2000;
const chars = (text) => [...text].length;

function actionForm(a, verb) {
  const t = ctx.t;
  const f = el("form", "act-form");
  f.dataset.form = verb;
  f.dataset.lang = document.documentElement.lang;
  const label = (text, input) => { const l = el("label", "", `${text} `); l.append(input); return l; };
  if (verb === "shelve") {
    const reason = el("input"); reason.name = "reason"; reason.required = true;
    reason.placeholder = t("reason_ph");
    const dur = el("select"); dur.name = "duration";
    for (const h of SHELVE_HOURS) { const o = el("option", "", `${h} ${t("hours")}`); o.value = String(h * 3600); dur.append(o); }
    f.append(label(t("reason"), reason), label(t("duration"), dur));
    // a shelve is the point's, up to the level this alarm reached (docs/alarms.md): said
    // before it is placed (helper-99: it was nowhere in the form)
    const scope = el("p", "shelve-scope", t("shelve_scope").replace("{tier}", t(`tier_${a.peak_tier ?? a.tier}`)));
    f.append(scope);
  } else if (verb === "ackpoint") {
    // the confirmation says how many; a red one among them needs a note (the hub's rule)
    const u = uiOf(a.id);
    const ask = t("ackpoint_ask").replace("{n}", String(u.pointIds.length)).replace("{sensor}", a.sensor);
    const note = el("input"); note.name = "note"; note.required = u.pointRed;
    note.placeholder = t(u.pointRed ? "note_red_ph" : "note_opt_ph");
    f.append(el("p", "bulk-ask", ask), label(t("note"), note));
  } else if (verb === "ack") {
    // a red alarm is acknowledged only with a note saying why, alone as in bulk (the hub's
    // rule, EEMUA 191): asked here, the others are acknowledged at a click
    const note = el("input"); note.name = "note"; note.required = true;
    note.placeholder = t("note_red_one_ph");
    f.append(el("p", "bulk-ask", t("ack_red_ask")), label(`${t("ack")}: ${t("note")}`, note));
  } else if (verb === "steppoint") {
    // the confirmation says how many, and how many of them reached red; a note, required
    const u = uiOf(a.id);
    const red = u.stepRed ? t("steppoint_red").replace("{n}", String(u.stepRed)) : "";
    const ask = t("steppoint_ask").replace("{step}", t(u.step)).replace("{n}", String(u.stepIds.length))
      .replace("{sensor}", a.sensor).replace("{red}", red);
    const note = el("input"); note.name = "note"; note.required = true;
    note.placeholder = t("note_ph");
    f.append(el("p", "bulk-ask", ask), label(`${t(u.step)}: ${t("note")}`, note));
  } else if (REVIEW_VERBS.has(verb)) {
    // what the enterprise said when it closed it (its latest submission), then the centre's note
    const sub = [...a.events].reverse().find((e) => e.kind === "submitted");
    const ask = t("review_ask").replace("{who}", sub?.actor ?? "—").replace("{note}", sub?.comment ?? "");
    const note = el("input"); note.name = "note"; note.required = true;
    note.placeholder = t("review_note_ph");
    f.append(el("p", "bulk-ask", ask), label(`${t(verb)}: ${t("note")}`, note));
  } else {
    const note = el("input"); note.name = "note"; note.required = true;
    note.placeholder = t("note_ph");
    f.append(label(`${t(verb)}: ${t("note")}`, note));
  }
  // not cut silently at the limit (a pasted report would lose its end): counted, and refused
  // with a message when too long
  const text = f.querySelector("input");
  const count = el("span", "count");
  const recount = () => {
    const n = chars(text.value);
    count.textContent = `${n}/${NOTE_MAX}`;
    count.classList.toggle("error", n > NOTE_MAX);
  };
  text.addEventListener("input", recount);
  recount();
  const ok = el("button", "submit", verb === "ackpoint"
    ? t("ack_n").replace("{n}", String(uiOf(a.id).pointIds.length))
    : verb === "steppoint"
      ? t("step_n").replace("{step}", t(uiOf(a.id).step)).replace("{n}", String(uiOf(a.id).stepIds.length))
      : t("submit"));
  ok.type = "submit";
  const no = el("button", "cancel", t("cancel")); no.type = "button";
  no.onclick = () => { const u = uiOf(a.id); u.form = null; u.refused = null; renderAlarms(); };
  f.append(count, ok, no);
  f.onsubmit = (e) => {
    e.preventDefault();
    const v = (n) => f.elements[n].value;
    recount();
    if (chars(text.value) > NOTE_MAX) {
      showMsg(a.id, `${ctx.t("too_long")} (${chars(text.value)}/${NOTE_MAX})`);
      return;
    }
    const u = uiOf(a.id);
    if (verb === "ackpoint") ackPoint(a.id, u.pointIds, v("note"), u.pointEpoch);
    else if (verb === "ack") {
      if (!v("note").trim()) { showMsg(a.id, ctx.t("err_red_note")); return; }
      act(a.id, "ack", { note: v("note") });
    }
    else if (verb === "steppoint") {
      if (!v("note").trim()) { showMsg(a.id, ctx.t("note_ph")); return; }
      stepPoint(a.id, u.step, u.stepIds, v("note"), u.pointEpoch);
    }
    else if (verb === "shelve") act(a.id, "shelve", { reason: v("reason"), duration_s: Number(v("duration")) });
    else if (verb === "comment") act(a.id, "comment", { note: v("note") });
    else if (REVIEW_VERBS.has(verb)) {
      if (!v("note").trim()) { showMsg(a.id, ctx.t("review_note_ph")); return; }
      act(a.id, verb, { decision: verb, note: v("note") });
    }
    else act(a.id, verb, { step: verb, note: v("note") });
  };
  return f;
}

function journal(a) {
  const t = ctx.t;
  const label = (k, name) => (t(k) === k ? name : t(k));
  const box = el("div", "detail");
  const facts = el("dl", "facts");
  const fact = (k, v) => { if (v) facts.append(el("dt", "", t(k)), el("dd", "", v)); };
  if (ctx.centre()) fact("enterprise", a.tenant_name ? `${a.tenant_name} (${a.tenant})` : a.tenant);
  fact("site", a.site_name ? `${a.site_name} (${a.site})` : a.site);
  fact("device", a.device_name ? `${a.device_name} (${a.device})` : a.device);
  fact("sensor", pointNames(a, t).point);
  fact("measure", a.action);
  fact("rule", a.rule);
  if (a.shelved_until !== null) fact("shelved_until", fmtCst(a.shelved_until));
  if (a.disposal_due !== null && a.disposal !== "closed") fact("disposal_due", fmtCst(a.disposal_due));
  box.append(facts, el("h4", "", t("journal")));
  const tb = el("table", "journal");
  const head = el("tr");
  for (const k of ["time_cst", "event", "ev_level", "ev_value", "actor", "comment", "isa"]) head.append(el("th", "", t(k)));
  const unit = a.value_unit === undefined ? ctx.unit(a.sensor) : a.value_unit;
  tb.append(head);
  for (const e of a.events) {
    const r = el("tr");
    r.dataset.kind = e.kind;
    // the value and level each event was judged at: what raised and peaked the alarm stays
    // readable after it cleared (an operator's action carries the alarm's value then)
    const lvl = el("td", "level", label(`lvl_${e.level_name}`, e.level_name));
    lvl.title = e.level_name;
    r.append(el("td", "", fmtCst(e.ts)), el("td", "", label(`ev_${e.kind}`, e.kind)), lvl,
      el("td", "value", fmtAlarmValue(e.value, unit, t)),
      el("td", "actor", e.actor ?? "—"), el("td", "note", e.comment || ""));
    const s = el("td"); s.append(isaBadge(e.isa_state)); r.append(s);
    tb.append(r);
  }
  box.append(tb);
  // reporting it as a hidden danger (hazards.js), recording its bypass's approval (bypasses.js)
  for (const more of [ctx.detailAction?.(a)].flat()) if (more) box.append(more);
  return box;
}

function fillExtra(tr, a) {
  const u = uiOf(a.id);
  tr.hidden = !u.form && !u.expanded;
  let td = tr.firstChild;
  if (!td) { td = el("td"); td.colSpan = 8; tr.append(td); }
  const form = td.querySelector("form.act-form");
  if (form && form.dataset.form !== u.form) form.remove();
  else if (form && form.dataset.lang !== document.documentElement.lang) {
    // another language: the form anew in it, with what was typed and chosen
    const fresh = actionForm(a, u.form);
    for (const input of form.elements) if (input.name) fresh.elements[input.name].value = input.value;
    fresh.querySelector("input")?.dispatchEvent(new Event("input"));
    form.replaceWith(fresh);
  }
  if (u.form && !td.querySelector("form.act-form")) td.prepend(actionForm(a, u.form));
  td.querySelectorAll("form.act-form button").forEach((b) => {
    b.disabled = u.busy || (b.type === "submit" && !ctx.live());
  });
  td.querySelector(".detail")?.remove();
  if (u.expanded) td.append(journal(a));
}

// what needs the operator now comes first: active alarms not yet acknowledged (the highest tier,
// then the newest, first), then active acknowledged ones by tier, then the rest (returned,
// shelved, out of service...), those past their disposal deadline first. An old recovered
// alarm past its deadline no longer sits above a new red one (a dispatcher's night shift)
const TIER_RANK = { red: 3, orange: 2, yellow: 1, blue: 0 };
const tierRank = (a) => TIER_RANK[a.tier] ?? -1;
// (returned but still unacknowledged ones right after the active unacknowledged: they wait for
// the operator too, and sat below 100 acknowledged overdue rows, cut off: helper-108)
const GROUP = { unack: 0, rtn_unack: 1, ack: 2 };
const group = (a) => GROUP[ownIsa(a)] ?? 3;
export function byUrgency(a, b) {
  const g = group(a) - group(b);
  if (g) return g;
  if (group(a) < 3) return tierRank(b) - tierRank(a) || b.overdue - a.overdue || b.id - a.id;
  return b.overdue - a.overdue || b.id - a.id;
}

// the rows held back while the pointer is over the list (new alarms), and whether the list
// shows every alarm (a click on "N more") rather than the first SHOWN
let held = [];
let showAll = false;

/** Put the alarms held back in their places (a click on the banner, or the pointer gone). */
function releaseHeld() {
  const was = pointerOver;
  pointerOver = false;
  renderAlarms();
  pointerOver = was;
}

export function renderAlarms() {
  const body = document.querySelector("#alarms tbody");
  if (!body || !ctx) return;
  const every = [...alarms.values()];
  const all = every.filter(inView);  // the chosen enterprise's (every one's when none is)
  waitingByPoint = new Map();
  for (const a of all) {
    if (!waiting(a)) continue;
    const k = pointOf(a);
    if (!waitingByPoint.has(k)) waitingByPoint.set(k, []);
    waitingByPoint.get(k).push(a);
  }
  const sorted = all.filter((a) => filter === "all" || isOpen(a)).sort(byUrgency);
  // the cut never drops an alarm waiting for its acknowledgement (they sort first)
  const cut = showAll ? sorted.length : Math.max(SHOWN, sorted.filter((a) => group(a) < 2).length);
  let shown = sorted.slice(0, cut);
  held = [];
  if (pointerOver) {
    // under the pointer the rows shown stay where they are (a click meant for one alarm's
    // button would hit another's); new ones wait, counted in the banner over the list
    const at = new Map([...body.querySelectorAll("tr.alarm")].map((tr, i) => [Number(tr.dataset.alarm), i]));
    held = shown.filter((a) => !at.has(a.id));
    shown = shown.filter((a) => at.has(a.id)).sort((a, b) => at.get(a.id) - at.get(b.id));
  }
  stepByPoint = new Map();  // of the rows shown: what the operator sees is what is stepped
  for (const a of shown) {
    if (!steppable(a)) continue;
    const k = stepKey(a);
    if (!stepByPoint.has(k)) stepByPoint.set(k, []);
    stepByPoint.get(k).push(a);
  }
  const keep = new Set(shown.map((a) => a.id));
  for (const [id, r] of rows) if (!keep.has(id)) { r.main.remove(); r.extra.remove(); rows.delete(id); }
  const lang = document.documentElement.lang;
  for (const a of shown) {
    let r = rows.get(a.id);
    if (!r) {
      r = { main: el("tr"), extra: el("tr", "extra"), sig: "" };
      r.main.dataset.alarm = a.id; r.extra.dataset.for = a.id;
      rows.set(a.id, r);
    }
    const sig = JSON.stringify([lang, a, uiOf(a.id), ctx.live(), ctx.actions(), ctx.centre(),
      waitingByPoint.get(pointOf(a))?.length, stepByPoint.get(stepKey(a))?.length]);
    if (sig !== r.sig) { fillMain(r.main, a); fillExtra(r.extra, a); r.sig = sig; }
    body.append(r.main, r.extra);  // moves existing rows: inputs keep their values
  }
  document.querySelectorAll("#alarm-filter button").forEach((b) => {
    b.setAttribute("aria-pressed", String(b.dataset.filter === filter));
  });
  const unack = all.filter(waiting).length;
  const count = document.querySelector("#unack-count");
  if (count) { count.hidden = !unack; count.textContent = `${ctx.t("unack_count")} ${unack}`; }
  const others = every.filter((a) => waiting(a) && !inView(a)).length;
  const elsewhere = document.querySelector("#unack-others");
  if (elsewhere) {
    elsewhere.hidden = !others;
    elsewhere.textContent = ctx.t("unack_others").replace("{n}", String(others));
  }
  const empty = document.querySelector("#alarms-empty");
  if (empty) empty.hidden = shown.length + held.length > 0;
  const banner = document.querySelector("#alarms-new");
  if (banner) {
    banner.hidden = !held.length;
    const top = held.reduce((m, a) => (tierRank(a) > tierRank(m) ? a : m), held[0]);
    banner.className = `new-alarms tier-${top?.tier ?? "none"}`;
    banner.textContent = ctx.t("new_alarms").replace("{n}", String(held.length));
  }
  renderBulk(shown);
  renderStepShown(shown);
  updateAttention(every, centreAck());  // every enterprise's: choosing one does not silence the others
  const more = document.querySelector("#alarms-more");
  if (more) {
    more.hidden = sorted.length <= cut;
    more.textContent = ctx.t("more_alarms").replace("{n}", String(sorted.length - cut));
  }
}
