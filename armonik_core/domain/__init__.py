"""Pure scheduling rules: no I/O, no gRPC, no storage. Everything here is unit-tested in isolation."""
