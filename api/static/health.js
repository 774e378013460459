// The hub's own health over the page: while it judges no alarm (no broker, the store refusing
// the readings, a batch stalled) or only spools the readings (degraded), a banner at the top says
// why in plain words and since when; it goes once the hub is ready. The "live" badge says only
// whether this page's stream is up: during a broker outage the stream is, and the badge said
// "live" over a hub that heard nothing (a sysadmin's role-play). Read from
// GET /api/v1/readiness every 15 s (`api.readiness`): a centre's key reads the hub's reason in
// full, any other key the cause's code. A readiness request the hub does not answer (20 s) is a
// banner of its own, "告警中心无应答", since the first one not answered, and the page goes
// offline and connects its stream again (`unanswered`): a frozen hub was shown live and ready.
import { fmtCst } from "/static/alarmformat.js";

export const HEALTH_STRINGS = {
  zh: { hh_line: "{head}：{cause}（自 {since} 起，北京时间）", hh_line_nosince: "{head}：{cause}",
        hh_head_broker: "告警中心未收到数据", hh_head_stop: "告警中心已停止研判报警",
        hh_head_late: "告警中心报警研判滞后", hh_head_other: "告警中心未就绪",
        hh_head_degraded: "读数未能存入数据库（报警照常研判，读数暂存磁盘缓存）",
        hh_c_broker: "消息代理不可达",
        hh_c_store_held: "数据库拒绝写入读数",
        hh_c_ingest_stalled: "一批读数等待研判已超过一分钟，报警相应推迟",
        hh_c_influxdb_auth: "InfluxDB 拒绝告警中心的密码或令牌",
        hh_c_influxdb_not_found: "InfluxDB 中找不到数据库",
        hh_c_influxdb_body_size: "InfluxDB 拒绝过大的写入",
        hh_c_influxdb_limit: "InfluxDB 已达序列数上限",
        hh_c_spool_disk: "磁盘缓存已满或不可写",
        hh_c_sqlite_full: "数据库所在磁盘已满",
        hh_c_sqlite_readonly: "数据库文件只读",
        hh_c_sqlite_cantopen: "无法打开数据库文件",
        hh_c_sqlite_perm: "无权写入数据库文件",
        hh_c_sqlite_ioerr: "数据库磁盘读写错误",
        hh_c_state_db: "告警数据库 (state.db) 写入失败，磁盘可能已满",
        hh_c_future_time: "大部分读数的时间超前于告警中心时钟，已被拒收：请检查告警中心服务器的时钟 (NTP)",
        hh_head_silent: "告警中心无应答",
        hh_c_no_answer: "就绪检查 20 秒内未得到应答，页面所示可能已不是现状（告警中心停顿或网络中断）",
        hh_c_unknown: "原因代码 {code}，详情请询问监测中心" },
  en: { hh_line: "{head}: {cause} (since {since} CST)", hh_line_nosince: "{head}: {cause}",
        hh_head_broker: "The hub is not receiving data", hh_head_stop: "The hub has stopped judging alarms",
        hh_head_late: "The hub's alarms are late", hh_head_other: "The hub is not ready",
        hh_head_degraded: "Readings are not being stored (alarms are still judged; the readings wait in the disk spool)",
        hh_c_broker: "the broker is unreachable",
        hh_c_store_held: "the store refuses the readings",
        hh_c_ingest_stalled: "a batch of readings has waited over a minute to be judged: alarms are that late",
        hh_c_influxdb_auth: "InfluxDB refuses the hub's password or token",
        hh_c_influxdb_not_found: "InfluxDB has no such database",
        hh_c_influxdb_body_size: "InfluxDB refuses the writes as too large",
        hh_c_influxdb_limit: "InfluxDB has reached its series limit",
        hh_c_spool_disk: "the disk spool is full or cannot be written",
        hh_c_sqlite_full: "the database's disk is full",
        hh_c_sqlite_readonly: "the database file is read-only",
        hh_c_sqlite_cantopen: "the database file cannot be opened",
        hh_c_sqlite_perm: "the database file may not be written",
        hh_c_sqlite_ioerr: "the database's disk fails to read or write",
        hh_c_state_db: "the alarm database (state.db) cannot be written: its disk may be full",
        hh_c_future_time: "most readings are ahead of the hub's clock and refused: check the hub's clock (NTP)",
        hh_head_silent: "The hub does not answer",
        hh_c_no_answer: "its readiness went unanswered for 20 s: what the page shows may no longer be so (the hub stalled or the link is down)",
        hh_c_unknown: "cause {code}: ask the monitoring centre" },
};

// a cause the hub may give (`api.readywatch.cause_code`) reads in plain words once it has its
// `hh_c_<code>` here in both languages (a headline of its own in HEAD, else 未就绪 not ready)
export const HEALTH_EVERY_MS = 15000;
// the headline of a cause while the hub judges nothing (a degraded hub's is its own)
const HEAD = {
  broker: "hh_head_broker", ingest_stalled: "hh_head_late", store_held: "hh_head_stop",
  state_db: "hh_head_stop", future_time: "hh_head_broker", no_answer: "hh_head_silent",
};
// the page's own status while the hub does not answer (not one the hub gives)
export const UNANSWERED = "unanswered";
const STORE = /^(influxdb|sqlite)_|^spool_disk$/;

let ctx = null;      // {t, api(path), unanswered()}
let shown = null;    // the hub's last answer ({status, cause, reason, since_ms}), null: ready
let timer = null;
let look = () => {};  // one read of the readiness (of the key signed in)
let seq = 0;         // a sign-out drops the answers of requests made before

export function initHealth(context) { ctx = context; }

/** Start reading the hub's readiness (a sign-in), at once and every 15 s. */
export function startHealth() {
  stopHealth();
  const mine = seq;
  let asking = false;  // one request at a time: those of a hub not answering held the browser's
  // few connections to it, and the stream's next try waited behind them
  look = () => {
    if (asking) return;
    asking = true;
    ctx.api("/api/v1/readiness").finally(() => { asking = false; }).then((r) => {
      if (mine === seq) { shown = r.status === "ready" ? null : r; renderHealth(); }
    }).catch((e) => {
      if (mine !== seq) return;
      // a hub before this route (404) says nothing of its health
      if (e?.status === 404) { shown = null; renderHealth(); }
      // no answer in time (a refused connection is the live badge's to say: the last answer
      // stands meanwhile)
      if (e?.name === "TimeoutError") {
        const since = shown?.status === UNANSWERED ? shown.since_ms : Date.now();
        shown = { status: UNANSWERED, cause: "no_answer", reason: null, since_ms: since };
        renderHealth();
        ctx.unanswered?.();
      }
    });
  };
  look();
  timer = setInterval(look, HEALTH_EVERY_MS);
}

/** Read the readiness now (the stream connected again: a banner of a hub that did not answer
 * goes at once). */
export const lookHealth = () => look();

/** Stop and forget (a sign-out: the next key reads it afresh). */
export function stopHealth() {
  seq++;
  clearInterval(timer); timer = null;
  look = () => {};
  shown = null;
  renderHealth();
}

/** The banner's words: the headline and the cause in plain words; a code this page does not
 * know reads the hub's reason (a centre's key) or the code. */
export function healthText(h, t = ctx.t) {
  const known = HEALTH_STRINGS.zh[`hh_c_${h.cause}`] !== undefined;
  const head = h.status === "degraded" ? "hh_head_degraded"
    : HEAD[h.cause] ?? (STORE.test(h.cause ?? "") ? "hh_head_stop" : "hh_head_other");
  const cause = known ? t(`hh_c_${h.cause}`) : h.reason || t("hh_c_unknown").replace("{code}", h.cause ?? "?");
  return t(h.since_ms ? "hh_line" : "hh_line_nosince").replace("{head}", t(head)).replace("{cause}", cause)
    .replace("{since}", h.since_ms ? fmtCst(h.since_ms) : "");
}

export function renderHealth() {
  const box = document.querySelector("#hub-health");
  if (!box) return;
  box.hidden = !shown;
  if (!shown) {
    box.textContent = "";
    for (const k of ["status", "cause"]) delete box.dataset[k];
    box.removeAttribute("title");
    return;
  }
  box.dataset.status = shown.status;
  box.dataset.cause = shown.cause ?? "";
  box.className = `hub-health ${shown.status === "degraded" ? "degraded" : "down"}`;
  box.textContent = healthText(shown);
  // the hub's own words on hover (a centre's key): what the admin looks up in the log
  if (shown.reason) box.title = shown.reason; else box.removeAttribute("title");
}
