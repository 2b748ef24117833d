"""Backends of the contract suites, one module each.

A module here defines `QUEUE_BACKENDS` and/or `STORAGE_BACKENDS`: factories taking the test's temporary folder
and returning a harness (`QueueBackend`, `StorageBackend` from `tests.contract.harness`). A factory for a
backend behind a server calls `require_service` first, so a missing server skips the backend's tests on a
workstation and fails them in CI.
"""
