// The alarm list's actions on one alarm (alarms.js): the buttons a row offers this key, and the
// inline form of each (acknowledge, shelve, comment, a disposal step, the centre's review of an
// enterprise's closing, and the point's alarms at once), sent to the hub.
import { BULK_MAX, ackPoint, stepPoint } from "/static/alarmbulk.js";
import { NOTE_MAX, chars, clearNotes, hubError, showMsg } from "/static/alarmnotes.js";
import { NEXT_STEP, NEXT_STEP_VERBS, REVIEW_VERBS, accept, ctx, epoch, mineAcked, pointOf, reachedRed, redraw, request,
  rows, stepByPoint, stepKey, steppable, uiOf, waiting, waitingByPoint } from "/static/alarmstate.js";
import { el } from "/static/hazardforms.js";

const SHELVE_HOURS = [1, 8, 24];
// a shelve of the operator's own length, in minutes: the hub takes at most 7 days
export const SHELVE_MAX_MIN = 7 * 24 * 60;

// what the hub takes for a note or reason: words, once invisible format characters (zero-width
// spaces, direction marks) and the spaces around are gone (api/notes.py): asked before sending
export const blank = (text) => !text.replace(/\p{Cf}/gu, "").trim();

async function act(id, verb, body) {
  const u = uiOf(id);
  const path = verb === "ack" ? "acknowledge" : NEXT_STEP_VERBS.has(verb) ? "disposal"
    : REVIEW_VERBS.has(verb) ? "review" : verb;
  clearNotes();
  u.busy = true; u.msg = "";
  redraw();
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
  redraw();
  ctx.onChange();
}

// the API's action of each button (GET /api/v1/me lists those the key's role may take)
const ACTION = { ack: "acknowledge", ackpoint: "acknowledge", steppoint: "disposal", shelve: "shelve", unshelve: "unshelve",
  comment: "comment", verify: "disposal", dispose: "disposal", close: "disposal",
  approve: "review", return: "review" };

export function buttonsFor(a) {
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

export function onButton(a, verb) {
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
  redraw();
  input()?.focus();
}

export function actionForm(a, verb) {
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
    const own = el("option", "", t("dur_custom")); own.value = "custom"; dur.append(own);
    // the operator's own length, in minutes, shown when chosen
    const minutes = el("input"); minutes.name = "minutes"; minutes.type = "number";
    // (bounded by the form's own message, not the browser's bubble in its own language)
    minutes.inputMode = "numeric"; minutes.placeholder = `1–${SHELVE_MAX_MIN}`;
    const mins = label(t("minutes"), minutes);
    mins.hidden = true;
    dur.onchange = () => { mins.hidden = dur.value !== "custom"; if (!mins.hidden) minutes.focus(); };
    f.append(label(t("reason"), reason), label(t("duration"), dur), mins);
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
  no.onclick = () => { const u = uiOf(a.id); u.form = null; u.refused = null; redraw(); };
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
    // a required note or reason of only spaces is said here, in the page's language (the hub
    // refuses it with its own words)
    const required = f.elements[verb === "shelve" ? "reason" : "note"]?.required ?? false;
    if (required && blank(text.value)) {
      showMsg(a.id, ctx.t(verb === "shelve" ? "err_blank_reason" : verb === "ack" ? "err_red_note"
        : REVIEW_VERBS.has(verb) ? "err_blank_review" : "err_blank_note"));
      return;
    }
    if (verb === "ackpoint") ackPoint(a.id, u.pointIds, v("note"), u.pointEpoch);
    else if (verb === "ack") act(a.id, "ack", { note: v("note") });
    else if (verb === "steppoint") stepPoint(a.id, u.step, u.stepIds, v("note"), u.pointEpoch);
    else if (verb === "shelve") {
      let seconds = Number(v("duration"));
      if (v("duration") === "custom") {
        const m = Number(v("minutes"));
        if (!Number.isInteger(m) || m < 1 || m > SHELVE_MAX_MIN || v("minutes") === "") {
          showMsg(a.id, ctx.t("dur_bounds").replace("{max}", String(SHELVE_MAX_MIN)));
          return;
        }
        seconds = m * 60;
      }
      act(a.id, "shelve", { reason: v("reason"), duration_s: seconds });
    }
    else if (verb === "comment") act(a.id, "comment", { note: v("note") });
    else if (REVIEW_VERBS.has(verb)) act(a.id, verb, { decision: verb, note: v("note") });
    else act(a.id, verb, { step: verb, note: v("note") });
  };
  return f;
}
