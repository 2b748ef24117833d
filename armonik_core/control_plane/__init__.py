"""The control plane: the official ArmoniK gRPC services, one module per service."""
