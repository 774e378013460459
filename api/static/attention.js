// The page's call for attention while alarms of tier orange or red are active and not yet
// acknowledged: a beep pattern (WebAudio, no files; red more insistent than orange) and their
// count in the tab's title ("(3) 报警 · hazardhub"). A new such alarm starts the sound at once;
// it stops when all are acknowledged. The mute in the header (remembered in this browser) stops
// the sound, never the title. A coal mine's dispatcher missed a red alarm on a silent page.
// An alarm that reached red and returned to normal unacknowledged still waits (ISA-18.2): it
// keeps calling, with orange's gentler pattern, and counts in the title; it went quiet and sank
// below the active blue ones (helper-240). A returned orange one is quiet, as before.

// every `every` ms, beeps of `hz` starting `beeps` s into the pattern
export const PATTERNS = {
  red: { every: 2000, hz: 1100, beeps: [0, 0.25, 0.5] },
  orange: { every: 8000, hz: 800, beeps: [0, 0.3] },
};
const BEEP_S = 0.18;
const baseTitle = document.title;
let t = (k) => k;
let muted = localStorage.getItem("hh-mute") === "1";
let audio = null;        // the AudioContext: made at the first gesture (or beep)
let tier = null;         // the loudest tier sounding: "red", "orange" or null
let known = new Set();   // the alarms sounding (a new one starts the pattern again)
let timer = null;

export function initAttention(translate) {
  t = translate;
  const b = document.querySelector("#mute");
  if (b) b.onclick = () => setMuted(!muted);
  // browsers let a page sound only after a user's gesture (the login click): a page opened with
  // its key remembered sounds from the first click or key anywhere; the button says so meanwhile
  for (const ev of ["pointerdown", "keydown"]) document.addEventListener(ev, unlock, { capture: true });
  renderMute();
}

function context() {
  try { audio ??= new AudioContext(); } catch { audio = null; }
  return audio;
}

function unlock() {
  context()?.resume().then(renderMute).catch(() => {});
}

function setMuted(on) {
  muted = on;
  localStorage.setItem("hh-mute", on ? "1" : "0");
  renderMute();
  if (!on) beep();
}

function renderMute() {
  const b = document.querySelector("#mute");
  if (!b) return;
  const blocked = !muted && !!tier && audio?.state === "suspended";
  b.textContent = t(muted ? "sound_muted" : blocked ? "sound_blocked" : "sound_on");
  b.setAttribute("aria-pressed", String(muted));
  b.className = `mute${muted ? " muted" : ""}${blocked ? " blocked" : ""}`;
}

function beep() {
  if (muted || !tier) return;
  const a = context();
  if (!a) return;
  const p = PATTERNS[tier];
  const t0 = a.currentTime + 0.05;
  for (const at of p.beeps) {
    const o = a.createOscillator(), g = a.createGain();
    o.type = "square";
    o.frequency.value = p.hz;
    g.gain.value = 0.2;
    o.connect(g).connect(a.destination);
    o.start(t0 + at);
    o.stop(t0 + at + BEEP_S);
  }
}

/** The alarms held changed: sound and title for those active, unacknowledged, orange or red;
 * for the supervising centre's key (`centre`), unacknowledged by the centre (`centre_acked`):
 * the centre keeps hearing a red alarm the enterprise acknowledged. */
export function updateAttention(list, centre = false) {
  // (an alarm of a hub of before, without `centre_acked`: one acknowledgement for both)
  const unacked = (a) => (centre && typeof a.centre_acked === "boolean"
    ? (a.isa_state === "unack" || a.isa_state === "ack") && !a.centre_acked
    : a.isa_state === "unack");
  const returned = (a) => (centre && typeof a.centre_acked === "boolean"
    ? (a.isa_state === "rtn_unack" || a.isa_state === "normal") && !a.centre_acked
    : a.isa_state === "rtn_unack");
  const redOnce = (a) => a.tier === "red" || a.peak_tier === "red";
  const loud = list.filter((a) => (unacked(a) && PATTERNS[a.tier]) || (returned(a) && redOnce(a)));
  const top = loud.some((a) => unacked(a) && a.tier === "red") ? "red" : loud.length ? "orange" : null;
  const fresh = loud.some((a) => !known.has(a.id));
  known = new Set(loud.map((a) => a.id));
  document.title = loud.length ? `(${loud.length}) ${t("alarms")} · ${baseTitle}` : baseTitle;
  document.body.dataset.attention = top ?? "";
  if (top !== tier || fresh) {
    clearInterval(timer);
    timer = null;
    tier = top;
    if (top) { beep(); timer = setInterval(beep, PATTERNS[top].every); }
  }
  renderMute();
}
