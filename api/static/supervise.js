// The centre's alarm supervision (报警督办, docs/jt809.md "Supervision"): from a vehicle alarm's
// detail, a key of the supervising centre (an admin or operator key of every tenant) sends a
// 督办 ticket to the vehicle's enterprise platform (POST /api/v1/alarms/{id}/supervise): its
// deadline (China time), level, note and the supervisor's name, telephone and e-mail. A dialog of
// its own (the alarm's detail is drawn again at every live event: a form in it would be lost).
// The hub's answer is said in the dialog as far as it goes: the broker took the ticket (no more:
// only a JT/T 809 gateway's receipt says it went to the platform), then the gateway's receipt
// when it comes (GET /api/v1/supervisions/{id}, read every 2 s for a minute), or that none came;
// a refusal names the fields at fault in the page's language. The ticket, its receipt and the
// platform's answer are in the alarm's journal.
import { fmtCst, fromInput, kindLevel, toInput } from "/static/alarmformat.js";
import { fieldProblems } from "/static/alarmstrings.js";
import { el } from "/static/hazardforms.js";
import { hubRequest } from "/static/hubrequest.js";

export const SUPERVISE_STRINGS = {
  zh: {
    sv_button: "督办", sv_title: "报警督办（下发至车辆所属企业平台）", sv_deadline: "督办截止时间（北京时间）",
    sv_level: "督办级别", sv_normal: "一般", sv_urgent: "紧急", sv_note: "督办意见（可选）",
    sv_supervisor: "督办人（可选，默认本密钥名；最多 16 字节，即 8 个汉字）", sv_tel: "联系电话（可选，最多 20 字节）",
    sv_email: "电子邮件（可选，最多 32 字节）", sv_too_long: "超过 {n} 字节（一个汉字占 2 字节）",
    sv_send: "下发督办", sv_cancel: "关闭", sv_sending: "正在下发…",
    sv_done: "督办 #{id}（{vehicle}，截止 {deadline}）已交消息服务器，等待 JT/T 809 网关回执…（未连接 JT/T 809 平台时不会有回执，企业平台也无法应答）",
    sv_r_sent: "督办 #{id} 已由网关发往企业平台 {p}；企业平台的应答将记入报警日志",
    sv_r_kept: "督办 #{id} 待发：企业平台 {p} 未登录，登录后发出（截止前）",
    sv_r_expired: "督办 #{id} 未发出：已过截止时间", sv_r_dropped: "督办 #{id} 未发出：网关待发过多",
    sv_r_no_platform: "督办 #{id} 未发出：无 JT/T 809 平台连接（该车辆所属企业没有平台为其服务），企业平台无法应答",
    sv_r_not_sent: "督办 #{id} 未发出：中心未连上消息服务器",
    sv_r_none: "督办 #{id}：1 分钟内无网关回执，没有 JT/T 809 网关接收（未连接企业平台），企业平台无法应答",
    sv_answer: "企业平台应答：{r}",
    sv_err_deadline: "截止时间须晚于现在，且不超过 30 天", sv_err_vehicle: "只有车辆的报警可以督办（经其企业平台）",
    sv_kept: "已登记督办 #{id}；中心暂未连上消息服务器，连上后下发",
    sv_refused: "督办未下发：{why}", sv_fields: "请检查：{fields}。",
    sv_unsure: "未收到平台应答（{e}），不确定是否已下发：请查看该报警的日志，确认后再重试",
  },
  en: {
    sv_button: "Supervise (督办)", sv_title: "Alarm supervision (to the vehicle's enterprise platform)",
    sv_deadline: "Deadline (China time)", sv_level: "Level", sv_normal: "normal", sv_urgent: "urgent",
    sv_note: "Note (optional)",
    sv_supervisor: "Supervisor (optional; the key's name by default; at most 16 bytes: 8 Chinese characters)",
    sv_tel: "Telephone (optional, at most 20 bytes)", sv_email: "E-mail (optional, at most 32 bytes)",
    sv_too_long: "more than {n} bytes (a Chinese character takes 2)", sv_send: "Send", sv_cancel: "Close",
    sv_sending: "Sending…",
    sv_done: "Supervision #{id} ({vehicle}, until {deadline}) handed to the broker; waiting for the JT/T 809 gateway's receipt… (with no JT/T 809 platform connected none comes, and the platform cannot answer)",
    sv_r_sent: "Supervision #{id} sent by the gateway to the platform {p}; its answer goes to the alarm's journal",
    sv_r_kept: "Supervision #{id} kept: the platform {p} is not logged in; sent when it is (before the deadline)",
    sv_r_expired: "Supervision #{id} not sent: past its deadline", sv_r_dropped: "Supervision #{id} not sent: too many kept at the gateway",
    sv_r_no_platform: "Supervision #{id} not sent: no JT/T 809 platform connected (none serves the vehicle's enterprise); the platform cannot answer",
    sv_r_not_sent: "Supervision #{id} not sent: the hub had no broker",
    sv_r_none: "Supervision #{id}: no gateway receipt within a minute: no JT/T 809 gateway took it (no platform connected), and the platform cannot answer",
    sv_answer: "The platform answered: {r}",
    sv_err_deadline: "the deadline must be later than now and at most 30 days ahead",
    sv_err_vehicle: "only a vehicle's alarm is supervised (through its enterprise platform)",
    sv_kept: "Supervision #{id} recorded; the hub is not connected to its broker: sent once it is",
    sv_refused: "Not sent: {why}", sv_fields: "Look at: {fields}. ",
    sv_unsure: "No answer from the hub ({e}): it may have been sent; look at the alarm's journal before sending it again",
  },
};

const DAY_MS = 86400000;
// the gateway's receipt comes within a second or so; none after a minute is one no gateway took
// (docs/jt809.md "Supervision")
export const RECEIPT_POLL_MS = 2000;
export const RECEIPT_WAIT_MS = 60000;
// the hub's refusals of a 督办 said in the page's language (the start of its words; the field)
const SV_ERRORS = [["the deadline is in the future", "sv_err_deadline", "deadline"],
  ["only a vehicle's alarm is supervised", "sv_err_vehicle", null]];
const BAD_RECEIPTS = new Set(["expired", "dropped", "no_platform", "not_sent"]);
let ctx = null;  // {t, key(), centre()}: centre() an admin or operator key of every tenant
let session = 0;  // a sign-out: the dialog closed, an answer to an earlier key's dropped

export function initSupervise(context) {
  ctx = context;
}

/** Forget the key's dialog (a sign-out, a key revoked): nothing of it for the next key. */
export function clearSupervise() {
  session++;
  document.querySelector("#sv-dialog")?.close();
}

// the bytes a text takes in GBK, as the 0x9401's fields count them (GB18030: a character beyond
// the two-byte set takes 4)
const gbkBytes = (v) => [...v].reduce((n, c) => n + (c.codePointAt(0) < 0x80 ? 1 : c.codePointAt(0) > 0xffff ? 4 : 2), 0);

function limitBytes(input, max) {
  input.maxLength = max;
  const check = () => {
    const over = gbkBytes(input.value) > max;
    input.setCustomValidity(over ? ctx.t("sv_too_long").replace("{n}", String(max)) : "");
    if (over) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
  };
  input.addEventListener("input", check);
  return input;
}

const fill = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));

/** The button of a vehicle alarm's detail that opens the 督办 dialog, for the centre's key. */
export function superviseFromAlarm(a) {
  if (!ctx?.centre() || a.site !== "vehicles") return null;
  const b = el("button", "sv-from-alarm", ctx.t("sv_button"));
  b.type = "button";
  b.dataset.alarm = String(a.id);
  b.onclick = (e) => {
    e.stopPropagation();
    openDialog(a, b);
  };
  return b;
}

function field(form, label, input) {
  const l = el("label", "hz-field sv-field");
  l.append(el("span", "hz-label", label), input);
  form.append(l);
  return input;
}

function openDialog(a, opener) {
  document.querySelector("#sv-dialog")?.remove();
  const t = ctx.t;
  const d = el("dialog", "sv-dialog");
  d.id = "sv-dialog";
  d.dataset.alarm = String(a.id);
  const form = el("form");
  form.method = "dialog";
  form.append(el("h3", "", t("sv_title")));
  // the vehicle by its plate (the alarm's device_name), the kind in the page's language
  form.append(el("p", "sv-what", `#${a.id} · ${plateOf(a)} · ${kindLevel(a, t)} · ${fmtCst(a.started_ts)}`));
  const deadline = field(form, t("sv_deadline"),
    Object.assign(el("input"), { type: "datetime-local", name: "deadline", required: true, value: toInput(Date.now() + DAY_MS) }));
  const level = field(form, t("sv_level"), Object.assign(el("select"), { name: "level" }));
  for (const v of ["normal", "urgent"]) level.append(Object.assign(el("option", "", t(`sv_${v}`)), { value: v }));
  const note = field(form, t("sv_note"), Object.assign(el("textarea"), { name: "note", rows: 2, maxLength: 2000 }));
  const who = field(form, t("sv_supervisor"), limitBytes(Object.assign(el("input"), { type: "text", name: "supervisor" }), 16));
  const tel = field(form, t("sv_tel"), limitBytes(Object.assign(el("input"), { type: "tel", name: "tel" }), 20));
  const email = field(form, t("sv_email"), limitBytes(Object.assign(el("input"), { type: "email", name: "email" }), 32));
  const said = el("p", "sv-msg");
  said.setAttribute("role", "status");
  said.hidden = true;
  const send = Object.assign(el("button", "sv-send", t("sv_send")), { type: "submit" });
  const close = Object.assign(el("button", "sv-close", t("sv_cancel")), { type: "button" });
  const bar = el("div", "hz-actions");
  bar.append(send, close);
  form.append(said, bar);
  d.append(form);
  document.body.append(d);
  close.onclick = () => d.close();
  d.addEventListener("close", () => {
    d.remove();
    // the detail may have been drawn again meanwhile: its button now, else the one that opened
    (document.querySelector(`.sv-from-alarm[data-alarm="${a.id}"]`) ?? opener)?.focus();
  });
  form.onsubmit = async (e) => {
    e.preventDefault();
    const body = { deadline: fromInput(deadline.value), level: level.value };
    for (const [k, input] of [["note", note], ["supervisor", who], ["tel", tel], ["email", email]]) {
      if (input.value.trim()) body[k] = input.value.trim();
    }
    send.disabled = true;
    said.hidden = false;
    said.className = "sv-msg";
    said.textContent = t("sv_sending");
    for (const x of form.querySelectorAll("[aria-invalid]")) x.removeAttribute("aria-invalid");
    const mine = session;
    try {
      const got = await post(`/api/v1/alarms/${a.id}/supervise`, body);
      if (mine !== session || !d.isConnected) return;
      said.className = got.published ? "sv-msg wait" : "sv-msg ok";
      said.textContent = fill(t(got.published ? "sv_done" : "sv_kept"),
        { id: got.supervision_id, vehicle: plateOf(a), deadline: fmtCst(got.deadline).slice(0, 16) });
      d.dataset.supervision = String(got.supervision_id);
      if (got.published) followReceipt(d, said, got.supervision_id, mine);
    } catch (err) {
      if (mine !== session || !d.isConnected) return;
      said.className = "sv-msg bad";
      if (!err.status) {  // no answer: the hub may have sent it; a second click would send two
        said.textContent = fill(t("sv_unsure"), { e: err.message });
        send.disabled = false;
        return;
      }
      // the fields the hub names, marked and named by their labels, above its own words
      const named = [];
      for (const x of Array.isArray(err.errors) ? err.errors : []) {
        const input = form.querySelector(`[name="${String((x.loc || [])[1] ?? "")}"]`);
        if (!input) continue;
        input.setAttribute("aria-invalid", "true");
        named.push(input.closest("label")?.querySelector(".hz-label")?.textContent ?? input.name);
      }
      // the hub's 422 in the page's language (the fields and what is wrong), else its words
      const known = SV_ERRORS.find(([start]) => String(err.why ?? "").startsWith(start));
      if (known?.[2]) {
        const input = form.querySelector(`[name="${known[2]}"]`);
        input.setAttribute("aria-invalid", "true");
        named.push(input.closest("label")?.querySelector(".hz-label")?.textContent ?? known[2]);
      }
      const why = known ? `${err.status} ${t(known[1])}`
        : Array.isArray(err.errors) && err.errors.length ? `${err.status} ${fieldProblems(err.errors, t)}` : err.message;
      said.textContent = (named.length ? fill(t("sv_fields"), { fields: named.join("、") }) : "")
        + fill(t("sv_refused"), { why });
      send.disabled = false;
    }
  };
  d.showModal();
  deadline.focus();
}

const plateOf = (a) => a.device_name || a.location || a.device;

/** After the broker took the ticket: the gateway's receipt, read until it comes (and the
 * platform's answer, if it comes meanwhile), or, after a minute, that none came. */
function followReceipt(d, said, id, mine) {
  const t = ctx.t;
  const until = Date.now() + RECEIPT_WAIT_MS;
  d.dataset.receipt = "";
  const again = async () => {
    if (mine !== session || !d.isConnected) return;
    let s = null;
    try { s = await hubRequest(ctx.key(), `/api/v1/supervisions/${id}`); } catch { s = null; }
    if (mine !== session || !d.isConnected) return;
    if (s?.receipt) {
      d.dataset.receipt = s.receipt;
      said.className = `sv-msg ${BAD_RECEIPTS.has(s.receipt) ? "bad" : "ok"}`;
      said.textContent = fill(t(`sv_r_${s.receipt}`), { id, p: s.platform || "" })
        + (s.result !== null && s.result !== undefined
          ? ` · ${fill(t("sv_answer"), { r: `${s.result} ${s.result_text || ""}`.trim() })}` : "");
      if (s.receipt !== "kept" || s.result !== null) return;  // kept: sent or expired later
    }
    if (Date.now() >= until) {
      if (!s?.receipt) {
        d.dataset.receipt = "none";
        said.className = "sv-msg bad";
        said.textContent = fill(t("sv_r_none"), { id });
      }
      return;
    }
    setTimeout(again, RECEIPT_POLL_MS);
  };
  setTimeout(again, RECEIPT_POLL_MS);
}

const post = (path, body) => hubRequest(ctx.key(), path, { method: "POST", body: JSON.stringify(body) });
