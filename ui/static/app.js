// trajscope web UI: plain JavaScript, no build step, no network beyond this server's API.
// Routes are URL hashes, so every view is a plain, shareable link and the back button works:
//   #/?status=error&agent=…   runs list (filters in the query)
//   #/run/<trace_id>[/<span_id>]   a run, optionally with a step selected
//   #/session/<session_id>   #/overview   #/sql[?q=…]
"use strict";

const API = "/api/v1";
const ROW_H = 24;
const CATEGORY_LETTER = { agent: "A", llm: "L", tool: "T", retriever: "R", embedding: "E", guardrail: "G",
  chain: "C", reranker: "K", evaluator: "V", plan: "P", memory: "M", other: "·" };
const app = document.getElementById("app");
const statusLine = document.getElementById("status");
let cleanup = [];  // timers and listeners of the current view

// ---------------------------------------------------------------------------------------------- helpers
// Children as el() takes them: nested arrays flattened, null / undefined / false left out, text as text nodes.
function nodes(children) {
  return children.flat().filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

// Replace a node's children; a null child (an optional part not shown) is left out, never shown as "null".
function setChildren(node, ...children) {
  node.replaceChildren(...nodes(children));
}

function plural(n, one, many = `${one}s`) {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...nodes(children));
  return node;
}
const catColor = (c) => `var(--${CATEGORY_LETTER[c] ? c : "other"})`;
const catIcon = (c) => el("span", { class: "cat", style: `background:${catColor(c)}`, title: c },
  CATEGORY_LETTER[c] || "·");
const fmtMs = (ms) => ms === null || ms === undefined ? "" : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
const fmtCost = (c) => c === null || c === undefined ? "—" : `$${c < 0.01 ? c.toFixed(5) : c.toFixed(4)}`;
const fmtInt = (n) => n === null || n === undefined ? "" : Number(n).toLocaleString();
const fmtTime = (ns) => new Date(Number(ns) / 1e6).toLocaleString();

function apiKeyHeaders() {
  const key = localStorage.getItem("trajscope-api-key");
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(API + path, { ...options, headers: { ...apiKeyHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) {
    const key = prompt("This server needs an API key:");
    if (key) { localStorage.setItem("trajscope-api-key", key); return api(path, options); }
  }
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try { const body = await response.json(); message = `${body.error.code}: ${body.error.message}`; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}
const getJSON = async (path) => (await api(path)).json();
// `{fields, rows}` (the API's table layout) → one object per row.
const rowsToObjects = ({ fields, rows }) => rows.map((row) => {
  const o = {};
  for (let i = 0; i < fields.length; i++) o[fields[i]] = row[i];
  return o;
});
const sqlJSON = async (sql, limit = 1000) => (await api("/sql", {
  method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ sql, limit, format: "json" }),
})).json();

function showError(err) {
  setChildren(app, el("div", { class: "error-box" }, String(err.message || err)));
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

// ---------------------------------------------------------------------------------------------- runs list
const RUN_FILTERS = ["q", "service", "agent", "session_id", "status", "guardrail", "since", "until", "min_duration_ms", "min_cost_usd"];
// A <input type=datetime-local> value (local time) ⇄ the API's RFC 3339.
const toLocalInput = (iso) => { if (!iso || !iso.includes("T")) return ""; const d = new Date(iso); return isNaN(d) ? "" : new Date(d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16); };
const fromLocalInput = (v) => v ? new Date(v).toISOString() : "";

function runsView(params) {
  const form = el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); applyFilters(); } },
    el("label", {}, "search", el("input", { name: "q", placeholder: "span name or id", value: params.get("q") || "" })),
    el("label", {}, "service", el("input", { name: "service", value: params.get("service") || "", size: 12 })),
    el("label", {}, "agent", el("input", { name: "agent", value: params.get("agent") || "", size: 12 })),
    el("label", {}, "session", el("input", { name: "session_id", value: params.get("session_id") || "", size: 12 })),
    el("label", {}, "time", el("select", { name: "since_preset", onchange: () => { form.elements.from.value = ""; applyFilters(); } },
      ["", "15m", "1h", "24h", "7d"].map((v) => el("option", { value: v, selected: params.get("since") === v }, v ? `last ${v}` : "any time")))),
    el("label", {}, "from", el("input", { name: "from", type: "datetime-local", value: toLocalInput(params.get("since")) })),
    el("label", {}, "to", el("input", { name: "to", type: "datetime-local", value: toLocalInput(params.get("until")) })),
    el("label", {}, "min duration (ms)", el("input", { name: "min_duration_ms", type: "number", min: 0, size: 6, value: params.get("min_duration_ms") || "" })),
    el("label", {}, "min cost ($)", el("input", { name: "min_cost_usd", type: "number", min: 0, step: "any", size: 6, value: params.get("min_cost_usd") || "" })),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "status", value: "error", checked: params.get("status") === "error", onchange: applyFilters }), "errors only"),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "guardrail", value: "hits", checked: params.get("guardrail") === "hits", onchange: applyFilters }), "guardrail hits"),
    el("label", { class: "check" }, el("input", { type: "checkbox", id: "live", checked: localStorage.getItem("trajscope-live") === "1" }), "live"),
    el("button", { type: "submit" }, "Apply"));

  function applyFilters() {
    const next = new URLSearchParams();
    for (const name of RUN_FILTERS) {
      const input = form.elements[name];
      if (!input) continue;
      const value = input.type === "checkbox" ? (input.checked ? input.value : "") : input.value.trim();
      if (value) next.set(name, value);
    }
    // An explicit range wins over the "last …" preset.
    const since = fromLocalInput(form.elements.from.value) || form.elements.since_preset.value;
    const until = fromLocalInput(form.elements.to.value);
    if (since) next.set("since", since);
    if (until) next.set("until", until);
    location.hash = `#/?${next}`;
  }

  const tbody = el("tbody");
  const more = el("button", { style: "margin-top:.6rem", onclick: () => load(true) }, "Load more");
  const table = el("table", { id: "runs" }, el("thead", {}, el("tr", {},
    el("th", {}, "agent"), el("th", {}, "root"), el("th", {}, "start"), el("th", { class: "num" }, "duration"),
    el("th", { class: "num" }, "spans"), el("th", { class: "num" }, "tokens"), el("th", { class: "num" }, "cost"),
    el("th", { class: "num" }, "errors"), el("th", {}, "session"), el("th", {}, ""))), tbody);
  setChildren(app, form, table, more);

  let cursor = null;
  let paged = false;  // after "Load more", live refresh would throw the extra pages away
  const query = new URLSearchParams();
  for (const name of RUN_FILTERS) if (params.get(name)) query.set(name, params.get(name));

  async function load(append) {
    const q = new URLSearchParams(query);
    q.set("limit", "100");
    if (append && cursor) { q.set("cursor", cursor); paged = true; }
    try {
      const page = await getJSON(`/traces?${q}`);
      if (!append) setChildren(tbody);
      for (const t of page.traces) tbody.append(runRow(t));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      statusLine.textContent = `${tbody.children.length} runs shown`;
    } catch (err) { showError(err); }
  }
  load(false);
  const live = form.querySelector("#live");
  const timer = setInterval(() => { if (live.checked && !paged) load(false); }, 5000);
  live.addEventListener("change", () => localStorage.setItem("trajscope-live", live.checked ? "1" : "0"));
  cleanup.push(() => clearInterval(timer));
}

function runRow(t) {
  return el("tr", { "data-trace-id": t.trace_id, onclick: () => { location.hash = `#/run/${t.trace_id}`; } },
    el("td", {}, t.agent_name || el("span", { class: "muted" }, "—")),
    el("td", {}, t.root_name || el("span", { class: "muted" }, "(no root)"), t.complete ? null : el("span", { class: "badge", title: "root span missing" }, "incomplete")),
    el("td", {}, fmtTime(t.start_time_unix_nano)),
    el("td", { class: "num" }, fmtMs(t.duration_ms)),
    el("td", { class: "num" }, fmtInt(t.span_count)),
    el("td", { class: "num" }, fmtInt((t.input_tokens || 0) + (t.output_tokens || 0))),
    el("td", { class: "num" }, fmtCost(t.cost_usd)),
    el("td", { class: `num ${t.error_count ? "err" : ""}` }, t.error_count || ""),
    el("td", {}, t.session_id ? el("a", { href: `#/session/${encodeURIComponent(t.session_id)}`, onclick: (e) => e.stopPropagation() }, t.session_id) : null),
    el("td", {}, t.guardrail_hits ? el("span", { class: "badge err", title: "guardrail hits" }, `guardrail ${t.guardrail_hits}`) : null));
}

// ---------------------------------------------------------------------------------------------- run page
async function runView(traceId, stepId) {
  setChildren(app, el("p", { class: "muted" }, "Loading run…"));
  let trajectory, latency;
  try {
    // The table layout sends each step as an array (no repeated keys): ~2.5× smaller and faster to build
    // for big runs; the latency's per-span list is not needed here.
    [trajectory, latency] = await Promise.all([
      getJSON(`/traces/${traceId}/trajectory?layout=table`), getJSON(`/traces/${traceId}/latency?layout=table`)]);
  } catch (err) { showError(err); return; }
  const steps = rowsToObjects(trajectory.steps);
  const critical = new Set(latency.critical_path.map((s) => s.span_id));
  const anomaliesBySpan = new Map();
  for (const a of trajectory.anomalies) {
    if (!anomaliesBySpan.has(a.span_id)) anomaliesBySpan.set(a.span_id, []);
    anomaliesBySpan.get(a.span_id).push(a);
  }
  const t0 = Math.min(...steps.map((s) => Number(s.start_time_unix_nano)));
  const t1 = Math.max(...steps.map((s) => Number(s.end_time_unix_nano)));
  const span = Math.max(t1 - t0, 1);
  const totals = trajectory.totals;
  const root = steps[0] || {};

  const header = el("div", {},
    el("h2", { style: "margin:.2rem 0" }, root.name || traceId),
    el("div", { class: "summary" },
      el("span", {}, "agent ", el("b", {}, root.agent_name || "—")),
      el("span", {}, "duration ", el("b", {}, fmtMs(trajectory.duration_ms))),
      el("span", {}, "steps ", el("b", {}, fmtInt(totals.span_count))),
      el("span", {}, "LLM calls ", el("b", {}, totals.llm_calls), " · tools ", el("b", {}, totals.tool_calls)),
      el("span", {}, "tokens ", el("b", {}, fmtInt(totals.input_tokens)), " in / ", el("b", {}, fmtInt(totals.output_tokens)), " out"),
      el("span", {}, "cost ", el("b", {}, fmtCost(totals.cost_usd))),
      el("span", { class: totals.error_count ? "err" : "" }, "errors ", el("b", {}, totals.error_count)),
      el("span", {}, "guardrail hits ", el("b", {}, totals.guardrail_hits)),
      el("span", { class: "muted" }, traceId)));

  // Where the time went: critical time per category, as one bar that sums to the run's duration.
  const byCat = Object.entries(latency.by_category).filter(([, v]) => v.critical_ms > 0)
    .sort((a, b) => b[1].critical_ms - a[1].critical_ms);
  const critTotal = byCat.reduce((acc, [, v]) => acc + v.critical_ms, 0) || 1;
  const breakdown = el("div", { class: "breakdown", id: "breakdown", title: "critical-path time by category" },
    byCat.map(([c, v]) => el("div", { style: `width:${(100 * v.critical_ms / critTotal).toFixed(3)}%;background:${catColor(c)}`,
      title: `${c}: ${fmtMs(v.critical_ms)}`, "data-category": c })));
  const legend = el("div", { class: "legend" }, byCat.map(([c, v]) => el("span", {}, el("i", { style: `background:${catColor(c)}` }),
    `${c} ${fmtMs(v.critical_ms)} (${(100 * v.critical_ms / critTotal).toFixed(0)}%)`)),
    el("span", {}, el("i", { style: "background:transparent;box-shadow:0 0 0 2px var(--crit)" }), "critical path"));

  const anomalyList = trajectory.anomalies.length ? el("details", { class: "anomalies" },
    el("summary", {}, plural(trajectory.anomalies.length, "anomaly", "anomalies")),
    el("ul", {}, trajectory.anomalies.map((a) => el("li", {}, `${a.kind}: `, el("a", { href: `#/run/${traceId}/${a.span_id}` }, a.span_id), ` — ${a.detail}`)))) : null;

  // The waterfall: rows are virtualised (only the visible ones exist), so 50,000 steps stay smooth.
  const inner = el("div", { class: "wf-inner", style: `height:${steps.length * ROW_H}px` });
  const waterfall = el("div", { class: "waterfall", id: "waterfall", tabindex: 0, "data-total-rows": steps.length }, inner);
  const details = el("aside", { class: "details", id: "details" }, el("p", { class: "muted" }, "Select a step (click, or j / k)."));
  setChildren(app, header, breakdown, legend, anomalyList,
    el("div", { class: "kbd" }, "j / k: next / previous step · the orange outline is the critical path"),
    el("div", { class: "run" }, waterfall, details));

  // A step in the URL (an unknown one falls back to the first); none selected otherwise.
  let selected = stepId ? Math.max(0, steps.findIndex((s) => s.span_id === stepId)) : -1;

  function renderRows() {
    const first = Math.max(0, Math.floor(waterfall.scrollTop / ROW_H) - 10);
    const last = Math.min(steps.length, first + Math.ceil(waterfall.clientHeight / ROW_H) + 20);
    const rows = [];
    for (let i = first; i < last; i++) rows.push(stepRow(i));
    setChildren(inner, ...rows);
  }

  function stepRow(i) {
    const s = steps[i];
    const left = 100 * (Number(s.start_time_unix_nano) - t0) / span;
    const width = 100 * (Number(s.end_time_unix_nano) - Number(s.start_time_unix_nano)) / span;
    const flagged = anomaliesBySpan.get(s.span_id);
    const classes = ["wf-row", critical.has(s.span_id) ? "crit" : "", flagged ? "anomaly" : "", i === selected ? "selected" : ""];
    return el("div", { class: classes.join(" "), style: `top:${i * ROW_H}px`, "data-span-id": s.span_id, "data-index": i,
      onclick: () => { location.hash = `#/run/${traceId}/${s.span_id}`; } },
      el("div", { class: "wf-label", style: `padding-left:${0.4 + s.depth * 0.9}rem`, title: s.name },
        catIcon(s.category), s.name,
        s.parallel_group !== null ? el("span", { class: "badge", title: "runs in parallel with its siblings" }, `∥${s.parallel_group}`) : null,
        flagged ? el("span", { class: "badge err", title: flagged.map((a) => `${a.kind}: ${a.detail}`).join("\n") }, `⚠ ${flagged.map((a) => a.kind).join(", ")}`) : null,
        el("span", { class: "muted" }, " ", fmtMs(s.duration_ms))),
      el("div", { class: "wf-track" }, el("div", { class: "wf-bar", style: `left:${left}%;width:${Math.max(width, 0.15)}%;background:${catColor(s.category)}` })));
  }

  // Selecting replaces the URL (j/k must not flood the history); a click goes through the hash instead.
  function select(i) {
    if (i < 0 || i >= steps.length) return;
    selected = i;
    history.replaceState(null, "", `#/run/${traceId}/${steps[i].span_id}`);
    const top = i * ROW_H;
    if (top < waterfall.scrollTop || top > waterfall.scrollTop + waterfall.clientHeight - ROW_H) {
      waterfall.scrollTop = top - waterfall.clientHeight / 2;
    }
    renderRows();
    showStep(steps[i]);
  }

  let fullSpans = null;  // every stored field, fetched once when a step's details are first opened
  async function spanRecord(spanId) {
    if (!fullSpans) {
      const body = await getJSON(`/traces/${traceId}`);
      fullSpans = new Map(body.spans.map((s) => [s.span_id, s]));
    }
    return fullSpans.get(spanId);
  }

  async function showStep(step) {
    const flagged = anomaliesBySpan.get(step.span_id) || [];
    const panel = [el("h3", {}, catIcon(step.category), step.name),
      el("dl", {},
        dt("category", step.category), dt("duration", fmtMs(step.duration_ms)), dt("status", step.status_code, step.status_message),
        dt("model", step.model), dt("tool", step.tool_name), dt("agent", step.agent_name),
        dt("tokens", step.input_tokens !== null || step.output_tokens !== null ? `${fmtInt(step.input_tokens)} in / ${fmtInt(step.output_tokens)} out` : null),
        dt("critical path", critical.has(step.span_id) ? "yes" : "no"),
        dt("span id", step.span_id)),
      flagged.length ? el("ul", { class: "anomalies" }, flagged.map((a) => el("li", {}, `${a.kind}: ${a.detail}`))) : null,
      step.guardrail ? el("p", {}, el("b", {}, "Guardrail "), `${step.guardrail.name}: `,
        step.guardrail.triggered === null ? "outcome not reported" : step.guardrail.triggered ? "triggered" : "passed",
        step.guardrail.action ? ` (${step.guardrail.action})` : "") : null,
      step.documents ? documentList(traceId, step) : null,
      step.input_preview ? el("div", {}, el("b", {}, "Input"), el("pre", {}, step.input_preview)) : null,
      step.output_preview ? el("div", {}, el("b", {}, "Output"), el("pre", {}, step.output_preview)) : null];
    setChildren(details, ...panel.filter(Boolean));
    if (step.virtual) return;
    try {
      const record = await spanRecord(step.span_id);
      if (!record || steps[selected] !== step) return;
      details.querySelector("dl").append(...dt("cost", record.cost_usd === null ? (record.cost_source === "unpriced" ? "unpriced model" : "—") : `${fmtCost(record.cost_usd)} (${record.cost_source})`));
      details.append(...fullContent(record));
    } catch (err) { details.append(el("div", { class: "error-box" }, String(err.message))); }
  }

  function dt(label, ...values) {
    const shown = values.filter((v) => v !== null && v !== undefined && v !== "");
    return shown.length ? [el("dt", {}, label), el("dd", {}, shown.join(" · "))] : [];
  }

  const onKey = (e) => {
    if (e.target.matches("input, textarea, select")) return;
    if (e.key === "j") { select(Math.min(steps.length - 1, selected + 1)); e.preventDefault(); }
    if (e.key === "k") { select(Math.max(0, selected - 1)); e.preventDefault(); }
  };
  document.addEventListener("keydown", onKey);
  cleanup.push(() => document.removeEventListener("keydown", onKey));
  waterfall.addEventListener("scroll", () => requestAnimationFrame(renderRows));
  const onHash = () => {
    const { parts } = parseHash();
    if (parts[0] === "run" && parts[1] === traceId) {
      const i = parts[2] ? steps.findIndex((s) => s.span_id === parts[2]) : -1;
      if (i >= 0 && i !== selected) select(i);
      return true;
    }
    return false;
  };
  runView.onHash = onHash;
  renderRows();
  if (selected >= 0) select(selected);
  statusLine.textContent = `${steps.length} steps`;
}

// A part of a normalised message (the API's `messages`, GenAI conventions' shape) as text.
function partText(p) {
  if (p === null || typeof p !== "object") return typeof p === "string" ? p : "";
  if (p.type === "tool_call") return `→ ${p.name || "tool"}(${typeof p.arguments === "string" ? p.arguments : JSON.stringify(p.arguments ?? {})})`;
  if (p.type === "tool_call_response") return `← ${typeof p.result === "string" ? p.result : JSON.stringify(p.result ?? p.response ?? "")}`;
  const text = p.content ?? p.text;
  if (typeof text === "string") return text;
  return text === undefined ? `[${p.type || "part"}]` : JSON.stringify(text);
}

// The model call's messages, whatever dialect or signal they came in: system, input, output, tools.
function messageSections(messages) {
  const out = [];
  const sources = messages.sources || {};
  for (const [key, title] of [["system", "System instructions"], ["input", "Input messages"], ["output", "Output messages"]]) {
    const list = messages[key];
    if (!list || !list.length) continue;
    out.push(el("details", { open: list.length <= 12, class: `messages messages-${key}` },
      el("summary", {}, `${title} (${list.length}, from ${sources[key] || "span"})`),
      list.map((m) => el("div", { class: "msg" }, el("div", { class: "role" }, m.role || "message"),
        (m.parts || []).map(partText).filter(Boolean).join("\n")))));
  }
  if (messages.tools && messages.tools.length) {
    const names = messages.tools.map((t) => t.name || (t.function && t.function.name) || t.type || "tool");
    out.push(el("details", { class: "messages messages-tools" }, el("summary", {}, `Tools offered (${names.length}): ${names.join(", ")}`),
      el("pre", {}, JSON.stringify(messages.tools, null, 2))));
  }
  return out;
}

// A retrieval step's documents by rank, with scores (a reranker's with the rank each had before); a
// document's whole content is fetched when it is opened, once per step.
function documentList(traceId, step) {
  let full = null;
  const content = async () => {
    full = full || getJSON(`/traces/${traceId}/spans/${step.span_id}/documents`);
    return full;
  };
  const items = step.documents.map((d) => {
    const body = el("pre", { class: "document-content" }, d.preview || "(no content sent)");
    const item = el("details", { class: "document" },
      el("summary", {}, el("span", { class: "rank" }, `#${d.rank}`), " ",
        d.score === null || d.score === undefined ? "" : el("span", { class: "score" }, Number(d.score).toFixed(3)), " ",
        d.id || "(no id)",
        d.previous_rank !== undefined ? el("span", { class: "muted" }, d.previous_rank === null ? " (new)" : ` (was #${d.previous_rank})`) : ""),
      body);
    item.addEventListener("toggle", async () => {
      if (!item.open || item.dataset.loaded) return;
      item.dataset.loaded = "1";
      try {
        const got = (await content()).documents.find((x) => x.rank === d.rank);
        if (got && got.content) body.textContent = got.content;
        if (got && got.metadata) item.append(el("pre", { class: "muted" }, JSON.stringify(got.metadata, null, 2)));
      } catch (err) { item.append(el("div", { class: "error-box" }, String(err.message))); }
    });
    return item;
  });
  return el("div", { class: "documents" },
    el("b", {}, `Retrieved documents (${step.documents.length})`),
    step.query ? el("p", {}, el("span", { class: "muted" }, "query "), step.query) : null,
    items.length ? el("ol", {}, items.map((item) => el("li", {}, item))) : el("p", { class: "muted" }, "none returned"));
}

function evaluationTable(evaluations) {
  return el("div", { class: "evaluations" }, el("b", {}, "Evaluations"),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", { class: "num" }, "score"), el("th", {}, "label"), el("th", {}, "explanation"))),
      el("tbody", {}, evaluations.map((e) => el("tr", {}, el("td", {}, e.name || "—"),
        el("td", { class: "num" }, e.score_value === null || e.score_value === undefined ? "—" : String(e.score_value)),
        el("td", {}, e.score_label || "—"), el("td", {}, e.explanation || ""))))));
}

// Messages as chat; other long values as chat messages when they are message lists; the rest as sent.
function fullContent(record) {
  const out = [];
  const attrs = record.attributes || {};
  if (record.messages) out.push(...messageSections(record.messages));
  if (record.evaluations && record.evaluations.length) out.push(evaluationTable(record.evaluations));
  const shown = record.messages ? ["input.value", "output.value"] : ["input.value", "gen_ai.input.messages", "gen_ai.prompt", "output.value", "gen_ai.output.messages", "gen_ai.completion"];
  for (const key of shown) {
    if (!(key in attrs)) continue;
    const messages = asMessages(attrs[key]);
    out.push(el("details", { open: messages !== null && messages.length <= 12 },
      el("summary", {}, `${key} (full)`),
      messages ? messages.map((m) => el("div", { class: "msg" }, el("div", { class: "role" }, m.role || "message"), m.text))
        : el("pre", {}, typeof attrs[key] === "string" ? attrs[key] : JSON.stringify(attrs[key], null, 2))));
  }
  const exceptions = (record.events || []).filter((e) => e.name === "exception");
  for (const e of exceptions) {
    const a = e.attributes || {};
    out.push(el("div", { class: "error-box" }, el("b", {}, a["exception.type"] || "exception"), ": ", a["exception.message"] || "",
      a["exception.stacktrace"] ? el("pre", {}, a["exception.stacktrace"]) : null));
  }
  out.push(el("details", {}, el("summary", {}, `attributes (${Object.keys(attrs).length})`),
    el("pre", {}, JSON.stringify(attrs, null, 2))));
  if ((record.events || []).length) {
    out.push(el("details", {}, el("summary", {}, `events (${record.events.length})`), el("pre", {}, JSON.stringify(record.events, null, 2))));
  }
  return out;
}

function asMessages(value) {
  let parsed = value;
  if (typeof value === "string" && value.trim().startsWith("[")) {
    try { parsed = JSON.parse(value); } catch (e) { return null; }
  }
  if (!Array.isArray(parsed) || !parsed.length || typeof parsed[0] !== "object") return null;
  return parsed.map((m) => {
    let text = m.content;
    if (Array.isArray(m.parts)) text = m.parts.map((p) => p.content || p.text || (p.name ? `→ ${p.name}(${JSON.stringify(p.arguments || {})})` : "")).join("\n");
    else if (Array.isArray(text)) text = text.map((p) => p.text || "").join("\n");
    return { role: m.role, text: typeof text === "string" ? text : JSON.stringify(text) };
  });
}

// ---------------------------------------------------------------------------------------------- session
async function sessionView(sessionId) {
  try {
    const s = await getJSON(`/sessions/${encodeURIComponent(sessionId)}`);
    setChildren(app, el("h2", {}, `Session ${sessionId}`),
      el("div", { class: "summary" }, el("span", {}, "turns ", el("b", {}, s.traces.length)),
        el("span", {}, "user ", el("b", {}, s.user_id || "—")), el("span", {}, "agent ", el("b", {}, s.agent_name || "—")),
        el("span", {}, "cost ", el("b", {}, fmtCost(s.totals.cost_usd))),
        el("span", {}, "tokens ", el("b", {}, fmtInt(s.totals.input_tokens)), " in / ", el("b", {}, fmtInt(s.totals.output_tokens)), " out"),
        el("span", {}, "time in runs ", el("b", {}, fmtMs(s.totals.duration_ms)))),
      el("table", { id: "turns" }, el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "run"), el("th", {}, "start"),
        el("th", { class: "num" }, "latency"), el("th", { class: "num" }, "tokens"), el("th", { class: "num" }, "cost"), el("th", { class: "num" }, "errors"))),
      el("tbody", {}, s.traces.map((t, i) => el("tr", { onclick: () => { location.hash = `#/run/${t.trace_id}`; } },
        el("td", {}, i + 1), el("td", {}, t.root_name), el("td", {}, fmtTime(t.start_time_unix_nano)),
        el("td", { class: "num" }, fmtMs(t.duration_ms)), el("td", { class: "num" }, fmtInt((t.input_tokens || 0) + (t.output_tokens || 0))),
        el("td", { class: "num" }, fmtCost(t.cost_usd)), el("td", { class: `num ${t.error_count ? "err" : ""}` }, t.error_count || ""))))));
  } catch (err) { showError(err); }
}

// ---------------------------------------------------------------------------------------------- overview
function barChart(title, rows, { value, label, format = (v) => v, color = () => "var(--accent)" }) {
  const h = 20, width = 560, labelW = 170;
  const max = Math.max(...rows.map(value), 1e-12);
  const svg = `<svg viewBox="0 0 ${width} ${rows.length * h + 4}" role="img" aria-label="${title}">` + rows.map((r, i) => {
    const w = (width - labelW - 90) * value(r) / max;
    return `<text x="${labelW - 6}" y="${i * h + 14}" text-anchor="end">${escapeXml(String(label(r) ?? "—")).slice(0, 28)}</text>` +
      `<rect x="${labelW}" y="${i * h + 3}" width="${Math.max(w, 1)}" height="${h - 6}" rx="2" fill="${color(r)}"></rect>` +
      `<text x="${labelW + w + 6}" y="${i * h + 14}">${escapeXml(String(format(value(r))))}</text>`;
  }).join("") + "</svg>";
  const box = el("div", { class: "chart" }, el("h3", {}, title));
  box.insertAdjacentHTML("beforeend", rows.length ? svg : "<p class='muted'>no data</p>");
  return box;
}

function timeChart(title, rows) {
  const width = 560, height = 140, pad = 24;
  const max = Math.max(...rows.map((r) => r.runs), 1);
  const bw = rows.length ? (width - pad) / rows.length : 0;
  const svg = `<svg viewBox="0 0 ${width} ${height + 20}" role="img" aria-label="${title}">` + rows.map((r, i) => {
    const h1 = (height - 10) * r.runs / max, h2 = (height - 10) * r.errors / max;
    return `<rect x="${pad + i * bw}" y="${height - h1}" width="${Math.max(bw - 2, 1)}" height="${h1}" fill="var(--accent)"><title>${r.bucket}: ${r.runs} runs</title></rect>` +
      `<rect x="${pad + i * bw}" y="${height - h2}" width="${Math.max(bw - 2, 1)}" height="${h2}" fill="var(--err)"><title>${r.bucket}: ${r.errors} errors</title></rect>`;
  }).join("") + `<text x="0" y="12">${max}</text>` +
    (rows.length ? `<text x="${pad}" y="${height + 16}">${escapeXml(rows[0].bucket)}</text><text x="${width}" y="${height + 16}" text-anchor="end">${escapeXml(rows[rows.length - 1].bucket)}</text>` : "") + "</svg>";
  const box = el("div", { class: "chart" }, el("h3", {}, title));
  box.insertAdjacentHTML("beforeend", rows.length ? svg : "<p class='muted'>no data</p>");
  return box;
}

const escapeXml = (s) => s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" }[c]));

async function overviewView() {
  setChildren(app, el("p", { class: "muted" }, "Loading…"));
  const rate = el("div", { class: "chart", id: "ingest-rate" }, el("h3", {}, "Ingest rate"), el("p", { class: "muted" }, "measuring…"));
  try {
    const [byCategory, byTool, byModel, byModelUsage, byAgentUsage, guards, runs, byIndex, retrievalTimes] = await Promise.all([
      getJSON("/stats/latency?group_by=category"), getJSON("/stats/latency?group_by=tool"),
      getJSON("/stats/latency?group_by=model"),
      getJSON("/stats/usage?group_by=model"), getJSON("/stats/usage?group_by=agent"),
      getJSON("/stats/guardrails?group_by=name"),
      sqlJSON(`SELECT strftime(make_timestamp((start_time_unix_nano // 3600000000000) * 3600000000), '%m-%d %H:00') AS bucket,
               count(*) AS runs, count(*) FILTER (WHERE error_count > 0) AS errors FROM traces
               WHERE start_time_unix_nano >= epoch_ns(now()) - CAST(604800000000000 AS BIGINT) GROUP BY 1 ORDER BY 1`),
      getJSON("/stats/retrieval?group_by=index"),
      sqlJSON(`SELECT strftime(make_timestamp((start_time_unix_nano // 300000000000) * 300000000), '%m-%d %H:%M') AS bucket,
               count(*) AS runs, count(*) FILTER (WHERE empty OR top_score < 0.5) AS errors FROM retrievals
               WHERE category = 'retriever' AND start_time_unix_nano >= epoch_ns(now()) - CAST(86400000000000 AS BIGINT)
               GROUP BY 1 ORDER BY 1`)]);
    const ms = (v) => fmtMs(v);
    setChildren(app, el("h2", {}, "Overview"), el("div", { class: "grid2" },
      rate,
      timeChart("Runs (blue) and runs with errors (red), per hour, last 7 days", runs.rows),
      barChart("Where time goes: critical-path time by category", byCategory.groups, { value: (r) => r.critical_ms, label: (r) => r.key, format: ms, color: (r) => catColor(r.key) }),
      barChart("Critical-path time by tool", byTool.groups.slice(0, 12), { value: (r) => r.critical_ms, label: (r) => r.key, format: ms, color: () => "var(--tool)" }),
      barChart("Critical-path time by model", byModel.groups.slice(0, 12), { value: (r) => r.critical_ms, label: (r) => r.key, format: ms, color: () => "var(--llm)" }),
      barChart("Cost by model", byModelUsage.groups.slice(0, 12), { value: (r) => r.cost_usd || 0, label: (r) => r.key, format: fmtCost, color: () => "var(--llm)" }),
      barChart("Cost by agent", byAgentUsage.groups.slice(0, 12), { value: (r) => r.cost_usd || 0, label: (r) => r.key, format: fmtCost, color: () => "var(--agent)" }),
      barChart("Guardrail hits by guardrail", guards.groups.slice(0, 12), { value: (r) => r.hits, label: (r) => r.key, format: (v) => v, color: () => "var(--guardrail)" }),
      timeChart("Retrievals (blue) and weak or empty ones (red: top score under 0.5, or nothing), per 5 minutes, last 24 h", retrievalTimes.rows),
      barChart("Retrieval by index: share that returned nothing", byIndex.groups.filter((g) => g.key !== null).slice(0, 12), { value: (r) => r.empty_rate || 0, label: (r) => r.key, format: (v) => `${(100 * v).toFixed(1)} %`, color: () => "var(--retriever)" })));
  } catch (err) { showError(err); return; }
  // Ingest rate from the server's counters, sampled while this page is open.
  const samples = [];
  async function sample() {
    try {
      const health = await (await fetch(`${API}/health`)).json();
      samples.push([performance.now(), health.ingest.spans_acknowledged || 0]);
      if (samples.length > 30) samples.shift();
      if (samples.length >= 2) {
        const [ta, a] = samples[0], [tb, b] = samples[samples.length - 1];
        setChildren(rate, el("h3", {}, "Ingest rate"), el("p", {}, el("b", { style: "font-size:20px" }, `${Math.round((b - a) / ((tb - ta) / 1000)).toLocaleString()} spans/s`),
          el("span", { class: "muted" }, ` over the last ${((tb - ta) / 1000).toFixed(0)} s · ${Number(b).toLocaleString()} acknowledged since start`)));
      }
    } catch (e) { /* server restarting: keep the last figure */ }
  }
  sample();
  const timer = setInterval(sample, 2000);
  cleanup.push(() => clearInterval(timer));
}

// ---------------------------------------------------------------------------------------------- SQL
async function sqlView(params) {
  const editor = el("textarea", { id: "sql-editor", spellcheck: false },
    params.get("q") || "SELECT agent_name, count(*) AS runs, round(sum(cost_usd), 4) AS cost_usd\nFROM traces GROUP BY agent_name ORDER BY runs DESC");
  const output = el("div", { id: "sql-output" });
  const run = async () => {
    history.replaceState(null, "", `#/sql?q=${encodeURIComponent(editor.value)}`);
    setChildren(output, el("p", { class: "muted" }, "Running…"));
    try {
      const body = await sqlJSON(editor.value, 1000);
      setChildren(output, el("p", { class: "muted" }, `${body.row_count} rows${body.truncated ? " (first 1,000; download for all)" : ""} in ${body.elapsed_ms} ms`),
        el("div", { class: "results" }, el("table", { id: "sql-results" },
          el("thead", {}, el("tr", {}, body.columns.map((c) => el("th", { title: c.type }, c.name)))),
          el("tbody", {}, body.rows.map((r) => el("tr", {}, body.columns.map((c) => el("td", {}, cell(r[c.name])))))))));
    } catch (err) { setChildren(output, el("div", { class: "error-box", id: "sql-error" }, String(err.message))); }
  };
  const download = async (format) => {
    try {
      const response = await api("/sql", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ sql: editor.value, format, limit: 1000000 }) });
      const url = URL.createObjectURL(await response.blob());
      const a = el("a", { href: url, download: `trajscope-result.${format}` });
      document.body.append(a); a.click(); a.remove(); URL.revokeObjectURL(url);
    } catch (err) { setChildren(output, el("div", { class: "error-box", id: "sql-error" }, String(err.message))); }
  };
  editor.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
  const schema = el("div", { class: "schema", id: "schema" }, el("p", { class: "muted" }, "Loading schema…"));
  setChildren(app, el("div", { class: "sql" }, schema, el("div", {}, editor,
    el("div", { style: "display:flex;gap:.5rem;margin-top:.4rem" }, el("button", { id: "sql-run", onclick: run }, "Run (Ctrl+Enter)"),
      el("button", { onclick: () => download("csv") }, "Download CSV"), el("button", { onclick: () => download("parquet") }, "Download Parquet")),
    output)));
  try {
    const cols = await sqlJSON(`SELECT table_name, column_name, data_type FROM information_schema.columns
      WHERE table_name IN ('spans', 'traces', 'log_records', 'llm_calls', 'tool_calls', 'guardrail_events', 'evaluations', 'sessions')
      ORDER BY table_name, ordinal_position`, 5000);
    const byTable = new Map();
    for (const r of cols.rows) { if (!byTable.has(r.table_name)) byTable.set(r.table_name, []); byTable.get(r.table_name).push(r); }
    setChildren(schema, ...[...byTable].map(([t, columns]) => el("details", { open: t === "traces" },
      el("summary", {}, t), el("ul", {}, columns.map((c) => el("li", {}, c.column_name, el("span", { class: "muted" }, ` ${c.data_type.toLowerCase().slice(0, 24)}`)))))));
  } catch (err) { setChildren(schema, el("div", { class: "error-box" }, String(err.message))); }
}
const cell = (v) => v === null || v === undefined ? "NULL" : typeof v === "object" ? JSON.stringify(v) : String(v);

// ---------------------------------------------------------------------------------------------- router
function route() {
  const { parts, params } = parseHash();
  if (parts[0] === "run" && runView.onHash && runView.onHash()) return;  // a step change within the open run
  for (const fn of cleanup.splice(0)) fn();
  runView.onHash = null;
  statusLine.textContent = "";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === (parts[0] || "runs"));
  if (parts[0] === "run" && parts[1]) runView(parts[1], parts[2]);
  else if (parts[0] === "session" && parts[1]) sessionView(parts[1]);
  else if (parts[0] === "overview") overviewView();
  else if (parts[0] === "sql") sqlView(params);
  else runsView(params);
}
window.addEventListener("hashchange", route);
route();
