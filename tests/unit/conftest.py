"""Fixtures the unit tests of the deployment share: the shipped versions file, parameters files with storage
blocks (one per storage set of `terraform_support`), and the Kubernetes objects rendered from the quick-deploy
parameters (`default`) and from their variant (`variant`, in `kubernetes_render_support`), rendered once per
module since rendering generates certificates."""

from __future__ import annotations

from pathlib import Path

import pytest

from armonik_deploy.kubernetes import Rendered, render
from armonik_deploy.parameters import Versions, load_parameters, load_versions
from tests.unit.helm_support import (
    AUTH_READER,
    CLUSTER_ROLE,
    CRD,
    TEST_HOOK,
    as_helm_prints,
    deployment,
    stand_in,
)
from tests.unit.kubernetes_render_support import VARIANT
from tests.unit.quick_deploy import QUICK_DEPLOY, VERSIONS_FILE
from tests.unit.terraform_support import COMMON_PARAMETERS, FAST_KEYS, STORAGE_SETS


@pytest.fixture(scope="module")
def versions() -> Versions:
    return load_versions(VERSIONS_FILE)


@pytest.fixture(scope="module", params=sorted(STORAGE_SETS))
def storage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A parameters file with storage blocks (in a folder of its own)."""
    file = tmp_path_factory.mktemp("storage") / "parameters.tfvars"
    file.write_text(COMMON_PARAMETERS + FAST_KEYS + STORAGE_SETS[request.param])
    return file


@pytest.fixture(scope="module")
def default(versions: Versions, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    file = QUICK_DEPLOY / "parameters.tfvars"
    return render(load_parameters(file), versions, file, certificates=tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def variant(versions: Versions, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    folder = tmp_path_factory.mktemp("variant")
    file = folder / "parameters.tfvars"
    file.write_text(VARIANT)
    return render(load_parameters(file), versions, file, certificates=folder / "certs")


@pytest.fixture(scope="module", params=["default", "variant"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """Each of the two renderings, for the checks that hold for any parameters."""
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture()
def standin(tmp_path: Path) -> Path:
    """The stand-in helm (`helm_support`), printing KEDA's and the MongoDB operator's charts."""
    return stand_in(
        tmp_path / "bin",
        {
            "keda": as_helm_prints(deployment("keda-operator"), TEST_HOOK, CLUSTER_ROLE, AUTH_READER, CRD),
            "mongodb-psmdb-operator": as_helm_prints(deployment("percona-server-mongodb-operator")),
        },
    )
