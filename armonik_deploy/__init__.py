"""Deployment toolkit: brings ArmoniK up on this machine (local target) or on Kubernetes."""
