// flow-beam canvas: plain JS + SVG, no build step. Everything it shows comes from the REST API (/api/v1).
// Text from documents is always set with textContent (never parsed as HTML).
"use strict";

const API = "/api/v1";
const KIND_COLORS = {
  source: "#cfe3ff", transform: "#e6dcff", validate: "#fff0bf", branch: "#ffdcc7", join: "#d3f3e1",
  enrich: "#ffd6e8", target: "#c6efce", archive: "#e2e8f0",
};
const NODE_W = 168, NODE_H = 66, GAP_X = 56, GAP_Y = 30, PAD = 24;

const state = {
  pipelines: [], current: null, latest: null, plan: null, runs: [], run: null, selected: null,
  issues: [], editedIr: null, proposed: null, polling: null,
};

// ---- helpers -------------------------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const svg = ["svg", "g", "rect", "text", "path", "tspan"].includes(tag);
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "onclick") node.addEventListener("click", v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function setStatus(text) { $("status").textContent = text || ""; }

async function api(method, path, body, headers) {
  const opts = { method, headers: Object.assign({}, headers || {}) };
  const token = sessionStorage.getItem("flow-beam-token");
  if (token) opts.headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) {
    opts.body = typeof body === "string" ? body : JSON.stringify(body);
    if (!opts.headers["Content-Type"]) opts.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path.startsWith("/") ? path : API + "/" + path, opts);
  if (res.status === 401 && !api.asked) {
    api.asked = true;
    const given = window.prompt("This service needs its bearer token:");
    if (given) { sessionStorage.setItem("flow-beam-token", given.trim()); api.asked = false;
      return api(method, path, body, headers); }
  }
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  return { status: res.status, ok: res.ok, data, headers: res.headers };
}

function refsOf(node) {
  if (Array.isArray(node.inputs)) return node.inputs.filter((r) => typeof r === "string");
  if (typeof node.inputs === "string") return [node.inputs];
  if (typeof node.input === "string") return [node.input];
  return [];
}

function countsText(r) {
  if (!r) return "";
  if (r.status === "loaded" || (r.rowsLoaded && r.kind === "target")) return `in ${r.rowsIn} · loaded ${r.rowsLoaded}`;
  const parts = [`in ${r.rowsIn}`, `out ${r.rowsOut}`];
  if (r.rowsQuarantined) parts.push(`q ${r.rowsQuarantined}`);
  if (r.rowsFiltered) parts.push(`f ${r.rowsFiltered}`);
  return parts.join(" · ");
}

// ---- layout: layers by longest path from the sources, ordered by the parents' positions ------------------------
function layout(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layer = new Map();
  const visiting = new Set();
  function depth(id) {
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id) || !byId.has(id)) return 0;
    visiting.add(id);
    const ups = refsOf(byId.get(id)).map((r) => r.split(".")[0]).filter((u) => byId.has(u));
    const d = ups.length ? 1 + Math.max(...ups.map(depth)) : 0;
    visiting.delete(id);
    layer.set(id, d);
    return d;
  }
  nodes.forEach((n) => depth(n.id));
  const columns = [];
  nodes.forEach((n) => { const d = layer.get(n.id); (columns[d] = columns[d] || []).push(n.id); });
  const pos = new Map();
  columns.forEach((col, x) => {
    if (x > 0) {  // barycentre of the parents keeps edges short and mostly uncrossed
      const bary = (id) => {
        const ups = refsOf(byId.get(id)).map((r) => pos.get(r.split(".")[0])).filter(Boolean);
        return ups.length ? ups.reduce((s, p) => s + p.y, 0) / ups.length : 0;
      };
      col.sort((a, b) => bary(a) - bary(b));
    }
    col.forEach((id, i) => pos.set(id, { x: PAD + x * (NODE_W + GAP_X), y: PAD + i * (NODE_H + GAP_Y) }));
  });
  const tallest = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  return { pos, width: PAD * 2 + columns.length * (NODE_W + GAP_X), height: PAD * 2 + tallest * (NODE_H + GAP_Y) + 20 };
}

// ---- graph ---------------------------------------------------------------------------------------------------
function renderGraph(ir) {
  const nodesG = $("nodes"), edgesG = $("edges");
  nodesG.replaceChildren(); edgesG.replaceChildren();
  const nodes = (ir && Array.isArray(ir.nodes) ? ir.nodes : []).filter((n) => n && typeof n.id === "string");
  $("empty").hidden = nodes.length > 0;
  if (!nodes.length) return;
  const { pos, width, height } = layout(nodes);
  const svg = $("graph");
  const scale = Math.max(0.55, Math.min(1, ($("graph-pane").clientWidth - 8) / width));  // fit the pane's width
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", Math.round(width * scale)); svg.setAttribute("height", Math.round(height * scale));
  const counts = state.run && state.run.nodes ? state.run.nodes : {};
  const issueNodes = new Set(state.issues.filter((i) => i.severity === "error" && i.nodeId).map((i) => i.nodeId));
  for (const n of nodes) {
    for (const ref of refsOf(n)) {
      const [up, port] = ref.split(".");
      const a = pos.get(up), b = pos.get(n.id);
      if (!a || !b) continue;
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mx = (x1 + x2) / 2;
      edgesG.append(el("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
        "marker-end": "url(#arrow)", "data-edge": `${up}->${n.id}` }));
      if (port) edgesG.append(el("text", { class: "edge-label", x: mx, y: (y1 + y2) / 2 - 5, "text-anchor": "middle",
        text: port }));
    }
  }
  for (const n of nodes) {
    const p = pos.get(n.id);
    const r = counts[n.id];
    const cls = ["node", state.selected === n.id ? "selected" : "", issueNodes.has(n.id) ? "has-issue" : ""];
    const g = el("g", { class: cls.join(" ").trim(), transform: `translate(${p.x},${p.y})`, "data-node-id": n.id,
      "data-kind": n.kind, onclick: () => selectNode(n.id) });
    g.append(el("rect", { width: NODE_W, height: NODE_H, fill: KIND_COLORS[n.kind] || "#eee" }));
    g.append(el("text", { class: "nid", x: 10, y: 20, text: n.id.length > 22 ? n.id.slice(0, 21) + "…" : n.id }));
    const detail = n.kind === "source" || n.kind === "target" ? (n.connector || n.schema || "") :
      n.kind === "transform" && Array.isArray(n.ops) ? n.ops.map((o) => o && o.op).join(", ") : "";
    const sub = `${n.kind}${detail ? " · " + detail : ""}`;
    g.append(el("text", { class: "kind", x: 10, y: 37, text: sub.length > 27 ? sub.slice(0, 26) + "…" : sub }));
    if (r) {
      g.append(el("text", { class: "counts" + (r.status === "failed" ? " bad" : ""), x: 10, y: 56,
        "data-counts": n.id, text: r.status === "failed" ? "failed" : countsText(r) }));
    }
    nodesG.append(g);
  }
}

function renderLegend() {
  const legend = $("legend");
  legend.replaceChildren();
  for (const [kind, color] of Object.entries(KIND_COLORS)) {
    const i = el("i"); i.style.background = color;
    legend.append(el("span", {}, i, kind));
  }
}

// ---- pipelines -----------------------------------------------------------------------------------------------
async function loadPipelines() {
  const res = await api("GET", "pipelines");
  if (!res.ok) { setStatus(res.data ? res.data.error : "cannot list pipelines"); return; }
  state.pipelines = res.data.pipelines;
  const list = $("pipelines");
  list.replaceChildren();
  if (!state.pipelines.length) list.append(el("li", { class: "muted", text: "none yet" }));
  for (const p of state.pipelines) {
    list.append(el("li", { "data-pipeline": p.id, class: state.current && state.current.id === p.id ? "active" : null,
      onclick: () => openPipeline(p.id) }, p.name || p.id, el("small", { text: `${p.id} · v${p.version}` })));
  }
}

async function openPipeline(id, version) {
  const q = version ? `?version=${version}` : "";
  const res = await api("GET", `pipelines/${encodeURIComponent(id)}${q}`);
  if (!res.ok) { setStatus(res.data ? res.data.error : "cannot load"); return; }
  state.current = res.data;
  if (!version) state.latest = res.data.version;
  state.selected = null; state.issues = []; state.editedIr = null;
  $("title").textContent = `${res.data.name} (${res.data.id})`;
  $("version").hidden = false;
  $("version").textContent = `v${res.data.version}` + (res.data.version !== state.latest ? ` of ${state.latest}` : "");
  $("version").dataset.version = res.data.version;
  $("run-btn").disabled = false;
  $("ir-text").value = JSON.stringify(res.data.ir, null, 2);
  $("ir-save").disabled = true;
  $("ir-valid").textContent = ""; $("ir-valid").className = "pill";
  $("ir-issues").replaceChildren();
  rejectPatch(false);
  $("graph").removeAttribute("data-shown");
  await Promise.all([loadVersions(id), loadPlan(id, version), loadRuns(id)]);
  renderGraph(state.current.ir);
  $("graph").dataset.shown = `${res.data.id}@${res.data.version}`;  // loaded: plan, runs and counts included
  showNode(null);
  loadPipelines();
}

async function loadVersions(id) {
  const res = await api("GET", `pipelines/${encodeURIComponent(id)}/versions`);
  const sel = $("version-select");
  sel.replaceChildren();
  if (!res.ok) return;
  for (const v of res.data.versions) {
    sel.append(el("option", { value: v.version, selected: v.version === state.current.version ? "selected" : null,
      text: `v${v.version} · ${v.createdAt.replace("T", " ").slice(0, 16)}${v.message ? " · " + v.message.slice(0, 40) : ""}` }));
  }
  sel.hidden = false;
}

async function loadPlan(id, version) {
  const q = version ? `?version=${version}` : "";
  const res = await api("POST", `pipelines/${encodeURIComponent(id)}/plan${q}`);
  state.plan = res.ok ? res.data : null;
  if (!res.ok && res.data) { state.issues = res.data.issues || []; showIssues($("ir-issues"), state.issues); }
}

// ---- runs ----------------------------------------------------------------------------------------------------
async function loadRuns(id) {
  const res = await api("GET", `pipelines/${encodeURIComponent(id)}/runs?limit=15`);
  const list = $("runs");
  list.replaceChildren();
  state.runs = res.ok ? res.data.runs : [];
  if (!state.runs.length) list.append(el("li", { class: "muted", text: "no runs yet" }));
  for (const r of state.runs) {
    list.append(el("li", { "data-run": r.runId, onclick: () => showRun(r.runId) },
      el("span", { class: "st-" + r.status, text: r.status }),
      el("small", { text: `${(r.startedAt || "").replace("T", " ").slice(0, 19)} · ${r.runId.slice(0, 8)}` })));
  }
  const last = state.runs.find((r) => !["queued", "running"].includes(r.status));
  state.run = null;
  if (last) {
    const detail = await api("GET", `runs/${last.runId}`);
    if (detail.ok) state.run = detail.data;
  }
}

async function showRun(runId) {
  const res = await api("GET", `runs/${runId}`);
  if (!res.ok) return;
  state.run = res.data;
  renderGraph(currentIr());
  const box = $("run-detail");
  box.replaceChildren();
  const r = res.data;
  box.append(el("h3", {}, "Run ", el("code", { text: r.runId.slice(0, 12) }), " ", el("span", { class: "st-" + r.status, text: r.status })));
  box.append(el("p", { class: "muted", text: `${r.runner} · started ${r.startedAt} · ${r.durationMs} ms` }));
  if (r.error) box.append(el("pre", { class: "json", text: r.error }));
  const table = el("table", { class: "schema" }, el("tr", {}, ...["node", "status", "in", "out", "quar.", "loaded"].map((h) => el("th", { text: h }))));
  for (const [id, n] of Object.entries(r.nodes || {})) {
    table.append(el("tr", {}, ...[id, n.status, n.rowsIn, n.rowsOut, n.rowsQuarantined, n.rowsLoaded].map((v) => el("td", { text: String(v) }))));
  }
  box.append(table);
  switchTab("run");
}

async function startRun() {
  if (!state.current) return;
  const res = await api("POST", `pipelines/${encodeURIComponent(state.current.id)}/run`, { wait: false });
  if (res.status !== 202) { setStatus(res.data ? res.data.error : "run refused"); return; }
  const runId = res.data.runId;
  setStatus(`run ${runId.slice(0, 8)} started`);
  clearInterval(state.polling);
  state.polling = setInterval(async () => {
    const r = await api("GET", `runs/${runId}`);
    if (!r.ok) return;
    setStatus(`run ${runId.slice(0, 8)}: ${r.data.status}`);
    if (!["queued", "running"].includes(r.data.status)) {
      clearInterval(state.polling);
      await loadRuns(state.current.id);
      await showRun(runId);
      $("graph").dataset.run = runId;
    }
  }, 1000);
}

// ---- node panel ----------------------------------------------------------------------------------------------
function currentIr() { return state.editedIr || (state.current && state.current.ir); }

function selectNode(id) { state.selected = id; renderGraph(currentIr()); showNode(id); switchTab("node"); }

function showNode(id) {
  const box = $("tab-node");
  box.replaceChildren();
  const ir = currentIr();
  const node = id && ir && ir.nodes ? ir.nodes.find((n) => n.id === id) : null;
  if (!node) { box.append(el("p", { class: "muted", text: "Click a node to see its config, Beam primitives and propagated schema." })); return; }
  box.append(el("h3", { text: `${node.id} (${node.kind})` }));
  const planned = state.plan ? state.plan.nodes.find((n) => n.id === id) : null;
  if (planned) {
    box.append(el("h3", { text: "Beam primitives" }));
    box.append(el("ul", {}, ...planned.primitives.map((p) => el("li", { text: p }))));
    box.append(el("h3", { text: "Schema (propagated)" }));
    if (planned.schema) {
      const t = el("table", { class: "schema", "data-schema": id }, el("tr", {}, el("th", { text: "column" }), el("th", { text: "type" }), el("th", { text: "nullable" })));
      for (const c of planned.schema) t.append(el("tr", {}, el("td", { text: c.name }), el("td", { text: c.type }), el("td", { text: c.nullable === false ? "no" : "yes" })));
      box.append(t);
    } else box.append(el("p", { class: "muted", text: node.kind === "target" || node.kind === "archive" ? "(writes, no output schema)" : "unknown until run time" }));
  }
  const r = state.run && state.run.nodes ? state.run.nodes[id] : null;
  if (r) { box.append(el("h3", { text: "Last run" })); box.append(el("p", { text: `${r.status}: ${countsText(r)}` })); }
  const config = Object.fromEntries(Object.entries(node).filter(([k]) => !["id", "kind"].includes(k)));
  box.append(el("h3", { text: "Config" }));
  box.append(el("pre", { class: "json", text: JSON.stringify(config, null, 2) }));
}

// ---- issues --------------------------------------------------------------------------------------------------
function showIssues(list, issues) {
  list.replaceChildren();
  for (const i of issues) {
    list.append(el("li", { class: i.severity || "error" }, el("code", { text: i.path || "/" }),
      i.nodeId ? ` (node ${i.nodeId})` : "", ` [${i.layer}] `, i.message));
  }
}

// ---- IR editor with live validation ----------------------------------------------------------------------------
let validateTimer = null;
function onIrInput() {
  clearTimeout(validateTimer);
  validateTimer = setTimeout(validateIr, 400);
}

async function validateIr() {
  const pill = $("ir-valid");
  let doc;
  try { doc = JSON.parse($("ir-text").value); } catch (e) {
    pill.textContent = "JSON syntax error"; pill.className = "pill bad";
    showIssues($("ir-issues"), [{ path: "", layer: "json", message: e.message, severity: "error" }]);
    $("ir-save").disabled = true;
    return;
  }
  const res = await api("POST", "validate", { ir: doc });
  if (!res.ok) { pill.textContent = res.data ? res.data.error : "validation failed"; pill.className = "pill bad"; return; }
  state.issues = res.data.issues;
  state.editedIr = doc;
  pill.textContent = res.data.valid ? "valid" : `${res.data.issues.filter((i) => i.severity === "error").length} error(s)`;
  pill.className = "pill " + (res.data.valid ? "ok" : "bad");
  showIssues($("ir-issues"), res.data.issues);
  $("ir-save").disabled = !res.data.valid || !state.current || state.current.version !== state.latest;
  renderGraph(doc);
}

async function saveIr() {
  const res = await api("PUT", `pipelines/${encodeURIComponent(state.current.id)}`,
    { ir: state.editedIr, message: "edited on the canvas", author: "canvas" }, { "If-Match": String(state.current.version) });
  if (!res.ok) { setStatus(res.data ? res.data.error : "save failed"); if (res.data) showIssues($("ir-issues"), res.data.issues); return; }
  setStatus(`saved version ${res.data.version}`);
  await openPipeline(state.current.id);
}

// ---- proposed JSON Patch: preview as a diff, apply or reject -------------------------------------------------------
function unescapeToken(t) { return t.replace(/~1/g, "/").replace(/~0/g, "~"); }
function parsePointer(p) {
  if (p === "") return [];
  if (typeof p !== "string" || p[0] !== "/") throw new Error(`"${p}" is not a JSON Pointer`);
  return p.slice(1).split("/").map(unescapeToken);
}
function getAt(doc, tokens) {
  let cur = doc;
  for (const t of tokens) {
    if (Array.isArray(cur) && /^\d+$/.test(t) && +t < cur.length) cur = cur[+t];
    else if (cur && typeof cur === "object" && !Array.isArray(cur) && Object.prototype.hasOwnProperty.call(cur, t)) cur = cur[t];
    else throw new Error(`nothing at /${tokens.join("/")}`);
  }
  return cur;
}
function applyPatch(doc, ops) {
  if (!Array.isArray(ops)) throw new Error("a JSON Patch is an array of operations");
  let root = JSON.parse(JSON.stringify(doc));
  ops.forEach((op, n) => {
    try {
      const tokens = parsePointer(op.path);
      const key = tokens[tokens.length - 1];
      const parent = () => getAt(root, tokens.slice(0, -1));
      const add = (value) => {
        if (!tokens.length) { root = value; return; }
        const p = parent();
        if (Array.isArray(p)) {
          const i = key === "-" ? p.length : +key;
          if (!/^(\d+|-)$/.test(key) || i > p.length) throw new Error(`index ${key} out of range`);
          p.splice(i, 0, value);
        } else if (p && typeof p === "object") p[key] = value;
        else throw new Error("the parent is not a container");
      };
      const remove = () => {
        getAt(root, tokens);
        const p = parent();
        if (Array.isArray(p)) p.splice(+key, 1); else delete p[key];
      };
      if (op.op === "add") add(JSON.parse(JSON.stringify(op.value)));
      else if (op.op === "remove") remove();
      else if (op.op === "replace") {  // in place: an object keeps its key order
        getAt(root, tokens);
        const value = JSON.parse(JSON.stringify(op.value));
        if (!tokens.length) root = value; else { const p = parent(); p[Array.isArray(p) ? +key : key] = value; }
      }
      else if (op.op === "move") { const v = getAt(root, parsePointer(op.from)); const from = parsePointer(op.from);
        const p = getAt(root, from.slice(0, -1)); const k = from[from.length - 1];
        if (Array.isArray(p)) p.splice(+k, 1); else delete p[k]; add(v); }
      else if (op.op === "copy") add(JSON.parse(JSON.stringify(getAt(root, parsePointer(op.from)))));
      else if (op.op === "test") { if (JSON.stringify(getAt(root, tokens)) !== JSON.stringify(op.value)) throw new Error("test failed"); }
      else throw new Error(`unknown op ${JSON.stringify(op.op)}`);
    } catch (e) { throw new Error(`operation ${n} (${op && op.op} ${op && op.path}): ${e.message}`); }
  });
  return root;
}

function lineDiff(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (i < n && (j >= m || lcs[i + 1][j] >= lcs[i][j + 1])) { out.push(["-", x[i]]); i++; }
    else { out.push(["+", y[j]]); j++; }
  }
  return out;
}

function renderDiff(lines) {
  const box = $("patch-diff");
  box.replaceChildren();
  const keep = new Set();
  lines.forEach(([t], k) => { if (t !== " ") for (let d = -3; d <= 3; d++) keep.add(k + d); });
  let gap = false;
  lines.forEach(([t, text], k) => {
    if (!keep.has(k)) { if (!gap) box.append(el("div", { class: "gap", text: "…" })); gap = true; return; }
    gap = false;
    box.append(el("div", { class: t === "+" ? "add" : t === "-" ? "del" : "ctx", text: `${t} ${text}` }));
  });
  if (!lines.some(([t]) => t !== " ")) box.append(el("div", { class: "ctx", text: "(no change)" }));
}

async function previewPatch() {
  if (!state.current) return;
  const issues = $("patch-issues");
  issues.replaceChildren();
  let ops;
  try { ops = JSON.parse($("patch-text").value); } catch (e) {
    showIssues(issues, [{ path: "", layer: "json", message: e.message }]); return;
  }
  let patched;
  try { patched = applyPatch(state.current.ir, ops); } catch (e) {
    showIssues(issues, [{ path: "", layer: "patch", message: e.message }]); $("patch-reject").disabled = false; return;
  }
  state.proposed = { ops, patched, base: state.current.version };
  renderDiff(lineDiff(JSON.stringify(state.current.ir, null, 2), JSON.stringify(patched, null, 2)));
  const res = await api("POST", "validate", { ir: patched });
  if (res.ok) {
    showIssues(issues, res.data.issues);
    state.issues = res.data.issues;
    renderGraph(patched);
  }
  $("patch-apply").disabled = !(res.ok && res.data.valid) || state.current.version !== state.latest;
  $("patch-reject").disabled = false;
  setStatus(res.ok && res.data.valid ? "proposed patch: valid" : "proposed patch: invalid");
}

async function applyProposed() {
  const p = state.proposed;
  if (!p) return;
  const res = await api("PATCH", `pipelines/${encodeURIComponent(state.current.id)}`, JSON.stringify(p.ops),
    { "Content-Type": "application/json-patch+json", "If-Match": String(p.base), "X-Flow-Author": "canvas" });
  if (!res.ok) {
    setStatus(res.data ? res.data.error : `patch refused (${res.status})`);
    if (res.data) showIssues($("patch-issues"), res.data.issues);
    return;
  }
  setStatus(`patch applied: version ${res.data.version}`);
  $("patch-text").value = "";
  await openPipeline(state.current.id);
}

function rejectPatch(redraw = true) {
  state.proposed = null;
  $("patch-diff").replaceChildren();
  $("patch-issues").replaceChildren();
  $("patch-apply").disabled = true;
  $("patch-reject").disabled = true;
  if (state.current && redraw) { state.issues = []; renderGraph(state.current.ir); }
}

// ---- tabs and start-up -----------------------------------------------------------------------------------------
function switchTab(name) {
  document.querySelectorAll(".tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((t) => { t.hidden = t.id !== "tab-" + name; });
}

document.querySelectorAll(".tabs button").forEach((b) => b.addEventListener("click", () => switchTab(b.dataset.tab)));
$("ir-text").addEventListener("input", onIrInput);
$("ir-save").addEventListener("click", saveIr);
$("patch-preview").addEventListener("click", previewPatch);
$("patch-apply").addEventListener("click", applyProposed);
$("patch-reject").addEventListener("click", () => { rejectPatch(); $("patch-text").value = ""; setStatus("patch rejected"); });
$("run-btn").addEventListener("click", startRun);
$("version-select").addEventListener("change", (e) => openPipeline(state.current.id, +e.target.value === state.latest ? undefined : +e.target.value));
renderLegend();
window.addEventListener("resize", () => { if (state.current) renderGraph(currentIr()); });
loadPipelines().then(() => {
  const wanted = new URLSearchParams(location.search).get("pipeline");
  if (wanted) openPipeline(wanted);
});
