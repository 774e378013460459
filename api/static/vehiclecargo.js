// What a vehicle carries and who drives it, under its alarm's journal: the driver and the
// e-waybill (电子运单) its enterprise's JT/T 809 platform last reported, as GET
// /api/v1/vehicles/{id} answers them (a viewer key is given the numbers masked). Read when the
// alarm is opened, kept a minute: an operator at a tanker's crash reads at once what it carries.
import { hubRequest } from "/static/hubrequest.js";

export const CARGO_STRINGS = {
  zh: { cargo_title: "驾驶员与运单（平台上报）", cargo_driver: "驾驶员", cargo_licence: "从业资格证",
        cargo_waybill: "电子运单", cargo_none: "企业平台未上报驾驶员和运单", cargo_cut: "（仅前 4096 字）",
        cargo_at: "上报于", cargo_error: "读取驾驶员和运单失败" },
  en: { cargo_title: "Driver and waybill (reported by the platform)", cargo_driver: "Driver",
        cargo_licence: "Qualification certificate", cargo_waybill: "E-waybill",
        cargo_none: "the enterprise's platform has reported no driver and no waybill", cargo_cut: " (its first 4,096 characters)",
        cargo_at: "reported", cargo_error: "the driver and waybill could not be read" },
};

const KEEP_MS = 60_000;
let ctx = null;                  // {t, key(), fmt(ms)}
const cache = new Map();         // vehicle id -> {at, answer: Promise}

export function initCargo(context) { ctx = context; }
export function clearCargo() { cache.clear(); }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function read(vehicle) {
  const kept = cache.get(vehicle);
  if (kept && Date.now() - kept.at < KEEP_MS) return kept.answer;
  const answer = hubRequest(ctx.key(), `/api/v1/vehicles/${encodeURIComponent(vehicle)}`);
  cache.set(vehicle, { at: Date.now(), answer });
  answer.catch(() => cache.delete(vehicle));  // a failed read is tried again at the next opening
  return answer;
}

function fill(box, doc) {
  const t = ctx.t;
  box.replaceChildren(el("h4", "", t("cargo_title")));
  const { driver, waybill } = doc;
  if (!driver && !waybill) { box.append(el("p", "cargo-none", t("cargo_none"))); return; }
  const facts = el("dl", "facts");
  const fact = (k, v) => { if (v) facts.append(el("dt", "", t(k)), el("dd", "", v)); };
  if (driver) {
    fact("cargo_driver", [driver.name, driver.id_number].filter(Boolean).join(" · "));
    fact("cargo_licence", [driver.licence, driver.org].filter(Boolean).join(" · "));
    fact("cargo_at", ctx.fmt(driver.at));
  }
  box.append(facts);
  if (waybill) {
    box.append(el("div", "cargo-label", `${t("cargo_waybill")}${waybill.truncated ? t("cargo_cut") : ""} · ${t("cargo_at")} ${ctx.fmt(waybill.at)}`));
    box.append(el("pre", "cargo-waybill", waybill.text));  // as the platform wrote it
  }
}

/** The driver and waybill box of a vehicle's alarm (null for any other alarm). */
export function cargoFromAlarm(a) {
  if (!ctx || a.site !== "vehicles") return null;
  const box = el("div", "cargo");
  box.dataset.vehicle = a.device;
  read(a.device).then((doc) => fill(box, doc)).catch(() => {
    box.replaceChildren(el("p", "cargo-error", ctx.t("cargo_error")));
  });
  return box;
}
