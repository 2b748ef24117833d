"""Fixtures the unit tests of the deployment share: the shipped versions file, and parameters files with
storage blocks (one per storage set of `terraform_support`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from armonik_deploy.parameters import Versions, load_versions
from tests.unit.quick_deploy import QUICK_DEPLOY
from tests.unit.terraform_support import COMMON_PARAMETERS, FAST_KEYS, STORAGE_SETS


@pytest.fixture(scope="module")
def versions() -> Versions:
    return load_versions(QUICK_DEPLOY / "versions.tfvars.json")


@pytest.fixture(scope="module", params=sorted(STORAGE_SETS))
def storage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A parameters file with storage blocks (in a folder of its own)."""
    file = tmp_path_factory.mktemp("storage") / "parameters.tfvars"
    file.write_text(COMMON_PARAMETERS + FAST_KEYS + STORAGE_SETS[request.param])
    return file
