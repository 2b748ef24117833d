#!/usr/bin/env bash
# A Debian bookworm Python base image made without any container registry: debootstrap from the Debian mirror,
# a virtual environment with pip, setuptools and wheel upgraded from the package index, then `podman import`.
# The images' Dockerfile takes it as `--build-arg BASE_IMAGE=<this tag>` (armonik-deploy images build --base).
#
#   tools/images/build-base.sh [TAG]            default TAG: localhost/armonik-python-base:bookworm
#
# Environment:
#   DEBIAN_MIRROR   mirror debootstrap reads (default: the first URI of the host's apt sources, else Debian's)
#   CACHE_DIR       where debootstrap's tree is kept between runs (default: ~/.cache/armonik/images)
#   REBUILD=1       debootstrap and import again even where a finished tree or the image is there
#   CA_BUNDLE       CA bundle pip trusts during the build (default: the host's, from PIP_CERT/SSL_CERT_FILE);
#                   it is bind-mounted for the pip run only and never copied into the image.
#   ENGINE          podman (default) or docker
#
# An existing image of that name is kept as it is; the tree debootstrap makes is cached as a tarball, so that
# an import after the image was removed only reruns pip and the import (about a minute).
set -euo pipefail

TAG="${1:-localhost/armonik-python-base:bookworm}"
ENGINE="${ENGINE:-podman}"
CACHE_DIR="${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/armonik/images}"
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates,tini,libssl3
if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR="$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
  case "$DEBIAN_MIRROR" in *security*|"") DEBIAN_MIRROR=http://deb.debian.org/debian ;; esac
fi
CA_BUNDLE="${CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}"

command -v debootstrap >/dev/null || { echo "debootstrap is required (apt-get install debootstrap)" >&2; exit 1; }
command -v "$ENGINE" >/dev/null || { echo "$ENGINE is required" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root (run with sudo)" >&2; exit 1; }

# An image already there is kept (a new import would be a new image, and every build on it would start cold).
if [ -z "${REBUILD:-}" ] && "$ENGINE" image inspect "$TAG" >/dev/null 2>&1; then
  echo "$TAG"
  exit 0
fi

mkdir -p "$CACHE_DIR"
TARBALL="$CACHE_DIR/debootstrap-$SUITE.tar"
WORK="$(mktemp -d "$CACHE_DIR/root.XXXXXX")"
cleanup() {
  for mount in "$WORK/run/host-ca.crt" "$WORK/proc"; do mountpoint -q "$mount" 2>/dev/null && umount "$mount"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "${REBUILD:-}" ] || [ ! -s "$TARBALL" ]; then
  echo "debootstrap $SUITE from $DEBIAN_MIRROR (cached in $TARBALL)" >&2
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORK" "$DEBIAN_MIRROR" >&2
  # Package lists and downloaded archives are not needed in an image; documentation neither.
  rm -rf "$WORK"/var/cache/apt/archives/*.deb "$WORK"/var/lib/apt/lists/* "$WORK"/usr/share/doc/* \
    "$WORK"/usr/share/man/* "$WORK"/usr/share/locale/*
  tar -C "$WORK" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
else
  tar -C "$WORK" -xf "$TARBALL"
fi

# The venv is where every image installs (it is first on PATH); a Debian system Python refuses pip installs.
# resolv.conf and the CA bundle are the host's for the pip run only.
cp /etc/resolv.conf "$WORK/etc/resolv.conf"
touch "$WORK/run/host-ca.crt"
mount --bind "$CA_BUNDLE" "$WORK/run/host-ca.crt"
mount -t proc proc "$WORK/proc"
chroot "$WORK" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin PIP_CERT=/run/host-ca.crt \
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-60}" \
  /bin/sh -c 'python3 -m venv /opt/python && /opt/python/bin/pip install --quiet --upgrade pip setuptools wheel \
    && ln -sf /opt/python/bin/python /usr/local/bin/python'
umount "$WORK/proc" "$WORK/run/host-ca.crt"
rm -f "$WORK/run/host-ca.crt" "$WORK/etc/resolv.conf"
find "$WORK/opt/python" -name __pycache__ -prune -exec rm -rf {} +

tar -C "$WORK" -c . | "$ENGINE" import \
  --change "ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" \
  --change 'CMD ["python"]' \
  --message "Debian $SUITE with Python in /opt/python (debootstrap)" - "$TAG" >/dev/null
echo "$TAG"
