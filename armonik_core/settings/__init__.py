"""Settings shared by every process, below everything that reads them.

`environment` reads `Section__Key` variables; `components` names the backends a process uses. Nothing here
imports an adapter, a service or a process: those depend on the settings, never the reverse (a unit test,
tests/unit/test_import_direction.py, keeps it so).
"""
