"""The `podman` target: the objects the Kubernetes target renders, run on this machine with podman.

`translate` turns rendered manifests into podman pods and containers (pure, unit-tested); `run` creates,
updates, lists and removes them; `target` ties both to the parameters, certificates and outputs."""
