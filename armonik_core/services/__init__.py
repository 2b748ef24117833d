"""What the control plane's client services and the compute gateway share, below both of them.

The control plane serves the official API to clients; the compute gateway serves the polling agents. Both
work on the same backends (`backends.Backends`), move ready tasks through the same dispatcher
(`dispatch.TaskDispatcher`) and report a domain error with the same gRPC status (`errors.status_for`). These
live here so that the gateway does not import the control plane (the control plane's server only hosts the
gateway's service on its port); tests/unit/test_import_direction.py keeps it so.
"""
