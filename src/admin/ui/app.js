// The llm-gateway dashboard. Plain JavaScript, no build step. Every value that comes
// from the gateway (prompts, answers, names) is put on the page with textContent or
// as a text node, never as HTML, so a body that holds <script> stays text.
"use strict";

const TOKEN_KEY = "llm-gateway-admin-token";
const RANGES = { "1h": [3600e3, "hour"], "6h": [6 * 3600e3, "hour"], "24h": [24 * 3600e3, "hour"],
  "7d": [7 * 86400e3, "hour"], "30d": [30 * 86400e3, "day"], "90d": [90 * 86400e3, "day"] };
const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#475569", "#ea580c"];
const PICOS = 1000000000000n;

// State the browser test reads back (the charts' data and the totals shown).
const dashboard = { usage: null, totals: null, cacheSaved: null, charts: {}, tail: [], ready: false };
window.gwDashboard = dashboard;

const $ = (id) => document.getElementById(id);

function el(tag, props, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "text") node.textContent = v == null ? "" : String(v);
    else if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children || []) node.append(child);
  return node;
}

// ---- exact money: decimal strings as BigInt pico-dollars ----
function picos(text) {
  if (text == null || text === "") return 0n;
  const [whole, frac = ""] = String(text).split(".");
  return BigInt(whole || "0") * PICOS + BigInt((frac + "000000000000").slice(0, 12));
}
function usd(p) {
  const whole = p / PICOS, frac = (p % PICOS).toString().padStart(12, "0").replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}
function usdShort(p) {
  const n = Number(p) / 1e12;
  return n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toPrecision(3);
}
const fmtInt = (n) => Number(n || 0).toLocaleString("en-US");

// ---- the API, with the token in a header (never in a URL) ----
function token() { return sessionStorage.getItem(TOKEN_KEY); }
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const t = token();
  if (t) headers["Authorization"] = "Bearer " + t;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 || response.status === 403) {
    showLogin("The admin token was refused.");
    throw new Error("unauthorized");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new Error(`${path.split("?")[0]}: ${response.status} ${message}`);
  }
  return body;
}

function showError(error) {
  if (error && error.message === "unauthorized") return;
  $("error").textContent = error ? String(error.message || error) : "";
}

function showLogin(message) {
  $("app").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("login-error").textContent = message || "";
}

async function start() {
  try {
    await api("/gateway/teams");
  } catch (e) {
    if (e.message === "unauthorized") return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = !token();
  show("overview");
}

// ---- views ----
function show(view) {
  for (const b of document.querySelectorAll("#nav button")) b.classList.toggle("active", b.dataset.view === view);
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + view;
  showError(null);
  const load = { overview: loadOverview, requests: () => loadRequests(null), providers: loadProviders, keys: loadKeys }[view];
  load().catch(showError);
}

// ---- overview ----
const charts = {};

function sumPoint(into, p) {
  into.requests += p.requests;
  into.cost += picos(p.cost_usd);
  into.input += p.input_tokens;
  into.output += p.output_tokens;
  into.cacheWrite += p.cache_write_tokens;
  into.cacheRead += p.cache_read_tokens;
}
const zero = () => ({ requests: 0, cost: 0n, input: 0, output: 0, cacheWrite: 0, cacheRead: 0 });

async function loadOverview() {
  const [span, bucket] = RANGES[$("range").value];
  const group = $("group").value;
  $("group-name").textContent = $("group").selectedOptions[0].textContent;
  const until = Date.now();
  const since = until - span;
  const q = `bucket=${bucket}&since=${since}&until=${until}`;
  const [answer, byModel] = await Promise.all([
    api(`/gateway/usage?${q}&group_by=${encodeURIComponent(group)}`),
    api(`/gateway/usage?${q}&group_by=model`),
  ]);
  dashboard.usage = answer;
  const total = zero();
  const perKey = answer.series.map((s) => {
    const t = zero();
    s.points.forEach((p) => { sumPoint(t, p); sumPoint(total, p); });
    return [s.key, t];
  });
  let saved = 0n;
  for (const s of byModel.series) if (s.cache_saved_usd) saved += picos(s.cache_saved_usd);
  dashboard.totals = { requests: total.requests, cost_usd: usd(total.cost), input_tokens: total.input,
    output_tokens: total.output, cache_write_tokens: total.cacheWrite, cache_read_tokens: total.cacheRead };
  dashboard.cacheSaved = usd(saved);
  $("total-requests").textContent = fmtInt(total.requests);
  $("total-cost").textContent = usd(total.cost);
  $("total-input").textContent = fmtInt(total.input);
  $("total-output").textContent = fmtInt(total.output);
  $("total-cache-write").textContent = fmtInt(total.cacheWrite);
  $("total-cache-read").textContent = fmtInt(total.cacheRead);
  const prompt = total.input + total.cacheWrite + total.cacheRead;
  $("cache-hit").textContent = prompt ? (100 * total.cacheRead / prompt).toFixed(1) + " %" : "–";
  $("cache-saved").textContent = usd(saved);

  const tbody = $("breakdown").tBodies[0];
  tbody.replaceChildren(...perKey.sort((a, b) => (b[1].cost > a[1].cost ? 1 : b[1].cost < a[1].cost ? -1 : 0)).map(([key, t]) =>
    el("tr", {}, [el("td", { text: key == null ? "(none)" : key }), el("td", { text: fmtInt(t.requests) }),
      el("td", { text: usd(t.cost) }), el("td", { text: fmtInt(t.input) }), el("td", { text: fmtInt(t.output) }),
      el("td", { text: fmtInt(t.cacheWrite) }), el("td", { text: fmtInt(t.cacheRead) })])));

  // Every bucket of the range on the x axis (zeros where nothing happened).
  const width = bucket === "hour" ? 3600e3 : 86400e3;
  const xs = [];
  for (let t = Date.parse(answer.since); t < Date.parse(answer.until); t += width) xs.push(t / 1000);
  const index = new Map(xs.map((x, i) => [x, i]));
  const column = (s, f) => {
    const ys = xs.map(() => 0);
    for (const p of s.points) ys[index.get(Date.parse(p.start) / 1000)] += f(p);
    return ys;
  };
  const names = answer.series.map((s) => (s.key == null ? "(none)" : s.key));
  drawChart("chart-cost", xs, names, answer.series.map((s) => column(s, (p) => Number(picos(p.cost_usd)) / 1e12)), (v) => "$" + v.toFixed(4));
  drawChart("chart-requests", xs, names, answer.series.map((s) => column(s, (p) => p.requests)), (v) => fmtInt(v));
  const every = { key: "all", points: answer.series.flatMap((s) => s.points) };
  drawChart("chart-tokens", xs, ["input", "output", "cache write", "cache read"],
    [column(every, (p) => p.input_tokens), column(every, (p) => p.output_tokens),
     column(every, (p) => p.cache_write_tokens), column(every, (p) => p.cache_read_tokens)], (v) => fmtInt(v));
  dashboard.ready = true;
}

function drawChart(id, xs, names, columns, format) {
  const target = $(id);
  dashboard.charts[id] = { xs, names, columns };
  if (charts[id]) charts[id].destroy();
  target.replaceChildren();
  if (typeof uPlot === "undefined") {
    target.append(el("p", { class: "muted", text: "charting library not loaded" }));
    return;
  }
  const opts = {
    width: Math.max(320, target.clientWidth - 12), height: 220,
    scales: { x: { time: true } },
    series: [{}].concat(names.map((name, i) => ({ label: name, stroke: COLORS[i % COLORS.length], width: 2,
      value: (u, v) => (v == null ? "–" : format(v)) }))),
    axes: [{}, { values: (u, splits) => splits.map(format), size: 70 }],
  };
  charts[id] = new uPlot(opts, [xs].concat(columns), target);
}

// ---- requests ----
let pages = [null];
let tail = null;

function filterQuery() {
  const form = new FormData($("filters"));
  const params = new URLSearchParams({ limit: "50" });
  for (const name of ["model", "provider", "client", "team", "since"]) {
    const v = (form.get(name) || "").trim();
    if (v) params.set(name, v);
  }
  return params;
}

// What the audit query cannot filter on is filtered on the page.
function localFilter(record) {
  const form = new FormData($("filters"));
  const agent = (form.get("agent_type") || "").trim();
  const status = (form.get("status") || "").trim();
  const outcome = form.get("outcome") || "";
  return (!agent || record.agent_type === agent) && (!status || String(record.status) === status) &&
    (!outcome || record.outcome === outcome);
}

async function loadRequests(cursor) {
  const params = filterQuery();
  if (cursor) params.set("cursor", cursor);
  const page = await api("/gateway/audit?" + params);
  const rows = page.records.filter(localFilter).map(requestRow);
  $("requests").tBodies[0].replaceChildren(...rows);
  $("next-page").disabled = !page.next_cursor;
  $("next-page").dataset.cursor = page.next_cursor || "";
  $("page-info").textContent = `${rows.length} of ${page.records.length} on this page`;
}

function requestRow(r) {
  const tokens = `${r.usage.input_tokens ?? "–"} / ${r.usage.output_tokens ?? "–"}`;
  const row = el("tr", { "data-id": r.request_id }, [
    el("td", { text: r.timestamp.replace("T", " ").replace("Z", "") }), el("td", { text: r.request_id }),
    el("td", { text: r.client ?? "" }), el("td", { text: r.served_model ?? r.requested_model ?? "" }),
    el("td", { text: r.provider ?? "" }), el("td", { text: r.agent_type ?? "" }),
    el("td", { text: r.status, class: r.status >= 400 ? "bad" : "" }), el("td", { text: r.outcome }),
    el("td", { text: tokens }), el("td", { text: r.cost_usd ?? "unpriced" }), el("td", { text: r.latency_ms + " ms" })]);
  row.addEventListener("click", () => openRequest(r.request_id).catch(showError));
  return row;
}

async function openRequest(id) {
  const page = await api("/gateway/audit?request_id=" + encodeURIComponent(id));
  const r = page.records[0];
  if (!r) throw new Error("no record " + id);
  $("detail").hidden = false;
  $("detail-id").textContent = r.request_id;
  definitions($("detail-summary"), [["time", r.timestamp], ["client", r.client], ["team", r.team], ["session", r.session],
    ["agent type", r.agent_type], ["requested model", r.requested_model], ["served model", r.served_model],
    ["provider", r.provider], ["status", r.status], ["outcome", r.outcome], ["stream", r.stream],
    ["time to first token", r.ttft_ms == null ? null : r.ttft_ms + " ms"], ["latency", r.latency_ms + " ms"], ["error", r.error]]);
  $("detail-attempts").tBodies[0].replaceChildren(...r.attempts.map((a, i) => el("tr", {}, [el("td", { text: i + 1 }),
    el("td", { text: a.provider }), el("td", { text: a.status ?? "–" }), el("td", { text: a.latency_ms + " ms" }), el("td", { text: a.error ?? "" })])));
  const u = r.usage;
  definitions($("detail-usage"), [["input tokens", u.input_tokens], ["output tokens", u.output_tokens],
    ["cache write tokens", u.cache_creation_input_tokens], ["  of which 5m", u.cache_write_5m_tokens], ["  of which 1h", u.cache_write_1h_tokens],
    ["cache read tokens", u.cache_read_input_tokens], ["cost (USD)", r.cost_usd ?? "unpriced"], ["price table", r.price_table_version]]);
  renderConversation($("conversation"), r.request_body);
  renderAnswer($("answer"), r.response_body);
  $("detail").scrollIntoView({ block: "nearest" });
}

function definitions(dl, pairs) {
  dl.replaceChildren(...pairs.filter(([, v]) => v != null && v !== "").flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

function blockNodes(content) {
  if (typeof content === "string") return [el("div", { class: "block text", text: content })];
  if (!Array.isArray(content)) return [el("div", { class: "block", text: JSON.stringify(content) })];
  return content.map((b) => {
    switch (b.type) {
      case "text": return el("div", { class: "block text", text: b.text });
      case "thinking": return el("div", { class: "block thinking", text: "thinking: " + (b.thinking || "") });
      case "redacted_thinking": return el("div", { class: "block thinking", text: "(redacted thinking)" });
      case "tool_use": return el("div", { class: "block tool_use", text: `tool call ${b.name} (${b.id}): ${JSON.stringify(b.input)}` });
      case "tool_result": {
        const inner = typeof b.content === "string" ? b.content : JSON.stringify(b.content);
        return el("div", { class: "block tool_result", text: `tool result (${b.tool_use_id})${b.is_error ? " error" : ""}: ${inner}` });
      }
      case "image": return el("div", { class: "block", text: "(image)" });
      default: return el("div", { class: "block", text: JSON.stringify(b) });
    }
  });
}

function message(role, content) {
  return el("div", { class: "msg " + role }, [el("div", { class: "role", text: role })].concat(blockNodes(content)));
}

function renderConversation(target, body) {
  if (body == null) { target.replaceChildren(el("p", { class: "muted", text: "(request body not kept)" })); return; }
  let request;
  try { request = JSON.parse(body); } catch (e) { target.replaceChildren(el("pre", { class: "block", text: body })); return; }
  const nodes = [];
  if (request.system) nodes.push(message("system", request.system));
  for (const m of request.messages || []) nodes.push(message(m.role, m.content));
  if (request.tools) nodes.push(el("p", { class: "muted", text: "tools: " + request.tools.map((t) => t.name).join(", ") }));
  target.replaceChildren(...nodes);
}

// The answer: a JSON message, or the SSE text of a stream put back together.
function renderAnswer(target, body) {
  if (body == null) { target.replaceChildren(el("p", { class: "muted", text: "(response body not kept)" })); return; }
  const trimmed = body.trimStart();
  if (trimmed.startsWith("{")) {
    try {
      const answer = JSON.parse(trimmed);
      target.replaceChildren(answer.content ? message("assistant", answer.content) : el("pre", { class: "block", text: body }));
      return;
    } catch (e) { /* falls through to the raw text */ }
  }
  const blocks = [];
  for (const line of body.split("\n")) {
    if (!line.startsWith("data:")) continue;
    let event;
    try { event = JSON.parse(line.slice(5)); } catch (e) { continue; }
    if (event.type === "content_block_start") blocks[event.index] = Object.assign({}, event.content_block, { partial: "" });
    else if (event.type === "content_block_delta" && blocks[event.index]) {
      const b = blocks[event.index], d = event.delta;
      if (d.type === "text_delta") b.text = (b.text || "") + d.text;
      else if (d.type === "thinking_delta") b.thinking = (b.thinking || "") + d.thinking;
      else if (d.type === "input_json_delta") b.partial += d.partial_json;
    } else if (event.type === "error") blocks.push({ type: "text", text: "error: " + JSON.stringify(event.error) });
  }
  for (const b of blocks) if (b && b.type === "tool_use" && b.partial) { try { b.input = JSON.parse(b.partial); } catch (e) { b.input = b.partial; } }
  target.replaceChildren(blocks.length ? message("assistant", blocks.filter(Boolean)) : el("pre", { class: "block", text: body }));
}

// Live tail: fetch() with a reader, so the token goes in a header (EventSource cannot).
async function startTail() {
  stopTail();
  const controller = new AbortController();
  tail = controller;
  const headers = token() ? { Authorization: "Bearer " + token() } : {};
  $("tail-status").textContent = "live tail: connecting…";
  try {
    const response = await fetch("/gateway/audit/stream", { headers, signal: controller.signal });
    if (!response.ok) throw new Error("live tail: " + response.status);
    $("tail-status").textContent = "live tail: on";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        tailEvent(frame);
      }
    }
    $("tail-status").textContent = "live tail: closed";
  } catch (e) {
    if (!controller.signal.aborted) $("tail-status").textContent = String(e.message || e);
  }
}

function tailEvent(frame) {
  let name = "message", data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trimStart();
  }
  if (name === "lagged") { $("tail-status").textContent = "live tail: missed " + JSON.parse(data).missed + " records"; return; }
  if (name !== "record") return;
  const record = JSON.parse(data);
  dashboard.tail.push(record.request_id);
  if (!localFilter(record)) return;
  const row = requestRow(record);
  row.classList.add("fresh");
  $("requests").tBodies[0].prepend(row);
}

function stopTail() {
  if (tail) tail.abort();
  tail = null;
}

// ---- providers ----
function percentile(values, q) {
  if (!values.length) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function loadProviders() {
  const [health, page] = await Promise.all([api("/gateway/health"), api("/gateway/audit?limit=1000")]);
  $("sample-size").textContent = page.records.length;
  const stats = {};
  const of = (name) => (stats[name] = stats[name] || { requests: 0, errors: 0, fallbacks: 0, latency: [], ttft: [] });
  for (const r of page.records) {
    if (r.provider) {
      const s = of(r.provider);
      s.requests++;
      if (r.status >= 400 || r.outcome === "error") s.errors++;
      s.latency.push(r.latency_ms);
      if (r.ttft_ms != null) s.ttft.push(r.ttft_ms);
    }
    for (const a of r.attempts.slice(0, -1)) of(a.provider).fallbacks++;
  }
  const ms = (v) => (v == null ? "–" : v + " ms");
  const names = new Set(Object.keys(health.providers).concat(Object.keys(stats)));
  $("providers").tBodies[0].replaceChildren(...[...names].sort().map((name) => {
    const s = of(name);
    const up = health.providers[name];
    return el("tr", {}, [el("td", { text: name }),
      el("td", { text: up === undefined ? "not configured" : up ? "available" : "cooling down (skipped)", class: up ? "ok" : "bad" }),
      el("td", { text: s.requests }), el("td", { text: s.errors }), el("td", { text: s.fallbacks }),
      el("td", { text: ms(percentile(s.latency, 0.5)) }), el("td", { text: ms(percentile(s.latency, 0.95)) }), el("td", { text: ms(percentile(s.latency, 0.99)) }),
      el("td", { text: ms(percentile(s.ttft, 0.5)) }), el("td", { text: ms(percentile(s.ttft, 0.95)) }), el("td", { text: ms(percentile(s.ttft, 0.99)) })]);
  }));
  definitions($("routing"), [["status", health.status], ["default provider", health.routing.default_provider],
    ["fallback chain", (health.routing.fallback_chain || []).join(" → ") || "none"]]);
}

// ---- keys and teams ----
const PERIOD_MS = { hour: 3600e3, day: 86400e3, week: 7 * 86400e3 };

function windowStart(period, resetsAt) {
  const end = new Date(resetsAt);
  if (period === "month") { end.setUTCMonth(end.getUTCMonth() - 1); return end.getTime(); }
  return PERIOD_MS[period] ? end.getTime() - PERIOD_MS[period] : null;
}

// Spend against budget: the bar is what is left; the projection extends this window's
// burn rate.
function budgetCells(x) {
  if (!x.budget_usd) return [el("td", { text: "none" }), el("td", { text: x.spent_usd }), el("td", { text: "–" }), el("td", { text: "–" }), el("td", { text: "–" })];
  const budget = picos(x.budget_usd), spent = picos(x.spent_usd) + picos(x.reserved_usd);
  const usedPct = budget > 0n ? Number((spent * 10000n) / budget) / 100 : 100;
  const bar = el("span", { class: "bar" }, [el("i", { class: usedPct >= 100 ? "over" : "" })]);
  bar.firstChild.style.width = Math.min(100, 100 - usedPct) + "%";
  let elapsed = "", projection = "–";
  const start = x.resets_at ? windowStart(x.budget_period, x.resets_at) : null;
  if (start != null) {
    const now = Date.now(), end = Date.parse(x.resets_at);
    elapsed = ` ${(100 * (now - start) / (end - start)).toFixed(0)}% of window gone`;
    if (spent >= budget) projection = "exhausted";
    else if (spent > 0n) {
      const rate = Number(spent) / Math.max(1, now - start);
      const at = now + Number(budget - spent) / rate;
      projection = at < end ? new Date(at).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "not before reset";
    } else projection = "not before reset";
  }
  return [el("td", { text: `${x.budget_usd} / ${x.budget_period}` }), el("td", { text: x.spent_usd }),
    el("td", { text: x.remaining_usd ?? "–" }), el("td", {}, [bar, document.createTextNode(` ${(100 - usedPct).toFixed(1)}% left${elapsed}`)]),
    el("td", { text: projection })];
}

async function loadKeys() {
  const [keys, teams] = await Promise.all([api("/gateway/keys"), api("/gateway/teams")]);
  $("keys").tBodies[0].replaceChildren(...keys.keys.map((k) => {
    const revoke = el("button", { type: "button", text: "Revoke", class: "revoke" });
    revoke.dataset.name = k.name;
    revoke.hidden = k.source === "config" || !!k.revoked_at;
    revoke.addEventListener("click", () => revokeKey(k.name, revoke).catch((e) => { $("keys-error").textContent = e.message; }));
    return el("tr", { "data-name": k.name }, [el("td", { text: k.name }), el("td", { text: k.team ?? "" }), el("td", { text: k.source })]
      .concat(budgetCells(k), [el("td", { text: `${k.rpm ?? "–"} / ${k.tpm ?? "–"}` }),
        el("td", { text: k.revoked_at ? "revoked " + k.revoked_at : k.expires_at ? "expires " + k.expires_at : "active", class: k.revoked_at ? "bad" : "ok" }),
        el("td", {}, [revoke])]));
  }));
  $("teams").tBodies[0].replaceChildren(...teams.teams.map((t) =>
    el("tr", {}, [el("td", { text: t.name }), el("td", { text: (t.keys || []).join(", ") })].concat(budgetCells(t)))));
}

async function createKey(event) {
  event.preventDefault();
  $("keys-error").textContent = "";
  const form = new FormData($("create-key"));
  const body = { name: form.get("name").trim() };
  if (form.get("team").trim()) body.team = form.get("team").trim();
  if (form.get("budget_usd").trim()) body.budget_usd = form.get("budget_usd").trim();
  if (form.get("budget_period")) body.budget_period = form.get("budget_period");
  if (form.get("rpm").trim()) body.rpm = Number(form.get("rpm").trim());
  try {
    const created = await api("/gateway/keys", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    $("new-key").hidden = false;
    $("new-key-value").textContent = created.key;
    $("create-key").reset();
    await loadKeys();
  } catch (e) { $("keys-error").textContent = e.message; }
}

// Two clicks: the first asks, the second revokes (no dialog to dismiss).
async function revokeKey(name, button) {
  if (button.dataset.armed !== "yes") {
    button.dataset.armed = "yes";
    button.textContent = "Confirm revoke";
    return;
  }
  await api("/gateway/keys/" + encodeURIComponent(name), { method: "DELETE" });
  await loadKeys();
}

// ---- wiring (no inline handlers: the page's CSP allows scripts from this origin only) ----
document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#nav button")) b.addEventListener("click", () => show(b.dataset.view));
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    start();
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); stopTail(); showLogin(""); });
  $("range").addEventListener("change", () => loadOverview().catch(showError));
  $("group").addEventListener("change", () => loadOverview().catch(showError));
  $("refresh").addEventListener("click", () => loadOverview().catch(showError));
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); pages = [null]; loadRequests(null).catch(showError); });
  $("next-page").addEventListener("click", () => { const c = $("next-page").dataset.cursor; if (c) { pages.push(c); loadRequests(c).catch(showError); } });
  $("first-page").addEventListener("click", () => { pages = [null]; loadRequests(null).catch(showError); });
  $("live-tail").addEventListener("change", (event) => (event.target.checked ? startTail() : (stopTail(), $("tail-status").textContent = "")));
  $("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
  $("create-key").addEventListener("submit", createKey);
  start();
});
