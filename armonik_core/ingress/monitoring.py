"""`/monitoring/`: the main task metrics over time, the local target's stand-in for upstream's Grafana.

The ingress samples the metrics exporter's `/metrics` every `Ingress__MetricsInterval` seconds and keeps the
last `Ingress__MetricsHistory` samples in memory (an hour at the defaults); `/monitoring/api/series` gives
them as JSON and the page draws them. The exposition is parsed with `prometheus_client`'s own parser, so
whatever the exporter writes (labels included) is read as a scraper reads it. History starts with the
ingress: it is a view for a person watching a run, not a time-series database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

log = logging.getLogger("armonik.ingress")


def parse_samples(text: str) -> dict[str, float]:
    """Sample name (with its labels, if any) -> value."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return values


class MetricsHistory:
    def __init__(self, url: str | None, interval: float, size: int) -> None:
        self.url = url
        self.interval = interval
        self.samples: deque[tuple[float, dict[str, float]]] = deque(maxlen=size)
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def sample(self, client: httpx.AsyncClient) -> None:
        assert self.url is not None
        try:
            answer = await client.get(self.url, timeout=max(self.interval, 1.0))
            answer.raise_for_status()
            self.samples.append((time.time(), parse_samples(answer.text)))
            self.last_error = None
        except (httpx.HTTPError, ValueError) as exc:
            self.last_error = f"{self.url}: {exc}"

    async def _run(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                await self.sample(client)
                await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self.url is not None and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def series(self, request: Request) -> Response:
        prefix = request.query_params.get("prefix", "armonik_")
        names = sorted({n for _, values in self.samples for n in values if n.startswith(prefix)})
        return JSONResponse(
            {
                "source": self.url,
                "error": self.last_error,
                "interval": self.interval,
                "times": [t for t, _ in self.samples],
                "series": {n: [values.get(n) for _, values in self.samples] for n in names},
            }
        )

    async def page(self, request: Request) -> Response:
        return HTMLResponse(PAGE)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ArmoniK metrics</title>
<style>body{font-family:sans-serif;margin:1em 2em} .chart{display:inline-block;margin:.5em;vertical-align:top}
svg{border:1px solid #ccc;background:#fafafa} .name{font-size:.85em} #error{color:#b00}</style></head>
<body><h1>ArmoniK metrics over time</h1>
<p>Sampled from <code id="source"></code> every <span id="interval"></span> s since the ingress started.
Filter: <input id="filter" value="tasks_" size="30"> <a href="/logs/">logs</a> <a href="/admin/">Admin GUI</a></p>
<p id="error"></p><div id="charts"></div>
<script>
const esc = s => String(s).replace(/[&<>"']/g, c => '&#' + c.charCodeAt(0) + ';');
function draw(name, times, values) {
  const w = 360, h = 120, pts = [];
  const nums = values.filter(v => v !== null), max = Math.max(1, ...nums);
  const t0 = times[0], span = Math.max(1, times[times.length - 1] - t0);
  values.forEach((v, i) => { if (v !== null) pts.push(((times[i] - t0) / span * w).toFixed(1) + ',' + (h - v / max * (h - 10)).toFixed(1)); });
  const last = nums.length ? nums[nums.length - 1] : '';
  return '<div class="chart" data-metric="' + esc(name) + '"><div class="name">' + esc(name) + ' = <b>' + last + '</b> (max ' + max + ')</div>' +
    '<svg width="' + w + '" height="' + h + '"><polyline fill="none" stroke="#1565c0" stroke-width="2" points="' + pts.join(' ') + '"/></svg></div>';
}
async function refresh() {
  const answer = await (await fetch('api/series')).json();
  document.getElementById('source').textContent = answer.source || 'no metrics exporter';
  document.getElementById('interval').textContent = answer.interval;
  document.getElementById('error').textContent = answer.error || '';
  const filter = document.getElementById('filter').value;
  document.getElementById('charts').innerHTML = Object.entries(answer.series)
    .filter(([n]) => n.includes(filter)).map(([n, v]) => draw(n, answer.times, v)).join('');
}
refresh(); setInterval(refresh, 5000);
</script></body></html>
"""
