// The hidden-danger page's item detail (hazards.js, docs/hazards.md): its facts, its plan, the
// steps this key may take (as the hub says them: the detail's `steps`) and its audit; and the
// words of times, deadlines and refusals the page shows.
import { fmtCst } from "/static/alarmformat.js";
import { PLAN, el } from "/static/hazardforms.js";

export const STATUSES = ["reported", "graded", "rectifying", "review_requested", "accepted", "rejected", "closed"];
// who takes each step, from which statuses (alerts/hazardflow.py STEPS): only for a hub whose
// detail does not say its `steps` (older than it); otherwise the hub's list is offered as it is
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
const KNOWN = new Set(STEPS.map(([s]) => s));
const DAY_MS = 86400000, CST_MS = 8 * 3600000;
// the hub's names of what a start lacks, and the form's labels of them
const FIELDS = { deadline: "hz_f_deadline", responsible_person: "hz_f_responsible_person",
  measures: "hz_f_measures", production_stop: "hz_f_production_stop" };

export const actKey = (step) => `hz_act_${step.replace("-", "_")}`;

/** The steps `party` may take on `x`: the hub's `steps` (those this page has a form for), or,
 * from a hub that does not say them, the table's from the item's status. */
export function stepsOf(x, party) {
  if (!party || !x) return [];
  if (Array.isArray(x.steps)) return x.steps.filter((s) => KNOWN.has(s));
  return STEPS.filter(([, who, from]) => (who === "both" || who === party) && from.includes(x.status))
    .map(([s]) => s);
}

/** A time to the minute, Beijing time. */
export const when = (ms) => (ms === null || ms === undefined ? "—" : fmtCst(ms).slice(0, 16));

/** A deadline: one at a Beijing midnight is the end of the day chosen (2026-12-17 24:00, not
 * 2026-12-18 00:00); another as it is. */
export function due(ms) {
  if (ms === null || ms === undefined) return "—";
  return (ms + CST_MS) % DAY_MS === 0 ? `${fmtCst(ms - DAY_MS).slice(0, 10)} 24:00` : when(ms);
}

/** The lead line of a refusal naming what an item lacks ("... missing responsible_person,
 * measures"), by the form's labels in the page's language; "" when it names none or one this
 * page does not know (the hub's text alone is shown then). */
export function missingLead(t, why) {
  const m = /\bmissing ([a-z_.]+(?:, [a-z_.]+)*)\s*$/.exec(why ?? "");
  if (!m) return "";
  const keys = m[1].split(", ").map((n) => (n.startsWith("plan.") ? `hz_pl_${n.slice(5)}` : FIELDS[n]));
  if (keys.some((k) => !k || t(k) === k)) return "";
  return t("hz_missing").replace("{fields}", keys.map((k) => t(k)).join(t("hz_list_sep")));
}

/** `nodes` as `box`'s children; one already there is not moved (a form keeps its focus). */
export function place(box, nodes) {
  for (const c of [...box.childNodes]) if (!nodes.includes(c)) c.remove();
  nodes.forEach((n, i) => { if (box.childNodes[i] !== n) box.insertBefore(n, box.childNodes[i] ?? null); });
}

/** The note of `where` (the report form's, or the item's): a refusal's lead line (what is
 * missing, in the page's language) above the hub's own words. */
export function message(note, where) {
  const mine = note?.where === where;
  const m = el("div", `msg hz-msg ${note?.ok ? "ok" : "error"}`);
  if (mine && note.lead) m.append(el("div", "hz-missing", note.lead), el("div", "hz-why", note.text));
  else m.textContent = mine ? note.text : "";
  m.hidden = !mine;
  m.setAttribute("role", note?.ok ? "status" : "alert");
  return m;
}

export function badges(t, x) {
  const out = [];
  if (x.overdue) out.push(el("span", "overdue hz-overdue", t("hz_overdue")));
  if (x.review_overdue) out.push(el("span", "overdue hz-review-overdue", t("hz_review_overdue")));
  return out;
}

export const label = (t, k, fallback) => (t(k) === k ? fallback : t(k));

function changesText(t, changes) {
  const out = [];
  for (const [k, v] of Object.entries(changes ?? {})) {
    let said = v;
    if (k.endsWith("deadline")) said = due(v);
    else if (k === "grade") said = label(t, `hz_gr_${v}`, v);
    else if (k === "production_stop") said = label(t, `hz_ps_${v}`, v);
    else if (k === "plan" && v && typeof v === "object") {
      said = PLAN.filter((p) => v[p]).map((p) => `${t(`hz_pl_${p}`)}: ${v[p]}`).join("; ");
    }
    out.push(`${label(t, `hz_f_${k}`, k)}: ${said ?? "—"}`);
  }
  return out.join("; ");
}

/** Draw `v.item` in `box`: v = {t, item, party, form, busy, note, tenantName(id),
 * siteName(tenant, id), onStep(step)}. With no item open, only the item's note (a read that
 * failed) is shown. */
export function drawDetail(box, v) {
  const { t, item: x, form } = v;
  const note = message(v.note, "item");
  box.hidden = !x && note.hidden;
  if (!x) { place(box, [note]); return; }
  const status = (s) => label(t, `hz_st_${s}`, s);
  const head = el("h3", "", `#${x.id} ${x.description}`);
  head.tabIndex = -1;
  const facts = el("dl", "facts hz-facts");
  const fact = (k, val) => {
    if (val === null || val === undefined || val === "") return;
    const dd = el("dd", "", typeof val === "string" ? val : "");
    if (typeof val !== "string") dd.append(...val);
    dd.dataset.fact = k;
    facts.append(el("dt", "", t(k)), dd);
  };
  fact("hz_f_status", [el("span", `hz-st-${x.status}`, status(x.status)), ...badges(t, x)]);
  fact("hz_f_tenant", v.tenantName(x.tenant));
  fact("hz_f_site", v.siteName(x.tenant, x.site));
  fact("hz_f_grade", label(t, `hz_gr_${x.grade}`, x.grade) + (x.status === "reported" ? t("hz_assessed") : ""));
  fact("hz_f_category", x.category);
  fact("hz_f_source", label(t, `hz_src_${x.source}`, x.source));
  fact("hz_f_location", x.location);
  fact("hz_f_found_at", when(x.found_at));
  fact("hz_f_found_by", x.found_by);
  fact("hz_f_reported_by", `${x.reported_by} · ${when(x.reported_at)}`);
  fact("hz_f_alarm_ids", x.alarm_ids.map((a) => `#${a}`).join(", "));
  fact("hz_f_sensor_ids", x.sensor_ids.join(", "));
  fact("hz_f_deadline", x.deadline === null ? "" : due(x.deadline));
  fact("hz_f_interim_measures", x.interim_measures);
  fact("hz_f_responsible_person", x.responsible_person);
  fact("hz_f_measures", x.measures);
  fact("hz_f_funds_yuan", x.funds_yuan === null ? "" : String(x.funds_yuan));
  fact("hz_f_production_stop", x.production_stop ? label(t, `hz_ps_${x.production_stop}`, x.production_stop) : "");
  fact("hz_f_requested_at", x.requested_at === null ? "" : when(x.requested_at));
  fact("hz_f_review_due", x.review_due === null ? "" : when(x.review_due));
  if (x.closed_at !== null) fact("hz_f_closed_by", `${x.closed_by ?? ""} · ${when(x.closed_at)}`);
  // a major item's governance plan, its six elements (those given)
  const plan = el("dl", "facts hz-plan-facts");
  for (const p of PLAN.filter((k) => x.plan?.[k])) plan.append(el("dt", "", t(`hz_pl_${p}`)), el("dd", "", x.plan[p]));
  // the steps this key may take now, as the hub says them
  const acts = el("div", "acts hz-acts");
  acts.setAttribute("role", "group");
  acts.setAttribute("aria-label", t("hz_actions"));
  const mine = stepsOf(x, v.party);
  for (const step of mine) {
    const b = el("button", `act hz-act${form?.step === step ? " on" : ""}`, t(actKey(step)));
    b.type = "button";
    b.dataset.step = step;
    b.setAttribute("aria-pressed", String(form?.step === step));
    b.disabled = v.busy;
    b.onclick = () => v.onStep(step);
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
      ? `${status(e.from_status)} → ${status(e.to_status)}` : status(e.to_status);
    r.append(el("td", "", fmtCst(e.at)), el("td", "hz-ev-action", label(t, actKey(e.action), e.action)),
      el("td", "", change), el("td", "actor", e.actor ?? t("hz_party_hub")),
      el("td", "", label(t, `hz_party_${e.party}`, e.party)), el("td", "note", e.comment || ""),
      el("td", "note hz-ev-changes", changesText(t, e.changes)));
    audit.append(r);
  }
  // the heading or step button that had the focus has it again (the open form stays in place)
  const had = document.activeElement;
  const again = had === box.querySelector("h3") ? "h3"
    : had?.dataset?.step && box.contains(had) && !form?.el.contains(had) ? `.hz-act[data-step="${had.dataset.step}"]` : null;
  place(box, [head, facts, ...(plan.children.length ? [el("h4", "", t("hz_plan")), plan] : []),
    el("h4", "", t("hz_actions")), acts, ...(form && form.step !== "report" ? [form.el] : []),
    note, el("h4", "", t("hz_audit")), audit]);
  if (again) box.querySelector(again)?.focus();
}
