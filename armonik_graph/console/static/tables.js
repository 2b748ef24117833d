// The console's tables (sessions, tasks, results, partitions, applications), their actions, the task detail and
// the health badge. Filtering, sorting and paging are the server's (the API's List* requests): the page only
// sends what the form says. Routes: #/<table>?filters, #/task/<id>; #/session/<id> is the graph (console.js).
// Data goes into the page as text nodes only.
"use strict";

const STATUS = {
  sessions: ["RUNNING", "CANCELLED", "PAUSED", "CLOSED", "PURGED", "DELETED"],
  tasks: ["CREATING", "SUBMITTED", "DISPATCHED", "PROCESSING", "PROCESSED", "COMPLETED", "ERROR", "TIMEOUT",
    "CANCELLING", "CANCELLED", "PAUSED", "RETRIED", "PENDING"],
  results: ["CREATED", "COMPLETED", "ABORTED", "DELETED"],
  partitions: [],
  applications: [],
};
const SORT = {
  sessions: ["created_at", "session_id", "status"],
  tasks: ["created_at", "task_id", "status", "started_at", "ended_at"],
  results: ["created_at", "result_id", "status", "name"],
  partitions: ["partition_id", "priority"],
  applications: ["name", "version", "namespace", "service"],
};
const SESSION_ACTIONS = ["cancel", "pause", "resume", "close", "purge", "delete"];
const view = { table: null, page: 0, total: 0 };

function short(status) {
  return String(status || "").replace(/^(SESSION|TASK|RESULT)_STATUS_/, "");
}

// A timestamp to the second, for the tables (the task's page shows it whole).
function when(stamp) {
  return stamp ? String(stamp).slice(0, 19).replace("T", " ") : "";
}

function link(text, href) {
  const a = el("a", text);
  a.href = href;
  return a;
}

function button(text, onclick) {
  const b = el("button", text);
  b.type = "button";
  b.dataset.action = text;
  b.onclick = onclick;
  return b;
}

function hashQuery() {
  const [, query] = location.hash.split("?");
  return new URLSearchParams(query || "");
}

function tell(text, isError) {
  const box = document.getElementById(view.table ? "action-message" : "task-message");
  box.textContent = text;
  box.className = isError ? "error" : "";
}

async function act(url, what) {
  try {
    const response = await fetch(url, { method: "POST", headers: { "x-armonik-console": "1" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    tell(`${what}: done`, false);
  } catch (error) {
    tell(`${what}: ${error.message}`, true);
  }
  if (view.table) loadTable();
  else showTask(document.getElementById("task-id").textContent);
}

const COLUMNS = {
  sessions: (r) => [link(r.session_id, `#/session/${r.session_id}`), short(r.status), when(r.created_at),
    (r.partition_ids || []).join(", "),
    [link("tasks", `#/tasks?session=${r.session_id}`), el("span", " "), link("results", `#/results?session=${r.session_id}`)],
    SESSION_ACTIONS.map((a) => button(a, () => act(`api/sessions/${encodeURIComponent(r.session_id)}/${a}`,
      `${a} session ${r.session_id}`)))],
  tasks: (r) => [link(r.id, `#/task/${r.id}`), short(r.status), r.session_id, (r.options || {}).application_name || "",
    when(r.created_at), when(r.ended_at), (r.output || {}).error || "",
    [button("cancel", () => act(`api/tasks/${encodeURIComponent(r.id)}/cancel`, `cancel task ${r.id}`))]],
  results: (r) => [r.result_id, r.name || "", short(r.status), r.session_id, r.size || "0", r.owner_task_id || "",
    when(r.created_at), [link("download", `api/results/${encodeURIComponent(r.result_id)}/data`)]],
  partitions: (r) => [r.id, r.priority || 0, r.pod_reserved || 0, r.pod_max || 0, r.preemption_percentage || 0,
    (r.parent_partition_ids || []).join(", ")],
  applications: (r) => [r.name, r.version, r.namespace || "", r.service || "",
    [link("tasks", `#/tasks?application=${encodeURIComponent(r.name)}`)]],
};
const HEADERS = {
  sessions: ["session", "status", "created", "partitions", "", "actions"],
  tasks: ["task", "status", "session", "application", "created", "ended", "error", ""],
  results: ["result", "name", "status", "session", "size", "owner task", "created", ""],
  partitions: ["partition", "priority", "reserved", "max", "preemption %", "parents"],
  applications: ["name", "version", "namespace", "service", ""],
};
const ROW_ID = { sessions: "session_id", tasks: "id", results: "result_id", partitions: "id", applications: "name" };

function options(select, values, chosen) {
  select.replaceChildren(...values.map((v) => {
    const option = el("option", v);
    option.value = v;
    option.selected = v === chosen;
    return option;
  }));
}

function fillForm(kind, q) {
  options(document.getElementById("f-status"), ["", ...STATUS[kind]], q.get("status") || "");
  options(document.getElementById("f-sort"), SORT[kind], q.get("sort") || SORT[kind][0]);
  document.getElementById("f-order").value = q.get("order") || (kind === "partitions" || kind === "applications" ? "asc" : "desc");
  document.getElementById("f-id").value = q.get("id") || "";
  document.getElementById("f-exact").checked = q.get("exact") === "1";
  document.getElementById("f-session").value = q.get("session") || "";
  document.getElementById("f-application").value = q.get("application") || "";
  document.querySelector(".f-session").hidden = !["tasks", "results"].includes(kind);
  document.querySelector(".f-application").hidden = !["tasks", "applications"].includes(kind);
  if (q.get("page_size")) document.getElementById("f-size").value = q.get("page_size");
}

function formQuery() {
  const q = new URLSearchParams();
  const set = (key, id) => { const v = document.getElementById(id).value.trim(); if (v) q.set(key, v); };
  set("status", "f-status"); set("id", "f-id"); set("session", "f-session"); set("application", "f-application");
  set("sort", "f-sort"); set("order", "f-order"); set("page_size", "f-size");
  if (document.getElementById("f-exact").checked) q.set("exact", "1");
  return q;
}

async function loadTable() {
  const kind = view.table;
  const q = formQuery();
  q.set("page", String(view.page));
  const box = document.getElementById("table");
  try {
    const answer = await getJson(`api/tables/${kind}?${q}`);
    view.total = answer.total;
    const t = table(HEADERS[kind], []);
    answer.rows.forEach((r) => {
      const tr = el("tr", null, "row");
      tr.dataset.id = r[ROW_ID[kind]];
      tr.dataset.status = short(r.status);
      COLUMNS[kind](r).forEach((cell) => {
        const td = el("td");
        if (cell instanceof Node) td.appendChild(cell);
        else if (Array.isArray(cell)) cell.forEach((c) => td.appendChild(c));
        else td.textContent = String(cell);
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    box.replaceChildren(t);
    box.dataset.total = answer.total;
    const size = Number(q.get("page_size") || 50);
    const pages = Math.max(1, Math.ceil(answer.total / size));
    document.getElementById("page-info").textContent = `page ${view.page + 1} of ${pages}, ${answer.total} in all`;
    document.getElementById("prev").disabled = view.page === 0;
    document.getElementById("next").disabled = view.page + 1 >= pages;
  } catch (error) {
    box.replaceChildren(el("p", error.message, "error"));
    delete box.dataset.total;
  }
}

function flatten(prefix, value, rows) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    Object.entries(value).forEach(([k, v]) => flatten(prefix ? `${prefix}.${k}` : k, v, rows));
  } else {
    rows.push([prefix, Array.isArray(value) ? value.join(", ") : String(value)]);
  }
  return rows;
}

async function showTask(taskId) {
  document.getElementById("task-id").textContent = taskId;
  const detail = document.getElementById("task-detail");
  try {
    const task = await getJson(`api/tasks/${encodeURIComponent(taskId)}`);
    document.getElementById("task-error").textContent = (task.output || {}).error || "";
    const first = ["status", "status_message", "session_id", "initial_task_id", "retry_of_ids", "owner_pod_id",
      "pod_hostname", "created_at", "submitted_at", "received_at", "acquired_at", "fetched_at", "started_at",
      "processed_at", "ended_at", "creation_to_end_duration", "processing_to_end_duration"];
    const rows = flatten("", task, []);
    rows.sort((a, b) => (first.indexOf(a[0]) + 1 || 99) - (first.indexOf(b[0]) + 1 || 99));
    detail.replaceChildren(table(["field", "value"], rows));
    detail.dataset.status = short(task.status);
    const retries = task.retry_of_ids || [];
    if (retries.length) {
      const p = el("p", "retry of: ");
      retries.forEach((id) => { p.appendChild(link(id, `#/task/${id}`)); p.appendChild(el("span", " ")); });
      detail.appendChild(p);
    }
  } catch (error) {
    detail.replaceChildren(el("p", error.message, "error"));
  }
}

async function showHealth() {
  const badge = document.getElementById("health");
  try {
    const health = await getJson("api/health");
    const bad = (health.services || []).filter((s) => !String(s.healthy).endsWith("HEALTHY") ||
      String(s.healthy).endsWith("UNHEALTHY"));
    badge.textContent = bad.length ? `unhealthy: ${bad.map((s) => s.name).join(", ")}` : "healthy";
    badge.className = bad.length ? "unhealthy" : "healthy";
    badge.title = (health.services || []).map((s) => `${s.name}: ${s.healthy} ${s.message || ""}`).join("\n");
  } catch (error) {
    badge.textContent = `health: ${error.message}`;
    badge.className = "unhealthy";
  }
}

function tablesRoute() {
  const path = location.hash.split("?")[0];
  const taskMatch = path.match(/^#\/task\/(.+)$/);
  const tableMatch = path.match(/^#\/(sessions|tasks|results|partitions|applications)$/);
  const kind = tableMatch ? tableMatch[1] : (path === "" || path === "#" || path === "#/" ? "sessions" : null);
  view.table = taskMatch ? null : kind;
  document.getElementById("tables").hidden = !view.table;
  // The list of sessions at the side belongs to the graph view; the tables take the whole width.
  document.querySelector("main > nav").hidden = !!(view.table || taskMatch);
  document.getElementById("task").hidden = !taskMatch;
  tell("", false);
  if (taskMatch) {
    showTask(decodeURIComponent(taskMatch[1]));
  } else if (kind) {
    view.page = 0;
    document.getElementById("table-title").textContent = kind[0].toUpperCase() + kind.slice(1);
    fillForm(kind, hashQuery());
    loadTable();
  }
}

document.getElementById("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = formQuery();
  const target = `#/${view.table}?${q}`;
  if (location.hash === target) { view.page = 0; loadTable(); } else location.hash = target;
});
document.getElementById("prev").onclick = () => { view.page = Math.max(0, view.page - 1); loadTable(); };
document.getElementById("next").onclick = () => { view.page += 1; loadTable(); };
document.getElementById("task-cancel").onclick = () => {
  const id = document.getElementById("task-id").textContent;
  act(`api/tasks/${encodeURIComponent(id)}/cancel`, `cancel task ${id}`);
};
window.addEventListener("hashchange", tablesRoute);
tablesRoute();
showHealth();
setInterval(showHealth, 15000);
