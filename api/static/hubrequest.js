// One request to the hub's API with a key, for the dashboard's pages: JSON in and out, an
// answer that does not come within 20 s an error (not a request waiting for ever), and a refusal
// thrown as an Error saying its status and why, as RFC 9457 problem details give it: `detail`
// says why, `errors` lists the fields at fault (`status`, `why` and `errors` on the error).
export const REQUEST_TIMEOUT_MS = 20000;

export async function hubRequest(key, path, init = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (init.body) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { ...init, headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  // an answer whose body does not come whole (the 20 s ran out while it came, a link cut) or is
  // no JSON is a failure too: it was taken for `null`, and an alarm of a flood fetched so was
  // lost without a word (helper-240)
  let data = null;
  try {
    const text = await r.text();
    data = text ? JSON.parse(text) : null;  // (204: no body)
  } catch (e) {
    if (r.ok) throw Object.assign(new Error(`${r.status} unreadable answer: ${e?.message ?? e}`), { status: 0, why: "unreadable" });
  }
  if (!r.ok) {
    const list = data?.errors;
    const why = Array.isArray(list) && list.length
      ? list.map((x) => `${(x.loc || []).slice(1).join(".")}: ${x.msg}`).join("; ") : data?.detail;
    throw Object.assign(new Error(`${r.status} ${why || r.statusText}`),
      { status: r.status, why: why || r.statusText, errors: list });
  }
  return data;
}
