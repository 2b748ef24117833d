"""The graph console: a web page showing a session's live graph and why a result is not ready.

Run it with `armonik-graph-console` (or `python -m armonik_graph.console`); see `app` for the endpoints.
"""
