// The alarm list's actions on many alarms at once (alarms.js): acknowledging or taking a disposal
// step for a point's alarms from one of its rows, and for the shown alarms from the bar over the
// list (POST /api/v1/alarms/acknowledge, /api/v1/alarms/disposal), each asked first.
import { HUB_ERRORS, NOTE_MAX, RED_NOTE, bulkMsg, chars, clearNotes, hubError, showMsg } from "/static/alarmnotes.js";
import { NEXT_STEP, alarms, byCentre, ctx, epoch, reachedRed, redraw, request, steppable, uiOf, waiting } from "/static/alarmstate.js";
import { el } from "/static/hazardforms.js";

// acknowledging many at once (POST /api/v1/alarms/acknowledge): the alarms the operator was
// shown and counted, by id, never "whatever the point has now"; at most the hub's 500 a call
export const BULK_MAX = 500;
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
export async function ackPoint(id, ids, note, at) {
  const u = uiOf(id);
  if (at !== epoch) { u.form = null; showMsg(id, ctx.t("bulk_stale")); return; }
  clearNotes();
  u.busy = true; u.msg = "";
  redraw();
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
  redraw();
  ctx.onChange();
}

// a disposal step for many at once (POST /api/v1/alarms/disposal): the shown alarms of one point
// at the same step, counted when asked; a close only of those returned to normal (the hub
// refuses the others). Red ones too: the note is required anyway (docs/alarms.md)
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

export async function stepPoint(id, step, ids, note, at) {
  const u = uiOf(id);
  if (at !== epoch) { u.form = null; showMsg(id, ctx.t("bulk_stale")); return; }
  clearNotes();
  u.busy = true; u.msg = "";
  redraw();
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
  redraw();
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
  await sendBulk(b, () => { if (bulkStep === b) bulkStep = null; },
    () => stepMany(b.ids[b.step], b.step, note), (got) => stepSummary(got, b.step));
}

// the bar's open question `b` answered: `send()` its alarms and say `said(got)`; `close()`
// closes the question if it is still the open one (a list read meanwhile made it stale)
async function sendBulk(b, close, send, said) {
  if (!b) return;
  if (b.epoch !== epoch) { close(); bulkMsg(ctx.t("bulk_stale"), false); redraw(); return; }
  clearNotes();
  b.busy = true;
  redraw();
  try {
    const got = await send();
    close();
    bulkMsg(said(got), true);
  } catch (err) {
    b.busy = false;
    bulkMsg(err.status ? hubError(err) : ctx.t("neterr"), false);
  }
  redraw();
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
  pick.onchange = () => { b.step = pick.value; redraw(); };
  const n = b.ids[b.step].length;
  const red = b.red[b.step] ? t("steppoint_red").replace("{n}", String(b.red[b.step])) : "";
  const ask = t("step_shown_ask").replace("{step}", t(b.step)).replace("{n}", String(n)).replace("{red}", red);
  const note = el("input"); note.name = "note"; note.required = true; note.placeholder = t("note_ph");
  const l = el("label", "", `${t("note")} `); l.append(note);
  const ok = el("button", "submit", t("step_n").replace("{step}", t(b.step)).replace("{n}", String(n))); ok.type = "submit";
  const no = el("button", "cancel", t("cancel")); no.type = "button";
  no.onclick = () => { bulkStep = null; redraw(); };
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
export function renderStepShown(shown) {
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
    redraw();
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

/** The shown lower tiers' alarms waiting, acknowledged from the bar over the list. */
async function ackLower(note) {
  const b = bulk;
  await sendBulk(b, () => { if (bulk === b) bulk = null; },
    () => acknowledgeMany(b.ids, note), bulkSummary);
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
  no.onclick = () => { bulk = null; redraw(); };
  form.replaceChildren(el("p", "bulk-ask", ask), l, ok, no);
  form.onsubmit = (e) => { e.preventDefault(); ackLower(note.value); };
}

/** The button over the list that acknowledges the shown alarms waiting below red, and its
 * confirmation (how many, of which tiers). */
export function renderBulk(shown) {
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
    redraw();
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

/** Close the questions over the list and their note (a sign-out, another enterprise chosen). */
export function resetBulk() {
  bulk = null;
  bulkStep = null;
  bulkMsg("");
}
