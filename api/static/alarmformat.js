// How the alarm list and the other pages write an alarm's times, values, kind and level, and its
// point and device (alarms.js, handover.js, the hazard and bypass pages): in the operator's
// language (`t`, the page's words), times in China time.

const CST = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", hourCycle: "h23",
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
export function fmtCst(ms) {
  if (ms === null || ms === undefined) return "—";
  const p = Object.fromEntries(CST.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}
// a datetime-local input's value read and written in China time, whatever the browser's zone
export const fromInput = (v) => (v ? Date.parse(`${v}:00+08:00`) : NaN);
export const toInput = (ms) => fmtCst(ms).slice(0, 16).replace(" ", "T");
const fmtVal = (v, unit) => (v === null || v === undefined ? "—" : `${Number(v.toFixed(3))} ${unit || ""}`.trim());
const DURATION = {
  zh: { h: "小时", min: "分", s: "秒", d: "天", sep: "" },
  en: { h: "h", min: "min", s: "s", d: "d", sep: " " },
};
/** An alarm's value in its `value_unit` as an operator reads it: driving, silence or a
 * calibration held in seconds as hours and minutes ("8小时41分", not "31260 s"), days as 天,
 * readings lost as 条; the others as the number and the unit. */
export function fmtAlarmValue(v, unit, t) {
  if (v === null || v === undefined) return "—";
  const w = DURATION[document.documentElement.lang.startsWith("zh") ? "zh" : "en"];
  const n = (x, u) => `${x}${w.sep}${u}`;
  if (unit === "s") {
    const total = Math.round(v);
    if (Math.abs(total) < 60) return n(total, w.s);
    const h = Math.trunc(total / 3600), m = Math.trunc((total % 3600) / 60);
    return h === 0 ? n(m, w.min) : m === 0 ? n(h, w.h) : `${n(h, w.h)}${w.sep}${n(m, w.min)}`;
  }
  if (unit === "d") return n(Number(v.toFixed(1)), w.d);
  return fmtVal(v, unit === "readings" ? t("readings") : unit);
}

/** The alarm's kind and level in the operator's language: a label where there is one, else
 * the name the rules give; the kind only beside a level of its own (not for above/below). */
// who judged the alarm, when not the sensor's own rule: the two overspeed alarms of a vehicle
// (its reading against the pack's limit, the platform's analysis by zone and duration) and the
// terminal's own must not look alike
// (and the 苏标 active-safety unit's ADAS and DSM cameras: `dsm_fatigue` is the camera's, the
// platform's `fatigue` the driving time's)
const BY = { fleet: "by_fleet", terminal: "by_terminal", active_safety: "by_active_safety" };
const LEVEL_ONLY = new Set(["terminal", "comm_loss", "gateway"]);  // the level names say it all
// a kind whose one level its name says already: the kind alone ("标定/手动超时", not "… 维护超时")
const KIND_SAYS = { maintenance: "overdue", calibration_due: "calibration_overdue" };

export function kindLevel(a, t) {
  const label = (k, name) => (t(k) === k ? name : t(k));
  const level = label(`lvl_${a.level_name}`, a.level_name);
  const by = BY[a.rule] ? ` (${t(BY[a.rule])})` : "";
  if (a.side === "above" || a.side === "below") return level + by;
  const kind = label(`kind_${a.side}`, a.side);
  if (KIND_SAYS[a.side] === a.level_name) return kind + by;
  return (kind === level || LEVEL_ONLY.has(a.rule) ? level : `${kind} ${level}`) + by;
}

/** An alarm's point and device as the registry names them, the ids kept: `point` is the
 * sensor's id with its tag and location ("ch4-t1 · T1 · 1301 回风巷", a vehicle's plate);
 * `device` what it measures on which device ("甲烷 · KJ 3 号分站 (kj-sub-3)"), the device's id
 * alone where the configuration names it not (a gateway never is); "" for an alarm of a hub that
 * gives neither. */
export function pointNames(a, t) {
  const label = (k, name) => (t(k) === k ? name : t(k));
  const point = [a.sensor, a.tag, a.location].filter(Boolean).join(" · ");
  if (a.sensor_kind === undefined) return { point, device: "" };  // a hub before the names
  const kind = a.sensor_kind ? label(`k_${a.sensor_kind}`, a.sensor_kind) : "";
  // a vehicle's plate is its location already
  const dev = a.device_name && a.device_name !== a.location ? `${a.device_name} (${a.device})` : a.device;
  return { point, device: [kind, dev].filter(Boolean).join(" · ") };
}
