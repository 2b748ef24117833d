"""Bounds on what a client may send: id lengths, page sizes, and the data a session may store.

Read from `Submitter__*` variables beside the control plane's other settings; kept apart from
`armonik_core.config` because only the request guard and the quota read them.

- `Submitter__MaxIdLength` (default 256): ArmoniK ids are UUIDs (36 characters); partition ids are names a
  person chose. A longer id is a mistake or a probe: it is refused before it reaches the state store, the
  logs or an error message (a 20,000-character id echoed into a status message overflows gRPC's metadata).
- `Submitter__MaxPageSize` (default 1,000): the largest `page_size` a List* request may ask for; one page
  is built in memory and sent as one message.
- `Submitter__MaxSessionDataBytes` (default 0: no quota): the data one session may store through client
  uploads (`CreateResults`, `UploadResultData`).
"""

from __future__ import annotations

from dataclasses import dataclass

from armonik_core.config import ConfigurationError, Environment

DEFAULT_MAX_ID_LENGTH = 256
DEFAULT_MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class InputLimits:
    max_id_length: int = DEFAULT_MAX_ID_LENGTH
    max_page_size: int = DEFAULT_MAX_PAGE_SIZE
    #: 0: no quota.
    max_session_data_bytes: int = 0

    @staticmethod
    def from_env(env: Environment) -> InputLimits:
        limits = InputLimits(
            max_id_length=env.get_int("Submitter__MaxIdLength", DEFAULT_MAX_ID_LENGTH),
            max_page_size=env.get_int("Submitter__MaxPageSize", DEFAULT_MAX_PAGE_SIZE),
            max_session_data_bytes=env.get_int("Submitter__MaxSessionDataBytes", 0),
        )
        if limits.max_id_length < 36:
            raise ConfigurationError("Submitter__MaxIdLength must be at least 36 (the length of a UUID)")
        if limits.max_page_size <= 0:
            raise ConfigurationError("Submitter__MaxPageSize must be positive")
        if limits.max_session_data_bytes < 0:
            raise ConfigurationError("Submitter__MaxSessionDataBytes must be 0 (no quota) or positive")
        return limits
