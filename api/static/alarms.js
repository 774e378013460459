// The operator's alarm list: ISA-18.2 state, tier, closed-loop disposal, the lifecycle actions
// (acknowledge, shelve, unshelve, comment, verify / dispose / close, and the centre's review of an
// enterprise's closing: approve / return) in inline forms, and each
// alarm's journal. Rows are updated in place, so a half-typed form survives live updates.
// This module holds the list (what is read, kept, filtered and shown) and its public API; the
// rows are drawn by alarmrows.js, the one alarm's forms are alarmforms.js's, the actions on many
// alarmbulk.js's, the notes alarmnotes.js's, the shared state alarmstate.js's, the words
// alarmstrings.js's and the formatting alarmformat.js's.
import { renderBulk, renderStepShown, resetBulk } from "/static/alarmbulk.js";
import { fmtAlarmValue, fmtCst, kindLevel, pointNames } from "/static/alarmformat.js";
import { NOTE_MAX, clearNotes } from "/static/alarmnotes.js";
import { fillExtra, fillMain } from "/static/alarmrows.js";
import { accept, alarms, bind, byUrgency, centreAck, ctx, epoch, group, isOpen, nextEpoch, pointOf, request, rows, same,
  stepByPoint, stepKey, steppable, tierRank, ui, uiOf, version, waiting, waitingByPoint } from "/static/alarmstate.js";
import { STRINGS } from "/static/alarmstrings.js";
import { bindSync, checkSoon, fetchAlarm, resetSync } from "/static/alarmsync.js";
import { updateAttention } from "/static/attention.js";
import { el } from "/static/hazardforms.js";

// the names other pages and the tests import from here
export { NOTE_MAX, STRINGS, accept, alarms, byUrgency, fmtAlarmValue, fmtCst, kindLevel, pointNames };

const SHOWN = 100;
const OPEN_MAX = 500;  // the open alarms the list reads (those waiting beyond: `alarmsync.js`)
let filter = "open";

export function initAlarms(context) {
  bind(context, renderAlarms);
  bindSync(renderAlarms, loadAlarms);
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
  nextEpoch();
  resetSync();
  showAll = false;
  resetBulk();
  alarms.clear();
  for (const u of ui.values()) clearTimeout(u.msgTimer);
  ui.clear();
  for (const r of rows.values()) { r.main.remove(); r.extra.remove(); }
  rows.clear();
  renderAlarms();
}

// One enterprise chosen (`ctx.tenant()`, the header's filter): the list shows its alarms, read
// with `tenant=` (all of its open ones, not those among every enterprise's newest 500), beside
// every enterprise's, which are still held: the sound, the title and a count beside the list's
// say that other enterprises have alarms waiting (a filter must not silence them)
const inView = (a) => !ctx.tenant?.() || a.tenant === ctx.tenant();

/** The alarm list's reads: every enterprise's, and the chosen enterprise's. */
function listReads() {
  const q = filter === "open" ? `open=true&limit=${OPEN_MAX}` : "limit=100";
  const one = ctx.tenant?.();
  const paths = [`/api/v1/alarms?${q}`];
  if (one) paths.push(`/api/v1/alarms?${q}&tenant=${encodeURIComponent(one)}`);
  return Promise.all(paths.map((p) => request(p))).then((lists) => lists.flat());
}

/** The enterprise chosen changed: its alarms are read (the others stay held). */
export function tenantChanged() {
  showAll = false;
  resetBulk();
  renderAlarms();
  loadAlarms().catch(() => {});
}

/** Read the alarms afresh and let them replace everything held (after a reconnect of the
 * stream). The open form, the expanded journal and the message of an alarm are kept only when
 * the hub still has that same alarm under its id. Returns the new epoch. */
export async function reloadAlarms() {
  const mine = nextEpoch();
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
  if (got.length >= OPEN_MAX) checkSoon(0);  // those waiting beyond the list's 500 open
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

/** Compare the alarms waiting with the hub's now (every minute, and after the stream dropped
 * events): a difference is read again. */
export const checkAlarms = () => checkSoon(0);

/** An alarm event from the live stream: show its state at once, then fetch the whole alarm (in
 * its turn: `alarmsync.js`). The promise settles when it is held or given up (never rejects). */
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
  return fetchAlarm(d.alarm_id);
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
  waitingByPoint.clear();
  for (const a of all) {
    if (!waiting(a)) continue;
    const k = pointOf(a);
    if (!waitingByPoint.has(k)) waitingByPoint.set(k, []);
    waitingByPoint.get(k).push(a);
  }
  const sorted = all.filter((a) => filter === "all" || isOpen(a)).sort(byUrgency);
  // the cut never drops an alarm waiting for its acknowledgement (they sort first)
  const cut = showAll ? sorted.length : Math.max(SHOWN, sorted.filter((a) => group(a) === 0).length);
  let shown = sorted.slice(0, cut);
  held = [];
  if (pointerOver) {
    // under the pointer the rows shown stay where they are (a click meant for one alarm's
    // button would hit another's); new ones wait, counted in the banner over the list
    const at = new Map([...body.querySelectorAll("tr.alarm")].map((tr, i) => [Number(tr.dataset.alarm), i]));
    held = shown.filter((a) => !at.has(a.id));
    shown = shown.filter((a) => at.has(a.id)).sort((a, b) => at.get(a.id) - at.get(b.id));
  }
  stepByPoint.clear();  // of the rows shown: what the operator sees is what is stepped
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
