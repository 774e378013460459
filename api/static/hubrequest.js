// One request to the hub's API with a key, for the dashboard's pages: JSON in and out, an
// answer that does not come within 20 s an error (not a request waiting for ever), and a refusal
// thrown as an Error saying its status and why, as RFC 9457 problem details give it: `detail`
// says why, `errors` lists the fields at fault (`status`, `why` and `errors` on the error).
export const REQUEST_TIMEOUT_MS = 20000;

export async function hubRequest(key, path, init = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (init.body) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { ...init, headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    const list = data?.errors;
    const why = Array.isArray(list) && list.length
      ? list.map((x) => `${(x.loc || []).slice(1).join(".")}: ${x.msg}`).join("; ") : data?.detail;
    throw Object.assign(new Error(`${r.status} ${why || r.statusText}`),
      { status: r.status, why: why || r.statusText, errors: list });
  }
  return data;
}
