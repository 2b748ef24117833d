// The graph console's page: sessions on the left; a session's counts, frontier and live picture on the right,
// refreshed when its graph changes; "why is this result not ready" from the blocking report.
// Data goes into the page as text nodes only; the picture is the server's own SVG (ids escaped there).
"use strict";

const state = { session: null, version: -1, timer: null };

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function table(headers, rows) {
  const t = el("table");
  const head = el("tr");
  headers.forEach((h) => head.appendChild(el("th", h)));
  t.appendChild(head);
  rows.forEach((row) => {
    const tr = el("tr");
    row.forEach((cell) => tr.appendChild(el("td", cell)));
    t.appendChild(tr);
  });
  return t;
}

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function say(text, isError) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
}

async function loadSessions() {
  try {
    const sessions = await getJson("api/sessions");
    const list = document.getElementById("sessions");
    list.replaceChildren();
    sessions.forEach((s) => {
      const item = el("li", `${s.session_id} ${s.status}`);
      item.dataset.id = s.session_id;
      if (s.session_id === state.session) item.className = "current";
      item.onclick = () => { location.hash = `#/session/${s.session_id}`; };
      list.appendChild(item);
    });
  } catch (error) {
    say(error.message, true);
  }
}

function showSummary(summary) {
  const counts = document.getElementById("counts");
  const rows = Object.entries(summary.task_statuses).map(([k, v]) => [`tasks ${k}`, v])
    .concat(Object.entries(summary.result_statuses).map(([k, v]) => [`results ${k}`, v]));
  counts.replaceChildren(table(["", "count"], rows));
  counts.dataset.nodes = summary.nodes;
  counts.dataset.tasks = summary.tasks;
  const names = [...new Set(summary.levels.flatMap((l) => Object.keys(l.statuses)))].sort();
  const levels = summary.levels.map((l) => [l.level, l.width, ...names.map((n) => l.statuses[n] || "")]);
  document.getElementById("levels").replaceChildren(table(["level", "width", ...names], levels));
  const f = summary.frontier;
  const frontier = document.getElementById("frontier");
  frontier.replaceChildren(el("p", `frontier: ${f.running.length} running, ${f.queued.length} queued, ` +
    `${f.waiting} waiting for inputs, ${f.paused} paused, ${f.failed} failed`));
  f.running.forEach((id) => frontier.appendChild(el("div", `running ${id}`, "running")));
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attributes) {
  const node = document.createElementNS(SVG_NS, tag);
  Object.entries(attributes).forEach(([k, v]) => node.setAttribute(k, String(v)));
  return node;
}

// Tasks ended per bucket as bars, mean latency as a line (scaled to its own maximum).
async function showActivity() {
  const t = await getJson(`api/sessions/${encodeURIComponent(state.session)}/throughput`);
  const box = document.getElementById("activity");
  const width = 600, height = 80, n = Math.max(t.ended.length, 1), bar = width / n;
  const most = Math.max(1, ...t.ended), slowest = Math.max(1e-9, ...t.mean_latency_seconds);
  const chart = svgEl("svg", { width, height: height + 4, class: "activity" });
  t.ended.forEach((count, i) => {
    const h = (count / most) * height;
    const rect = svgEl("rect", { x: i * bar, y: height - h, width: Math.max(bar - 1, 1), height: h, fill: "#4caf50" });
    rect.appendChild(svgEl("title", {})).textContent = `${count} ended, mean latency ${t.mean_latency_seconds[i].toFixed(3)} s`;
    chart.appendChild(rect);
  });
  const points = t.mean_latency_seconds.map((l, i) => `${i * bar + bar / 2},${height - (l / slowest) * height}`);
  if (points.length > 1) chart.appendChild(svgEl("polyline", { points: points.join(" "), fill: "none", stroke: "#e53935" }));
  const total = t.ended.reduce((a, b) => a + b, 0);
  const rate = total / Math.max(t.bucket_seconds * n, 1e-9);
  box.replaceChildren(el("p", `activity: ${total} tasks ended, ${rate.toFixed(1)}/s over the session ` +
    `(bars: ended per ${t.bucket_seconds.toFixed(2)} s; red: mean latency, at most ${slowest.toFixed(3)} s)`), chart);
  box.dataset.ended = total;
}

async function showCriticalPath(summary) {
  const box = document.getElementById("critical");
  const f = summary.frontier;
  if (!f.done || box.dataset.version === String(summary.version)) return;
  box.dataset.version = summary.version;
  const path = await getJson(`api/sessions/${encodeURIComponent(state.session)}/critical-path`);
  const rows = path.steps.map((s) => [s.task_id, s.status, s.waiting_seconds.toFixed(3),
    s.queue_seconds.toFixed(3), s.running_seconds.toFixed(3)]);
  box.replaceChildren(el("h3", "Critical path"), table(["task", "status", "waiting (s)", "queue (s)", "running (s)"], rows),
    el("p", `span ${path.span_seconds.toFixed(3)} s: waiting ${path.waiting_seconds.toFixed(3)} s, queue ` +
      `${path.queue_seconds.toFixed(3)} s, running ${path.running_seconds.toFixed(3)} s; all ${path.finished_tasks} ` +
      `finished tasks: queue ${path.total_queue_seconds.toFixed(3)} s, running ${path.total_running_seconds.toFixed(3)} s`));
  box.dataset.steps = path.steps.map((s) => s.task_id).join(" ");
}

async function refresh() {
  if (!state.session) return;
  try {
    const summary = await getJson(`api/sessions/${encodeURIComponent(state.session)}/summary`);
    showSummary(summary);
    await showCriticalPath(summary);
    if (summary.version !== state.version) {
      state.version = summary.version;
      const response = await fetch(`api/sessions/${encodeURIComponent(state.session)}/graph.svg`);
      if (response.ok) {
        const graph = document.getElementById("graph");
        graph.innerHTML = await response.text();
        graph.dataset.version = summary.version;
      }
      await showActivity();
    }
    say(`session ${state.session}: ${summary.tasks} tasks, ${summary.results} results, ${summary.version} events`);
  } catch (error) {
    say(error.message, true);
  }
}

async function why(resultId) {
  const out = document.getElementById("blocking");
  out.replaceChildren(el("p", `asking about ${resultId}…`));
  try {
    const r = await getJson(`api/results/${encodeURIComponent(resultId)}/blocking?stuck_after=30`);
    const parts = [el("p", r.ready ? `result ${r.result_id} is ready` :
      `result ${r.result_id} (${r.status}) is made by ${r.producer || "no task: the client uploads it"}`)];
    const rows = [];
    [["running", r.running], ["queued", r.queued], ["waiting", r.waiting], ["paused", r.paused]].forEach(
      ([label, tasks]) => tasks.forEach((t) => rows.push([t.task_id, label, t.status,
        t.for_seconds === null ? "" : t.for_seconds.toFixed(1), t.missing_inputs.join(", ")])));
    r.doomed_by.forEach((t) => rows.push([t.task_id, "doomed by", t.status, "", t.error || ""]));
    if (rows.length) parts.push(table(["task", "why", "status", "for (s)", "missing inputs / error"], rows));
    if (r.awaiting_upload.length) parts.push(el("p", `awaiting upload: ${r.awaiting_upload.join(", ")}`));
    if (r.stuck.length) parts.push(el("p", `stuck: ${r.stuck.map((t) => t.task_id).join(", ")}`, "error"));
    out.replaceChildren(...parts);
    out.dataset.blocking = r.blocking_tasks.join(" ");
  } catch (error) {
    out.replaceChildren(el("p", error.message, "error"));
  }
}

function route() {
  const match = location.hash.match(/^#\/session\/(.+)$/);
  state.session = match ? decodeURIComponent(match[1]) : null;
  state.version = -1;
  document.getElementById("session").hidden = !state.session;
  document.getElementById("session-id").textContent = state.session || "";
  const query = state.session ? `?session=${encodeURIComponent(state.session)}` : "";
  document.getElementById("session-tasks").href = `#/tasks${query}`;
  document.getElementById("session-results").href = `#/results${query}`;
  document.getElementById("graph").replaceChildren();
  document.getElementById("blocking").replaceChildren();
  document.getElementById("activity").replaceChildren();
  const critical = document.getElementById("critical");
  critical.replaceChildren();
  delete critical.dataset.version;
  delete critical.dataset.steps;
  loadSessions();
  refresh();
}

document.getElementById("why").addEventListener("submit", (event) => {
  event.preventDefault();
  why(document.getElementById("result-id").value.trim());
});
document.getElementById("graph").addEventListener("click", (event) => {
  const node = event.target.closest("g.result");
  if (!node) return;
  document.getElementById("result-id").value = node.dataset.id;
  why(node.dataset.id);
});
window.addEventListener("hashchange", route);
route();
state.timer = setInterval(refresh, 1000);
setInterval(loadSessions, 10000);
