"""ArmoniK in Python: a control plane, polling agents and adapters speaking the official ArmoniK API."""

__version__ = "0.1.0"
