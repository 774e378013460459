// What the alarm list says of an action (alarms.js): the note under a row and the one over the
// list, each gone after a while or at the next action; the hub's refusals in the page's language;
// the length of a note or reason the hub takes.
import { ctx, redraw, ui, uiOf } from "/static/alarmstate.js";
import { fieldProblems } from "/static/alarmstrings.js";

/** The notes that said what an action did ("已确认 3 条"): gone at the next refresh of the list
 * or the next action, rather than standing over a list that changed since. */
export function clearNotes() {
  bulkMsg("");
  for (const u of ui.values()) {
    if (u.msg && u.msgOk) { u.msg = ""; clearTimeout(u.msgTimer); }
  }
}

let bulkMsgTimer = 0;
export function bulkMsg(text, ok = true) {
  const box = document.querySelector("#bulk-msg");
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
  box.className = `msg ${ok ? "ok" : "error"}`;
  clearTimeout(bulkMsgTimer);
  if (text) bulkMsgTimer = setTimeout(() => { box.hidden = true; }, MSG_MS);
}

// a message under a row goes after a while (or at the next action), not staying for ever
const MSG_MS = 20000;
export function showMsg(id, text, ok = false) {
  const u = uiOf(id);
  u.msg = text;
  u.msgOk = ok;
  clearTimeout(u.msgTimer);
  u.msgTimer = setTimeout(() => { if (u.msg === text) { u.msg = ""; redraw(); } }, MSG_MS);
  redraw();
}

// the hub's reasons an operator meets most, in the page's language (others as the hub says)
const AWAITS_REVIEW = "awaits the monitoring centre's review";
const NOT_REVIEWER = "(审核销号: approve, return) is the monitoring centre's";
export const HUB_ERRORS = {
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
export const RED_NOTE = "a red alarm is acknowledged only with a note";
export function hubError(err) {
  const why = typeof err.why === "string" ? err.why : "";
  const k = HUB_ERRORS[why] ?? (why.startsWith("shelves, silences and sensors out of service are the monitoring centre's") ? "err_centre"
    : why.includes(RED_NOTE) ? "err_red_note" : why.includes(AWAITS_REVIEW) ? "err_awaits_review"
      : why.includes(NOT_REVIEWER) || why.includes("never the enterprise's own") ? "err_reviewer" : null);
  if (k) return `${err.status} ${ctx.t(k)}`;
  // a body the hub did not take (422): the fields and what is wrong, in the page's language
  if (Array.isArray(err.errors) && err.errors.length) return `${err.status} ${fieldProblems(err.errors, ctx.t)}`;
  return err.message;
}

// the hub takes notes and reasons of at most 2000 characters (code points, as Python counts)
export const NOTE_MAX = 2000;
export const chars = (text) => [...text].length;
