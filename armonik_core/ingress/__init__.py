"""The ingress: what a browser reaches of a deployment, on one HTTP port (`ingress.http_port`, 5000).

It plays the part of upstream's nginx ingress in front of Core: gRPC-Web for the client services, forwarded
to the control plane's gRPC port without decoding (so the control plane's authentication, authorization and
input checks apply to it as to any gRPC client); the Admin GUI's files and its `/static/` configuration; the
project's console (`armonik_graph.console`, at `/console/`); and, on the local target, the views that stand in
for Grafana (metrics over time) and Seq (a search over the JSON logs). The web stack is Starlette on uvicorn,
the one the metrics exporter uses too. Run it with `python -m armonik_core.ingress` (console script `armonik-ingress`).
"""
