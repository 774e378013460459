// The alarm list's state its modules share (alarms.js and its rows, forms and bulk actions): the
// alarms held, each row's and each form's state, the page's context and the stream's epoch; and
// what an alarm held means for this key (waiting for its acknowledgement, at which step, in which
// order).
import { hubRequest } from "/static/hubrequest.js";

export const alarms = new Map();  // alarm id -> the newest AlarmPublic seen
export const NEXT_STEP = { received: "verify", verified: "dispose", disposed: "close" };
export const NEXT_STEP_VERBS = new Set(Object.values(NEXT_STEP));
// the monitoring centre's review of an enterprise's closing (审核销号): POST .../review
export const REVIEW_VERBS = new Set(["approve", "return"]);
export const ui = new Map();    // alarm id -> {expanded, form, refused, busy, msg, msgOk, pointIds, pointRed, pointEpoch}
export const rows = new Map();  // alarm id -> {main, extra, sig}
export let ctx = null;          // {t, key(), live(), actions(), centre(), tenant(), unit(sensor), onSelect(sensor), onChange(), detailAction(alarm)}
// the hub's data the page holds belongs to one connection of the event stream: a reconnect
// (perhaps to a hub restarted with another alarm store, where ids mean other alarms) reads it
// all afresh and starts a new epoch; answers of requests made in an older epoch are dropped
export let epoch = 0;
let draw = () => {};  // alarms.js's renderAlarms

/** The page's context and the list's drawing (alarms.js `initAlarms`). */
export function bind(context, render) {
  ctx = context;
  draw = render;
}

/** A new connection of the event stream (or a sign-out): answers of older requests are dropped. */
export function nextEpoch() {
  return ++epoch;
}

/** Draw the list anew (alarms.js `renderAlarms`): what an action changed shows at once. */
export const redraw = () => draw();

export const isOpen = (a) => !(a.isa_state === "normal" && a.disposal === "closed");
export const version = (a) => (a.events.length ? a.events[a.events.length - 1].id : 0);
export const uiOf = (id) => { if (!ui.has(id)) ui.set(id, { expanded: false, form: null, busy: false, msg: "" }); return ui.get(id); };

export const request = (path, init = {}) => hubRequest(ctx.key(), path, init);

/** Keep a snapshot of an alarm unless one with a later journal event is already held. */
export function accept(a) {
  const have = alarms.get(a.id);
  if (!have || version(a) >= version(have)) alarms.set(a.id, a);
}

/** The same alarm (not merely the same id: a hub restarted with a fresh store numbers anew). */
export const same = (a, b) => a.tenant === b.tenant && a.sensor === b.sensor && a.rule === b.rule
  && a.side === b.side && a.raised_at === b.raised_at;

// the acknowledgement a key gives and waits for: the centre's (`centre_acked`) for the supervising
// centre's key, the enterprise's (the ISA state's) for any other; an alarm of a hub of before
// (no `centre_acked`) has one acknowledgement for both
export const centreAck = () => !!ctx?.centreAck?.();
export const byCentre = (a) => centreAck() && typeof a.centre_acked === "boolean";
const ACKABLE = new Set(["unack", "ack", "rtn_unack", "normal"]);
export const mineAcked = (a) => (byCentre(a) ? a.centre_acked : a.acked);
export const waiting = (a) => (byCentre(a) ? ACKABLE.has(a.isa_state) && !a.centre_acked
  : a.isa_state === "unack" || a.isa_state === "rtn_unack");
// the ISA state as the caller's side sees it: for the centre's key, acknowledged or not by the
// centre (`centre_acked`); the enterprise's (`isa_state`) is shown beside it. A red "rtn unack"
// badge the centre had acknowledged, and no button to act on it, read as work left undone
// (helper-133); the list sorted by it too
export const ownIsa = (a) => {
  if (!byCentre(a) || !ACKABLE.has(a.isa_state)) return a.isa_state;
  const active = a.state === "active";
  if (a.centre_acked) return active ? "ack" : "normal";
  return active ? "unack" : "rtn_unack";
};
export const reachedRed = (a) => (a.peak_tier ?? a.tier) === "red";
export const pointOf = (a) => [a.tenant, a.sensor, a.rule, a.side].join("\u0001");
export const waitingByPoint = new Map();  // point -> its alarms waiting for an acknowledgement

// a disposal step for many at once (alarmbulk.js): the shown alarms of one point at the same step
export const stepKey = (a) => `${pointOf(a)}\u0001${a.disposal}`;
export const steppable = (a) => !!NEXT_STEP[a.disposal] && !(a.disposal === "disposed" && a.state === "active");
export const stepByPoint = new Map();  // point and disposal -> its shown alarms that may take the next step

// what needs the operator now comes first: the alarms waiting for its acknowledgement, active or
// returned to normal (ISA-18.2: a return to normal unacknowledged still needs one), the highest
// tier they reached first, active before returned within a tier, then the newest; then active
// acknowledged ones by tier, then the rest (returned, shelved, out of service...), those past
// their disposal deadline first. An old recovered alarm past its deadline no longer sits above a
// new red one (a dispatcher's night shift), nor a red one that returned unacknowledged below three
// active blue ones (helper-240: it went quiet and sank, in a flood below hundreds)
const TIER_RANK = { red: 3, orange: 2, yellow: 1, blue: 0 };
export const tierRank = (a) => TIER_RANK[a.tier] ?? -1;
// a waiting alarm by the highest tier it reached: its red was never acknowledged
const reachedRank = (a) => Math.max(tierRank(a), TIER_RANK[a.peak_tier] ?? -1);
// (returned but still unacknowledged ones were never cut: they sat below 100 acknowledged overdue
// rows, helper-108)
const GROUP = { unack: 0, rtn_unack: 0, ack: 1 };
/** 0: waiting for this key's acknowledgement, 1: active acknowledged, 2: the rest. */
export const group = (a) => GROUP[ownIsa(a)] ?? 2;
export function byUrgency(a, b) {
  const g = group(a) - group(b);
  if (g) return g;
  if (group(a) === 0) {
    return reachedRank(b) - reachedRank(a) || (ownIsa(a) === "unack" ? 0 : 1) - (ownIsa(b) === "unack" ? 0 : 1)
      || b.overdue - a.overdue || b.id - a.id;
  }
  if (group(a) === 1) return tierRank(b) - tierRank(a) || b.overdue - a.overdue || b.id - a.id;
  return b.overdue - a.overdue || b.id - a.id;
}
