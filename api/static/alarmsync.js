// The alarm list kept whole under a flood (alarms.js). Each alarm event's whole alarm is fetched
// through a queue, at most FETCHES at once: a flood's hundreds asked at once waited in the
// browser's own queue (six connections to the hub) past their 20 s and were lost without a word,
// the newest first (helper-240: 175 of 231 shown). More than FETCH_MANY waiting to be fetched are
// read as one list instead. And the alarms waiting for this key's acknowledgement are compared
// with the hub's (GET /api/v1/alarms of those waiting) after a flood (more than FETCHES waiting
// to be fetched), after any fetch that failed, after the stream dropped events and every minute:
// what differs is taken from the hub's answer, or read again.
import { accept, alarms, centreAck, epoch, request, waiting } from "/static/alarmstate.js";

export const FETCHES = 4;
export const FETCH_MANY = 50;
// the comparison this long after the last new alarm (a flood's end), and during a long flood at
// least this often
export const CHECK_AFTER_MS = 2000;
export const CHECK_MOST_MS = 10000;
// the most alarms waiting the comparison reads (the API's most)
export const WAITING_MAX = 1000;

const queue = new Map();  // alarm id -> [the epoch it was asked in, the promises' resolves]
let inFlight = 0;
let checkTimer = null;
let checkFrom = 0;        // when the first call of the comparison now due came
let hooks = { render: () => {}, reload: () => Promise.resolve() };
// the comparisons made and the alarms they found missing or changed (the browser tests read it)
export const healed = { checks: 0, differed: 0 };

/** The list's drawing and its full read (alarms.js `renderAlarms`, `loadAlarms`). */
export function bindSync(render, reload) { hooks = { render, reload }; }

/** Forget what waits (a sign-out). */
export function resetSync() {
  for (const [, done] of queue.values()) for (const f of done) f();
  queue.clear();
  clearTimeout(checkTimer); checkTimer = null; checkFrom = 0;
}

/** The whole alarm, fetched in its turn; the promise settles when it is held (or given up: a
 * failure brings the comparison, which reads it again). */
export function fetchAlarm(id) {
  return new Promise((resolve) => {
    const q = queue.get(id);
    if (q && q[0] === epoch) q[1].push(resolve); else queue.set(id, [epoch, [resolve]]);
    if (queue.size > FETCH_MANY) {
      // a flood: the list read at once instead of each alarm in turn
      resetSync();
      Promise.resolve(hooks.reload()).catch(() => {}).finally(() => checkSoon(0));
      return;
    }
    // more than are asked at once: a flood, compared with the hub's once it is over
    if (queue.size > FETCHES) checkSoon();
    pump();
  });
}

function pump() {
  while (inFlight < FETCHES && queue.size) {
    const [id, [mine, done]] = queue.entries().next().value;
    queue.delete(id);
    if (mine !== epoch) { for (const f of done) f(); continue; }
    inFlight++;
    request(`/api/v1/alarms/${id}`)
      .then((full) => { if (mine === epoch) { accept(full); hooks.render(); } })
      .catch(() => { if (mine === epoch) checkSoon(); })
      .finally(() => { inFlight--; for (const f of done) f(); pump(); });
  }
}

/** Compare soon: `ms` after the last call, and no later than CHECK_MOST_MS after the first. */
export function checkSoon(ms = CHECK_AFTER_MS) {
  const now = Date.now();
  if (!checkTimer) checkFrom = now;
  clearTimeout(checkTimer);
  const wait = Math.max(0, Math.min(ms, checkFrom + CHECK_MOST_MS - now));
  checkTimer = setTimeout(() => {
    checkTimer = null;
    checkWaiting().catch(() => {});  // offline: the next minute's, or the reconnect's read
  }, wait);
}

/** The alarms waiting for this key's acknowledgement, as the hub has them, against those held:
 * the hub's are kept, and one held as waiting that the hub no longer lists is read again.
 * Returns how many differed. */
export async function checkWaiting() {
  const mine = epoch;
  const q = centreAck() ? "open=true&centre_ack=false" : "isa_state=unack,rtn_unack";
  const got = await request(`/api/v1/alarms?${q}&limit=${WAITING_MAX}`);
  if (mine !== epoch) return 0;
  const held = [...alarms.values()].filter(waiting);
  const heldIds = new Set(held.map((a) => a.id));
  let differed = 0;
  for (const a of got) {
    if (waiting(a) && !heldIds.has(a.id)) differed++;
    accept(a);
  }
  if (got.length < WAITING_MAX) {
    const ids = new Set(got.map((a) => a.id));
    for (const a of held) if (!ids.has(a.id)) { differed++; fetchAlarm(a.id); }
  }
  healed.checks++; healed.differed += differed;
  hooks.render();
  return differed;
}
