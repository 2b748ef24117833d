"""What the tests of the third-party charts share: a stand-in for the helm executable and the chart objects it
prints, the help helm's absence points to, and a parameters file written and loaded."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from armonik_deploy.parameters import Parameters, load_parameters

INSTALL_HELP = "https://helm.sh/docs/intro/install/"


def parameters(folder: Path, text: str) -> tuple[Parameters, Path]:
    file = folder / "parameters.tfvars"
    file.write_text(text)
    return load_parameters(file), file


#: Stand-in for the helm executable: `version`, `show chart` and `template` print what helm prints (the
#: template output is the file `template-<release>.yaml` next to it), `uninstall` succeeds silently, as helm
#: does; every call is appended to `calls` (and its HELM_DRIVER written to `driver`) and the values read on
#: stdin go to `values-<release>.json`; any other command fails as helm does without a cluster.
STAND_IN_HELM = """#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls"
echo "$HELM_DRIVER" > "$here/driver"
case "$1" in
  version) printf 'v3.16.2' ;;
  show)
    name=$3; shift 3
    while [ $# -gt 0 ]; do [ "$1" = --version ] && version=$2; shift; done
    printf 'apiVersion: v2\\nname: %s\\nversion: %s\\n' "$name" "$version" ;;
  template) cat > "$here/values-$2.json"; cat "$here/template-$2.yaml" ;;
  uninstall) ;;
  *) echo 'Error: Kubernetes cluster unreachable: the server could not be reached' >&2; exit 1 ;;
esac
"""

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def deployment(name: str, namespace: str | None = None) -> dict[str, Any]:
    labels = {"app": name}
    metadata: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name, "image": f"example/{name}:1.0"}]},
            },
        },
    }


TEST_HOOK = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "keda-test", "annotations": {"helm.sh/hook": "test"}},
    "spec": {"containers": [{"name": "t", "image": "busybox:1.36"}]},
}

CLUSTER_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "keda"},
}

AUTH_READER = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "RoleBinding",
    "metadata": {"name": "keda-operator-auth-reader", "namespace": "kube-system"},
    "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "extension-apiserver-authentication-reader",
    },
    "subjects": [{"kind": "ServiceAccount", "name": "keda-operator", "namespace": "default"}],
}


def stand_in(folder: Path, outputs: dict[str, str]) -> Path:
    """The stand-in helm in `folder`, printing `outputs[release]` for `helm template <release> ...`."""
    folder.mkdir(parents=True, exist_ok=True)
    executable = folder / "helm"
    executable.write_text(STAND_IN_HELM)
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR)
    for release, text in outputs.items():
        (folder / f"template-{release}.yaml").write_text(text)
    return executable


def as_helm_prints(*documents: Any) -> str:
    """`helm template` output: documents after `---` and `# Source:` lines, an empty one included."""
    parts = [f"---\n# Source: chart/templates/{i}.yaml\n{yaml.safe_dump(d)}" for i, d in enumerate(documents)]
    return "\n".join(parts) + "---\n"
