// The centre's 督办 to follow up (docs/jt809.md "Following up 督办"): the supervisions it gave
// (GET /api/v1/supervisions), those not answered first — overdue (超期未应答, marked), then open —
// then the undelivered and the answered, newest first within each; each with its vehicle, alarm,
// deadline (China time), what the gateway said of the ticket and the platform's answer (late
// ones said). A header button of the supervising centre's key (an admin or operator key of every
// tenant); read when opened and on refresh.
import { fmtCst } from "/static/alarmformat.js";
import { el } from "/static/hazardforms.js";
import { hubRequest } from "/static/hubrequest.js";

export const SUPERVISIONS_STRINGS = {
  zh: {
    svl_open: "督办", svl_title: "督办跟踪（未应答的在前）", svl_refresh: "刷新", svl_close: "关闭",
    svl_id: "编号", svl_enterprise: "企业", svl_vehicle: "车辆", svl_alarm: "报警", svl_deadline: "截止时间",
    svl_status: "状态", svl_receipt: "下发情况", svl_answer: "企业应答", svl_none: "暂无督办",
    svl_loading: "正在读取…", svl_error: "读取失败：{e}",
    svl_s_overdue: "超期未应答", svl_s_open: "待应答", svl_s_undelivered: "未送达", svl_s_answered: "已应答",
    svl_late: "（超期应答）", svl_mark: "超期",
    svl_r_sent: "已发往 {p}", svl_r_kept: "待发（{p} 未登录）", svl_r_expired: "未发出：已过截止时间",
    svl_r_dropped: "未发出：待发过多", svl_r_no_platform: "未发出：无 JT/T 809 平台连接", svl_r_not_sent: "未发出：中心未连上消息服务器",
    svl_r_none: "无回执（无 JT/T 809 网关接收，企业平台无法应答）",
  },
  en: {
    svl_open: "Supervisions", svl_title: "Supervisions to follow up (unanswered first)", svl_refresh: "Refresh",
    svl_close: "Close", svl_id: "No.", svl_enterprise: "Enterprise", svl_vehicle: "Vehicle", svl_alarm: "Alarm",
    svl_deadline: "Deadline", svl_status: "Status", svl_receipt: "Ticket", svl_answer: "Answer",
    svl_none: "No supervisions", svl_loading: "Reading…", svl_error: "Could not read them: {e}",
    svl_s_overdue: "overdue, no answer", svl_s_open: "waiting for the answer", svl_s_undelivered: "not delivered",
    svl_s_answered: "answered", svl_late: " (late)", svl_mark: "overdue",
    svl_r_sent: "sent to {p}", svl_r_kept: "kept ({p} not logged in)", svl_r_expired: "not sent: past the deadline",
    svl_r_dropped: "not sent: too many kept", svl_r_no_platform: "not sent: no JT/T 809 platform connected",
    svl_r_not_sent: "not sent: the hub had no broker", svl_r_none: "no receipt (no JT/T 809 gateway took it: the platform cannot answer)",
  },
};

const LIMIT = 500;  // the newest read at once: a centre gives dozens a day
const ORDER = { overdue: 0, open: 1, undelivered: 2, answered: 3 };
const $ = (s) => document.querySelector(s);
let ctx = null;     // {t, key(), centre()}
let rows = null;    // the supervisions read (null: not read)
let error = "";
let seq = 0;        // reads: an older answer is dropped (a sign-out too)

export function initSupervisions(context) {
  ctx = context;
  $("#supervisions-open").onclick = () => ($("#supervisions-panel").hidden ? openSupervisions() : closeSupervisions());
  $("#svl-close").onclick = closeSupervisions;
  $("#svl-refresh").onclick = () => load();
}

/** The header button: the supervising centre's key only. */
export function showSupervisionsButton(on) {
  $("#supervisions-open").hidden = !on;
}

export function openSupervisions() {
  $("#supervisions-panel").hidden = false;
  $("#supervisions-open").setAttribute("aria-expanded", "true");
  $("#supervisions-panel").scrollIntoView({ block: "start" });
  return load();
}

function closeSupervisions() {
  $("#supervisions-panel").hidden = true;
  $("#supervisions-open").setAttribute("aria-expanded", "false");
}

/** Forget everything of the key (a sign-out). */
export function clearSupervisions() {
  seq++;
  rows = null; error = "";
  closeSupervisions();
  showSupervisionsButton(false);
  renderSupervisions();
}

async function load() {
  const mine = ++seq;
  rows = null; error = "";
  renderSupervisions();
  try {
    const got = await hubRequest(ctx.key(), `/api/v1/supervisions?limit=${LIMIT}`);
    if (mine !== seq) return;
    rows = got;
  } catch (e) {
    if (mine !== seq) return;
    rows = []; error = e.why || e.message;
  }
  renderSupervisions();
}

const fill = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
const receiptText = (s) => fill(ctx.t(`svl_r_${s.receipt || "none"}`), { p: s.platform || "" });

function answerText(s) {
  if (s.result === null) return "—";
  const late = s.late ? ctx.t("svl_late") : "";
  return `${s.result} ${s.result_text || ""}${late} · ${fmtCst(s.answered_at)}`;
}

/** The order of the list: overdue, open, undelivered, answered; the newest first in each. */
export const supervisionOrder = (a, b) => ORDER[a.status] - ORDER[b.status] || b.id - a.id;

export function renderSupervisions() {
  if (!ctx) return;
  const body = $("#svl-list tbody");
  body.replaceChildren();
  for (const s of [...(rows ?? [])].sort(supervisionOrder)) {
    const tr = el("tr", `svl-row svl-${s.status}`);
    tr.dataset.supervision = String(s.id);
    const status = el("td", "svl-status", ctx.t(`svl_s_${s.status}`));
    if (s.status === "overdue") status.append(el("span", "overdue", ctx.t("svl_mark")));
    tr.append(
      // the enterprise by its name (its id where none is configured), the vehicle by its plate
      el("td", "", `#${s.id}`), el("td", "svl-tenant", s.tenant_name || s.tenant), el("td", "", `${s.plate} (${s.vehicle})`),
      el("td", "", `#${s.alarm_id}`), el("td", "", fmtCst(s.deadline)), status,
      el("td", "", receiptText(s)), el("td", "", answerText(s)),
    );
    body.append(tr);
  }
  $("#svl-loading").hidden = rows !== null;
  $("#svl-empty").hidden = !(rows && rows.length === 0 && !error);
  $("#svl-error").hidden = !error;
  $("#svl-error").textContent = error ? fill(ctx.t("svl_error"), { e: error }) : "";
}
