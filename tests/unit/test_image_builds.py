"""`armonik-deploy images build`: the build commands made from versions.tfvars.json, and the podman settings.

The builds themselves run in tests/podman (they need podman and minutes); here, what is asked of the engine."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from armonik_deploy.images import build, engine
from armonik_deploy.parameters import load_versions

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "infrastructure" / "quick-deploy" / "localhost" / "versions.tfvars.json"


def test_the_six_images_are_named_and_tagged_as_the_versions_file_says() -> None:
    images = build.images_of(load_versions(VERSIONS))
    assert [i.target for i in images] == list(build.TARGETS)
    assert {i.reference for i in images} == {f"localhost/{name}:0.1.0" for name in build.TARGETS.values()}
    assert build.stand_ins(images) == {"nginxinc/nginx-unprivileged": "localhost/armonik-ingress-nginx:0.1.0"}
    assert build.stand_ins(images[:1]) == {}


def test_a_versions_file_without_an_image_is_refused(tmp_path: Path) -> None:
    text = VERSIONS.read_text().replace('"armonik-pymonik-worker"', '"something-else"')
    (tmp_path / "v.json").write_text(text)
    with pytest.raises(engine.EngineError, match="armonik-pymonik-worker"):
        build.images_of(load_versions(tmp_path / "v.json"))


def test_build_arguments_carry_base_labels_and_the_ca_bundle_as_a_secret(tmp_path: Path) -> None:
    image = build.Image("samples-worker", "armonik-samples-worker", "1.2.3")
    ca = tmp_path / "ca.crt"
    args = build.build_args(image, "localhost/base:1", ca, "abc")
    assert args[0] == "build" and args[-1] == str(ROOT)
    pairs = dict(zip(args[1:-1:2], args[2:-1:2], strict=False))
    assert pairs["--target"] == "samples-worker"
    assert pairs["--tag"] == "localhost/armonik-samples-worker:1.2.3"
    assert pairs["--secret"] == f"id=ca_bundle,src={ca}"
    build_args = [args[i + 1] for i, a in enumerate(args) if a == "--build-arg"]
    assert {"BASE_IMAGE=localhost/base:1", "VERSION=1.2.3", "REVISION=abc"} <= set(build_args)
    assert "BASE_IMAGE" not in " ".join(build.build_args(image, None, None, "abc"))


def test_the_wheel_stage_is_built_first_then_each_image() -> None:
    calls: list[tuple[str, ...]] = []

    class Recorder(engine.Engine):
        def run(self, *args: str, check: bool = True, timeout: float | None = None) -> str:
            calls.append(args)
            return "123" if args[:2] == ("image", "inspect") else ""

    images = build.images_of(load_versions(VERSIONS))[:2]
    built = build.build(Recorder("podman"), images, base="localhost/b:1")
    targets = [c[c.index("--target") + 1] for c in calls if c[0] == "build"]
    assert targets == ["wheels", "control-plane", "polling-agent"]
    assert [b.size for b in built] == [123, 123]
    assert build.build(Recorder("podman"), []) == []


def test_podman_gets_runc_and_rlimits_the_host_can_grant() -> None:
    text = engine.containers_conf("runc")
    assert 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' in text
    assert 'runtime = "runc"' in text
    assert "runtime" not in engine.containers_conf(None)


def test_samples_worker_exits_on_sigterm(tmp_path: Path) -> None:
    """As a container's PID 1 nothing else would stop it: its own handler must (here as a plain process)."""
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "armonik_samples.worker",
            "--worker-endpoint",
            f"unix://{tmp_path}/w.sock",
            "--agent-endpoint",
            f"unix://{tmp_path}/a.sock",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "w.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "w.sock").exists(), "the worker did not start"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=5) == 0, "SIGTERM killed it (-15) instead of its handler ending it (0)"
    finally:
        worker.kill()
        worker.wait()
