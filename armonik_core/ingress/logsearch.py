"""`/logs/`: a search over the deployment's JSON log lines, the local target's stand-in for upstream's Seq.

Every process of the local deployment writes one JSON object per line (armonik_core.logs) to
`<generated>/logs/<process>.log`. A search reads the end of each file (at most `TAIL_BYTES`, so a search stays
quick however long the deployment has run), keeps the lines that match every criterion given, and answers the
newest first:

- `level`: the line's level (`@l`: INFO, WARNING, ERROR, ...) or any level above it;
- `process`: the process name (the file's name: `control-plane`, `default-0-polling-agent`, ...);
- `session`, `task`: an id that appears in the line (in any field: ids are long and unique enough);
- `text`: words of the message (`@m`), case-insensitive.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

TAIL_BYTES = 4 * 1024 * 1024
MAX_LIMIT = 2000


def level_number(name: str) -> int:
    value = logging.getLevelName(name.strip().upper())
    return value if isinstance(value, int) else 0


def tail_lines(path: Path, size: int = TAIL_BYTES) -> list[str]:
    with path.open("rb") as file:
        file.seek(0, 2)
        end = file.tell()
        file.seek(max(0, end - size))
        data = file.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if end > size else lines  # the first may be cut


@dataclass(frozen=True, slots=True)
class Criteria:
    level: str = ""
    process: str = ""
    session: str = ""
    task: str = ""
    text: str = ""
    limit: int = 200

    @staticmethod
    def from_query(params: dict[str, str]) -> Criteria:
        try:
            limit = int(params.get("limit", "200"))
        except ValueError:
            limit = 200
        return Criteria(
            level=params.get("level", "").strip(),
            process=params.get("process", "").strip(),
            session=params.get("session", "").strip(),
            task=params.get("task", "").strip(),
            text=params.get("text", "").strip().lower(),
            limit=min(max(limit, 1), MAX_LIMIT),
        )

    def matches(self, line: str, entry: dict[str, Any]) -> bool:
        if self.level and level_number(str(entry.get("@l", ""))) < level_number(self.level):
            return False
        if self.session and self.session not in line:
            return False
        if self.task and self.task not in line:
            return False
        return not self.text or self.text.lower() in str(entry.get("@m", "")).lower()


class LogSearch:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def processes(self) -> list[str]:
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.log"))

    def search(self, criteria: Criteria) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for process in self.processes():
            if criteria.process and criteria.process != process:
                continue
            assert self.directory is not None
            for line in tail_lines(self.directory / f"{process}.log"):
                if not line.startswith("{"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and criteria.matches(line, entry):
                    found.append({"process": process, **entry})
        found.sort(key=lambda e: str(e.get("@t", "")), reverse=True)
        return found[: criteria.limit]

    async def api(self, request: Request) -> Response:
        criteria = Criteria.from_query(dict(request.query_params))
        return JSONResponse({"processes": self.processes(), "entries": self.search(criteria)})

    async def page(self, request: Request) -> Response:
        return HTMLResponse(PAGE)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ArmoniK logs</title>
<style>body{font-family:sans-serif;margin:1em 2em} td{font-family:monospace;font-size:.85em;vertical-align:top;
padding:2px 6px} tr:nth-child(even){background:#f4f4f4} .ERROR,.CRITICAL{color:#b00} .WARNING{color:#a60}</style>
</head><body><h1>ArmoniK logs</h1>
<form id="search">
Level <select name="level"><option value="">any</option><option>DEBUG</option><option>INFO</option>
<option>WARNING</option><option>ERROR</option></select>
Process <select name="process" id="process"><option value="">any</option></select>
Session <input name="session" size="38"> Task <input name="task" size="38"> Text <input name="text">
<button>Search</button> <a href="/monitoring/">metrics</a> <a href="/admin/">Admin GUI</a></form>
<p id="count"></p><table id="entries"></table>
<script>
const esc = s => String(s).replace(/[&<>"']/g, c => '&#' + c.charCodeAt(0) + ';');
const form = document.getElementById('search');
for (const [k, v] of new URLSearchParams(location.search)) { if (form.elements[k]) form.elements[k].value = v; }
async function search(event) {
  if (event) event.preventDefault();
  const query = new URLSearchParams(new FormData(form));
  history.replaceState(null, '', '?' + query);
  const answer = await (await fetch('api/search?' + query)).json();
  const select = document.getElementById('process'), chosen = select.value || query.get('process') || '';
  select.innerHTML = '<option value="">any</option>' + answer.processes.map(p => '<option>' + esc(p) + '</option>').join('');
  select.value = chosen;
  document.getElementById('count').textContent = answer.entries.length + ' lines, newest first';
  document.getElementById('entries').innerHTML = answer.entries.map(e => {
    const rest = Object.fromEntries(Object.entries(e).filter(([k]) => !['@t', '@l', '@m', 'process'].includes(k)));
    return '<tr class="' + esc(e['@l']) + '"><td>' + esc(e['@t']) + '</td><td>' + esc(e['@l']) + '</td><td>' +
      esc(e.process) + '</td><td>' + esc(e['@m']) + '</td><td>' + esc(JSON.stringify(rest)) + '</td></tr>';
  }).join('');
}
form.addEventListener('submit', search); search();
</script></body></html>
"""
