"""Authentication and authorization of the control plane's client services, as upstream ArmoniK does them.

- `settings`: the `Authenticator__*` settings.
- `permissions`: the permission of every client RPC (`Sessions:CancelSession`, ...) and the built-in roles.
- `identity`: who is calling: a client certificate's CN and SHA-1 fingerprint, from the TLS connection or from a
  trusted proxy's headers.
- `users`: users, roles and certificates (upstream's data model and its `authentication_datafile` JSON).
- `authenticator`: identity -> user -> permission check, cached; a plain function a gRPC-Web front end reuses.
- `interceptor`: the grpc.aio interceptor that runs the check before every client RPC.
"""
