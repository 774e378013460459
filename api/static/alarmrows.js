// The alarm list's rows (alarms.js): an alarm's row (its point, kind and level, value at its
// peak, states and buttons) and the row under it (the open form, and the alarm's facts and
// journal when expanded). A row is drawn anew only when what it shows changed.
import { fmtAlarmValue, fmtCst, kindLevel, pointNames } from "/static/alarmformat.js";
import { actionForm, buttonsFor, onButton } from "/static/alarmforms.js";
import { NEXT_STEP, ctx, ownIsa, pointOf, redraw, stepByPoint, stepKey, uiOf, waitingByPoint } from "/static/alarmstate.js";
import { el } from "/static/hazardforms.js";

function isaBadge(state) {
  const b = el("span", `isa isa-${state}`, ctx.t(`isa_${state}`));
  b.dataset.isa = state;
  return b;
}

// an enterprise and a site by name where they have one: a city's monitoring centre cannot tell
// enterprises apart by their ids, let alone by their sensors' ids
const enterpriseOf = (a) => a.tenant_name || a.tenant;
// a vehicle's alarms are of the site `vehicles`: said 车辆 in the page's language
const siteOf = (a) => a.site_name || (a.site === "vehicles" ? ctx.t("site_vehicles") : a.site);

export function fillMain(tr, a) {
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
  tr.onclick = () => { u.expanded = !u.expanded; redraw(); ctx.onSelect(a.sensor); };
}

function journal(a) {
  const t = ctx.t;
  const label = (k, name) => (t(k) === k ? name : t(k));
  const box = el("div", "detail");
  const facts = el("dl", "facts");
  const fact = (k, v) => { if (v) facts.append(el("dt", "", t(k)), el("dd", "", v)); };
  if (ctx.centre()) fact("enterprise", a.tenant_name ? `${a.tenant_name} (${a.tenant})` : a.tenant);
  fact("site", a.site_name ? `${a.site_name} (${a.site})` : siteOf(a));
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
  // (offline they are off, as the alarm's own buttons are: what they open writes to the hub; the
  // hazard item an alarm is of may still be looked at)
  for (const more of [ctx.detailAction?.(a)].flat()) {
    if (!more) continue;
    if (!ctx.live() && more.tagName === "BUTTON" && !more.classList.contains("hz-open-item")) {
      more.disabled = true;
      more.title = t("offline");
    }
    box.append(more);
  }
  return box;
}

export function fillExtra(tr, a) {
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
