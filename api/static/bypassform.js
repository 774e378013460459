// The forms of the bypass-approvals page (bypasses.js, docs/rules.md "Bypass approvals"): the
// record of a loop's written approval and the revocation of one; and the hub's refusals of them
// in words, naming the fields at fault (the hub's own text shown under them).
import { fmtCst, fromInput, toInput } from "/static/alarmformat.js";
import { el } from "/static/hazardforms.js";

// a level whose name begins so is a bypass in effect (alerts/bypasses.py BYPASS_PREFIX): a
// sensor judged by a rule with such a level is a bypass flag, the sensor an approval names
const BYPASS_PREFIX = "bypassed";
const HOUR_MS = 3600000, MINUTE_MS = 60000;
// the hub takes a valid_from up to 24 h back (api/bypasses.py BACKDATE_MS); a default less 10 min,
// for the time the form takes to fill in
const BACKDATE_MS = 24 * HOUR_MS, FILL_MS = 10 * MINUTE_MS;
export const FIELDS = ["sensor", "approved_by", "reason", "measures", "ticket", "valid_from", "until", "note"];

/** Whether a sensor of GET /api/v1/sensors is a bypass flag an approval may name. */
export const isFlag = (s) => (s.levels ?? []).some((lv) => String(lv.name).startsWith(BYPASS_PREFIX));

/** A time to the minute, China time. */
export const when = (ms) => (ms === null || ms === undefined ? "—" : fmtCst(ms).slice(0, 16));

/** A sensor's place as the registry names it: its site (by name) and device, and location. */
export function placeOf(s) {
  if (!s) return "";
  const site = s.site_name ? `${s.site_name} (${s.site})` : s.site;
  return [`${site} / ${s.device}`, s.location].filter(Boolean).join(" · ");
}

function field(f, t, name, input, required) {
  input.name = name;
  input.required = required;
  const l = el("label", `hz-field bp-field bp-field-${name}`);
  l.append(el("span", "hz-label", `${t(`bp_n_${name}`)}${t(required ? "bp_required" : "bp_optional")}`), input);
  f.append(l);
  return input;
}

const text = (max) => Object.assign(el("input"), { type: "text", maxLength: max });
const area = () => Object.assign(el("textarea"), { rows: 2, maxLength: 2000 });
const stamp = (ms) => Object.assign(el("input"), { type: "datetime-local", value: toInput(ms) });

function buttons(f, t, submit, onCancel) {
  const ok = el("button", "submit", submit);
  ok.type = "submit";
  const no = el("button", "cancel", t("bp_cancel"));
  no.type = "button";
  no.onclick = onCancel;
  // Escape leaves the form, as the cancel button does
  f.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.preventDefault(); onCancel(); } });
  f.append(el("div", "hz-buttons"));
  f.lastChild.append(ok, no);
}

/** When the bypass of a `bypass_unapproved` alarm began, to the minute: its raise less its value
 * (the hours bypassed then); never earlier than the hub takes (24 h back), nor later than `now`. */
export function bypassStart(alarm, now) {
  const hours = Number.isFinite(alarm.value) ? alarm.value : 0;
  const began = Math.floor((alarm.started_ts - hours * HOUR_MS) / MINUTE_MS) * MINUTE_MS;
  const earliest = Math.ceil((Date.now() - BACKDATE_MS + FILL_MS) / MINUTE_MS) * MINUTE_MS;
  return Math.min(now, Math.max(began, earliest));
}

/** The record of an approval: of one of `flags` (the key's bypass flags), `sensor` chosen (an
 * alarm's: `alarm`), from now (an alarm's: from its bypass's start) until 8 h after now by
 * default; `body()` gives what it sends. */
export function recordForm(t, flags, sensor, alarm, onCancel, tenantName) {
  const f = el("form", "act-form hz-form bp-form");
  f.dataset.form = "record";
  f.dataset.lang = document.documentElement.lang;
  f.append(el("p", "bulk-ask", alarm
    ? t("bp_from_alarm").replace("{id}", String(alarm.id)).replace("{sensor}", alarm.sensor) : t("bp_record")));
  const pick = el("select");
  const several = new Set(flags.map((s) => s.tenant)).size > 1;
  for (const s of flags) {
    const label = [s.id, s.location].filter(Boolean).join(" · ");
    pick.append(Object.assign(el("option", "", several ? `${tenantName(s.tenant)} · ${label}` : label), { value: s.id }));
  }
  // an alarm's flag the list has not (the registry read later): still the one asked
  if (sensor && !flags.some((s) => s.id === sensor)) pick.append(Object.assign(el("option", "", sensor), { value: sensor }));
  if (sensor) pick.value = sensor;
  field(f, t, "sensor", pick, true);
  field(f, t, "approved_by", text(200), true);
  field(f, t, "reason", area(), true);
  field(f, t, "measures", area(), true);
  field(f, t, "ticket", text(200), false);
  const now = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
  field(f, t, "valid_from", stamp(alarm ? bypassStart(alarm, now) : now), true);
  field(f, t, "until", stamp(now + 8 * HOUR_MS), true);
  f.append(el("p", "hint bp-time-hint", t("bp_time_hint")));
  buttons(f, t, t("bp_submit"), onCancel);
  const v = (name) => f.elements[name]?.value ?? "";
  f.body = () => {
    const b = { sensor: v("sensor"), approved_by: v("approved_by"), reason: v("reason"), measures: v("measures") };
    if (v("ticket").trim()) b.ticket = v("ticket").trim();
    // (a time not given reads null: the hub names the field)
    for (const n of ["valid_from", "until"]) { const ms = fromInput(v(n)); b[n] = Number.isFinite(ms) ? ms : null; }
    return b;
  };
  return f;
}

/** The revocation of approval `a`: its note is required. */
export function revokeForm(t, a, onCancel) {
  const f = el("form", "act-form hz-form bp-revoke-form");
  f.dataset.form = "revoke";
  f.dataset.approval = String(a.id);
  f.dataset.lang = document.documentElement.lang;
  f.append(el("p", "bulk-ask", t("bp_revoke_ask").replace("{id}", String(a.id)).replace("{sensor}", a.sensor)));
  field(f, t, "note", area(), true);
  buttons(f, t, t("bp_revoke"), onCancel);
  f.body = () => ({ note: f.elements.note.value });
  return f;
}

// the hub's refusals (api/bypasses.py) as the page says them, and the fields each is about
const REFUSALS = [
  [/\buntil=\d+ is not later than/, "bp_r_until_past", ["until"]],
  [/\bvalid_from=\d+ is more than (\d+) h before/, "bp_r_from_early", ["valid_from"]],
  [/\bvalid_from=\d+ is more than (\d+) days after/, "bp_r_from_late", ["valid_from"]],
  [/until must be after valid_from/, "bp_r_order", ["valid_from", "until"]],
  [/covers at most (\d+) days/, "bp_r_span", ["valid_from", "until"]],
  [/has (\d+) approvals not ended already/, "bp_r_too_many", ["sensor"]],
  [/is no interlock bypass flag/, "bp_r_not_bypass", ["sensor"]],
  [/^sensor .* not found$/, "bp_r_not_found", ["sensor"]],
  [/only the centre revokes it/, "bp_r_centres", []],
  [/was revoked already/, "bp_r_revoked", []],
  [/may only read/, "bp_r_writer", []],
];

/** A refusal `e` ({status, why, errors}) in the page's words: {lead: lines above the hub's own
 * text, fields: the form's fields at fault}. */
export function refusal(t, e) {
  const fields = new Set();
  const lead = [];
  for (const x of Array.isArray(e.errors) ? e.errors : []) {
    const name = (x.loc || [])[1];
    if (FIELDS.includes(name)) fields.add(name);
  }
  for (const [re, k, about] of REFUSALS) {
    const m = re.exec(e.why ?? "");
    if (!m) continue;
    lead.push(t(k).replace("{n}", m[1] ?? ""));
    for (const n of about) fields.add(n);
    break;
  }
  if (fields.size) lead.push(t("bp_fields").replace("{fields}", [...fields].map((n) => t(`bp_n_${n}`)).join(t("bp_sep"))));
  return { lead, fields: [...fields] };
}

/** The fields `names` of form `f` marked at fault (the others not). */
export function markFields(f, names) {
  for (const input of f?.elements ?? []) {
    if (!input.name) continue;
    if (names.includes(input.name)) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

/** The note shown: a refusal's lead lines (in the page's language) above the hub's own words. */
export function message(note) {
  const m = el("div", `msg hz-msg bp-msg ${note?.ok ? "ok" : "error"}`);
  for (const line of note?.lead ?? []) m.append(el("div", "hz-missing bp-lead", line));
  m.append(el("div", "bp-why", note?.text ?? ""));
  m.hidden = !note;
  m.setAttribute("role", note?.ok ? "status" : "alert");
  return m;
}
