// The forms of the hidden-danger page (hazards.js): the report of a new item, and each step an
// item takes (docs/hazards.md). Each form gives its request's body (`form.body()`), the fields
// given or changed only: the hub says what a step lacks (its refusal is shown as it says it).

export const GRADES = ["general", "major"];
export const SOURCES = ["self_check", "inspection", "monitoring_alarm", "complaint"];
export const STOPS = ["full", "partial", "none"];
export const PLAN = ["objectives", "methods", "funds_materials", "responsible", "schedule", "safety_emergency"];
// the steps whose comment the hub requires (why a deadline moves, what was done or is wrong)
const COMMENT_REQUIRED = new Set(["deadline", "request-review", "reject", "close", "comment"]);

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A deadline chosen as a day: the end of that day, China time (the next midnight, +08:00). */
export const dayEnd = (v) => (v ? Date.parse(`${v}T00:00:00+08:00`) + 86400000 : NaN);

function field(f, t, name, input, label, hint = "") {
  input.name = name;
  const l = el("label", `hz-field hz-field-${name}`);
  l.append(el("span", "hz-label", label), input);
  if (hint) l.append(el("span", "hint", hint));
  f.append(l);
  return input;
}

const text = (value = "") => Object.assign(el("input"), { type: "text", value, maxLength: 500 });
const area = (value = "") => Object.assign(el("textarea"), { value, rows: 2, maxLength: 2000 });
const day = () => Object.assign(el("input"), { type: "date" });

function select(choices, value, blank) {
  const s = el("select");
  if (blank !== undefined) s.append(Object.assign(el("option", "", blank), { value: "" }));
  for (const [v, label] of choices) s.append(Object.assign(el("option", "", label), { value: v }));
  s.value = value ?? "";
  return s;
}

function buttons(f, t, submit, onCancel) {
  const ok = el("button", "submit", submit);
  ok.type = "submit";
  const no = el("button", "cancel", t("hz_cancel"));
  no.type = "button";
  no.onclick = onCancel;
  // Escape leaves the form, as the cancel button does
  f.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.preventDefault(); onCancel(); } });
  f.append(el("div", "hz-buttons"));
  f.lastChild.append(ok, no);
}

/** The form of `step` for `item`; `body()` gives what it sends. */
export function stepForm(t, item, step, onCancel) {
  const f = el("form", "act-form hz-form");
  f.dataset.step = step;
  f.dataset.lang = document.documentElement.lang;
  f.append(el("p", "bulk-ask", `${t(`hz_act_${step}`)} · #${item.id}`));
  const v = (name) => f.elements[name]?.value ?? "";
  const changed = (name, was) => v(name).trim() !== (was ?? "").trim();
  if (step === "grade") {
    field(f, t, "grade", select(GRADES.map((g) => [g, t(`hz_gr_${g}`)]), item.grade), t("hz_f_grade"));
    field(f, t, "deadline", day(), t("hz_f_deadline"), t("hz_day_hint"));
    field(f, t, "category", text(item.category), t("hz_f_category"));
  } else if (step === "deadline") {
    field(f, t, "deadline", day(), t("hz_f_deadline"), t("hz_day_hint")).required = true;
  } else if (step === "plan") {
    field(f, t, "responsible_person", text(item.responsible_person), t("hz_f_responsible_person"));
    field(f, t, "measures", area(item.measures), t("hz_f_measures"));
    const funds = Object.assign(el("input"), { type: "number", min: "0", step: "any" });
    funds.value = item.funds_yuan ?? "";
    field(f, t, "funds_yuan", funds, t("hz_f_funds_yuan"));
    field(f, t, "interim_measures", area(item.interim_measures), t("hz_f_interim_measures"));
    field(f, t, "production_stop", select(STOPS.map((s) => [s, t(`hz_ps_${s}`)]), item.production_stop, "—"),
      t("hz_f_production_stop"));
    const set = el("fieldset", "hz-plan");
    set.append(el("legend", "", t("hz_plan_six")));
    f.append(set);
    for (const p of PLAN) field(set, t, `plan_${p}`, area(item.plan?.[p] ?? ""), t(`hz_pl_${p}`));
  }
  const must = COMMENT_REQUIRED.has(step);
  const comment = field(f, t, "comment", area(), t(must ? "hz_comment_req" : "hz_comment_opt"),
    step === "grade" ? t("hz_grade_hint") : "");
  comment.required = must;
  buttons(f, t, t("hz_submit"), onCancel);
  f.body = () => {
    const b = {};
    if (step === "grade") {
      b.grade = v("grade");
      if (v("deadline")) b.deadline = dayEnd(v("deadline"));
      if (changed("category", item.category)) b.category = v("category").trim();
    } else if (step === "deadline") {
      b.deadline = dayEnd(v("deadline"));
    } else if (step === "plan") {
      for (const n of ["responsible_person", "measures", "interim_measures"]) if (changed(n, item[n])) b[n] = v(n);
      if (v("funds_yuan") !== "" && Number(v("funds_yuan")) !== item.funds_yuan) b.funds_yuan = Number(v("funds_yuan"));
      if (v("production_stop") && v("production_stop") !== item.production_stop) b.production_stop = v("production_stop");
      const plan = {};
      for (const p of PLAN) if (changed(`plan_${p}`, item.plan?.[p])) plan[p] = v(`plan_${p}`);
      if (Object.keys(plan).length) b.plan = plan;
    }
    if (v("comment").trim()) b.comment = v("comment");
    return b;
  };
  return f;
}

/** The report of a new item: of one of `sites` ([{tenant, id, name}], the key's), or opened
 * from `alarm` (its tenant, site and sensor are the hub's to take). */
export function reportForm(t, sites, tenant, alarm, onCancel, tenantName) {
  const f = el("form", "act-form hz-form hz-report-form");
  f.dataset.step = "report";
  f.dataset.lang = document.documentElement.lang;
  f.append(el("p", "bulk-ask", alarm
    ? t("hz_from_alarm").replace("{id}", String(alarm.id)).replace("{sensor}", alarm.sensor)
      .replace("{site}", `${tenantName(alarm.tenant)} / ${alarm.site_name || alarm.site}`)
    : t("hz_report")));
  const v = (name) => f.elements[name]?.value ?? "";
  if (!alarm) {
    const tenants = [...new Set(sites.map((s) => s.tenant))];
    const who = field(f, t, "tenant", select(tenants.map((x) => [x, tenantName(x)]), tenant || tenants[0]),
      t("hz_f_tenant"));
    who.closest("label").hidden = tenants.length < 2;  // an enterprise's own key: its own
    const where = field(f, t, "site", el("select"), t("hz_f_site"));
    const fill = () => {
      where.replaceChildren(...sites.filter((s) => s.tenant === who.value)
        .map((s) => Object.assign(el("option", "", s.name ? `${s.name} (${s.id})` : s.id), { value: s.id })));
    };
    who.addEventListener("change", fill);
    fill();
  }
  field(f, t, "description", area(), t("hz_f_description")).required = true;
  field(f, t, "category", text(), t("hz_f_category"));
  field(f, t, "grade", select(GRADES.map((g) => [g, t(`hz_gr_${g}`)]), "general"), t("hz_f_assessed"));
  field(f, t, "source", select(SOURCES.map((s) => [s, t(`hz_src_${s}`)]), "", t("hz_src_default")), t("hz_f_source"));
  field(f, t, "location", text(), t("hz_f_location"));
  field(f, t, "found_by", text(), t("hz_f_found_by"));
  field(f, t, "interim_measures", area(), t("hz_f_interim_measures"));
  field(f, t, "deadline", day(), t("hz_f_proposed_deadline"), t("hz_proposed_hint"));
  buttons(f, t, t("hz_submit"), onCancel);
  f.body = () => {
    const b = alarm ? { from_alarm: alarm.id } : { tenant: v("tenant"), site: v("site") };
    b.description = v("description");
    b.grade = v("grade");
    for (const n of ["category", "source", "location", "found_by", "interim_measures"]) if (v(n).trim()) b[n] = v(n).trim();
    if (v("deadline")) b.deadline = dayEnd(v("deadline"));
    return b;
  };
  return f;
}

/** A form of `lang` rebuilt in the page's language, with what was typed and chosen. */
export function relabel(old, fresh) {
  for (const input of old.elements) {
    if (input.name && fresh.elements[input.name]) fresh.elements[input.name].value = input.value;
  }
  fresh.elements.tenant?.dispatchEvent(new Event("change"));
  if (old.elements.site && fresh.elements.site) fresh.elements.site.value = old.elements.site.value;
  return fresh;
}
