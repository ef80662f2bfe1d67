#!/usr/bin/env bash
# Build the Careline image with podman and smoke-test it: `careline migrate` runs, /healthz and
# /readyz answer, the image's HEALTHCHECK passes and the server process is not root.
#
# Made for a fresh Debian bookworm machine, as root, that reaches only the package registries:
#   - no base image can be pulled, so a local one (BASE) is made with debootstrap from the
#     Debian mirror apt already uses, once, and kept;
#   - pip inside a build cannot verify TLS, so the dependencies are fetched here, outside, into
#     a wheelhouse (build/wheelhouse) and the build runs with --network none;
#   - only loopback may be a network target, so podman's default bridge (10.x addresses) is
#     never used: the smoke test runs with --network host on a free loopback port.
#
# Environment (all optional):
#   STORAGE_DRIVER  podman storage: overlay where the kernel allows it, else vfs
#   IMAGE           the tag built (default localhost/careline:dev)
#   BASE            the base image (default localhost/debian-py:bookworm, made here when
#                   missing); any Python 3.11 image in local storage works, e.g.
#                   python:3.11-slim-bookworm where it can be pulled
#   PYTHON          a Python 3.11 with pip (default .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

IMAGE=${IMAGE:-localhost/careline:dev}
BASE=${BASE:-localhost/debian-py:bookworm}
SUITE=bookworm
WHEELHOUSE=build/wheelhouse
UID_EXPECTED=10001
ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

start=$(date +%s)
stage_start=$start
stage() { # print how long the previous stage took, then name the next one
  local now
  now=$(date +%s)
  echo "== build-image: $1 (+$((now - stage_start)) s, total $((now - start)) s)"
  stage_start=$now
}

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# --- tools -------------------------------------------------------------------------------------
stage "tools"
missing=()
for pkg in podman buildah runc debootstrap catatonit; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  # Wait for the dpkg lock rather than fail when another apt-get is running.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Native overlay storage where the kernel allows it (much faster), else vfs, which works
# everywhere. A storage already set up with one driver refuses the other, so it keeps its own.
if [ -z "${STORAGE_DRIVER:-}" ]; then
  if podman --storage-driver overlay info >/dev/null 2>&1; then
    STORAGE_DRIVER=overlay
  else
    STORAGE_DRIVER=vfs
  fi
fi
PODMAN=(podman --runtime runc --storage-driver "$STORAGE_DRIVER")
echo "podman storage: $STORAGE_DRIVER"

# --- base image --------------------------------------------------------------------------------
debian_mirror() { # the Debian mirrors apt uses for $SUITE (deb822 and one-line sources)
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk -v suite="$SUITE" '
      /^[[:space:]]*$/ { if (uri != "" && ok) print uri; uri = ""; ok = 0; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok) print uri }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    # deb [options] URI SUITE COMPONENTS...: the URI stands just before the suite.
    awk -v suite="$SUITE" '$1 == "deb" { for (i = 3; i <= NF; i++) if ($i == suite) print $(i - 1) }' "$f"
  done
}

stage "base image $BASE"
if ! "${PODMAN[@]}" image exists "$BASE"; then
  mirror=$(debian_mirror | head -n 1 || true)
  if [ -z "$mirror" ]; then
    echo "no Debian mirror for $SUITE found in the apt sources" >&2
    exit 1
  fi
  rootfs=$(mktemp -d /tmp/careline-rootfs.XXXXXX)
  trap 'rm -rf --one-file-system "$rootfs"' EXIT
  echo "debootstrap $SUITE from the apt mirror into $rootfs"
  # Two stages, so dpkg can be told not to fsync each file of a throwaway tree (~1.5x faster).
  {
    debootstrap --foreign --variant=minbase --include=python3,python3-venv,ca-certificates \
      "$SUITE" "$rootfs" "$mirror" &&
      echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/careline-build" &&
      chroot "$rootfs" /debootstrap/debootstrap --second-stage &&
      rm "$rootfs/etc/dpkg/dpkg.cfg.d/careline-build"
  } >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    exit 1
  }
  rm -f "$rootfs.log"
  # What python:*-slim leaves out too: package caches, docs, man pages, translations.
  rm -rf --one-file-system "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | "${PODMAN[@]}" import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' - "$BASE" >/dev/null
  rm -rf --one-file-system "$rootfs"
  trap - EXIT
fi

# --- wheelhouse --------------------------------------------------------------------------------
stage "wheelhouse"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "$PYTHON is not Python 3.11: its wheels would not fit the image's Python" >&2
  exit 1
fi
rm -rf "$WHEELHOUSE"
# careline's own wheel plus every runtime dependency, at the lock's versions (sdists are built
# into wheels here, where a compiler and the network are available).
mkdir -p build
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WHEELHOUSE" \
  --constraint requirements.lock . >build/wheelhouse.log 2>&1 || {
  tail -n 40 build/wheelhouse.log >&2
  exit 1
}
test -n "$(ls "$WHEELHOUSE"/careline-*.whl 2>/dev/null)" || {
  echo "the wheelhouse has no careline wheel" >&2
  exit 1
}

# --- build -------------------------------------------------------------------------------------
stage "build $IMAGE"
"${PODMAN[@]}" build --quiet --pull=never --network none --format docker "${ULIMITS[@]}" \
  --build-arg BASE="$BASE" --tag "$IMAGE" --file Dockerfile . >/dev/null
"${PODMAN[@]}" image prune --force >/dev/null # an earlier build's image, now untagged

# --- smoke test --------------------------------------------------------------------------------
stage "smoke test"
name="careline-smoke-$$"
cleanup() { "${PODMAN[@]}" rm --force --ignore "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# Like Kubernetes' readOnlyRootFilesystem + emptyDir: a read-only root (podman mounts /tmp as
# tmpfs) and a writable tmpfs for the data directory.
run_opts=(--read-only "${ULIMITS[@]}"
  --tmpfs "/var/lib/careline:rw,size=64m,U")

# Without systemd podman cannot schedule the HEALTHCHECK (we run it by hand below) and says so.
without_systemd_noise() { "$@" 2> >(grep -v "unable to get systemd connection" >&2); }

without_systemd_noise "${PODMAN[@]}" run --rm --network none "${run_opts[@]}" "$IMAGE" migrate

port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
without_systemd_noise "${PODMAN[@]}" run --detach --name "$name" --network host "${run_opts[@]}" \
  -e CARELINE_HOST=127.0.0.1 -e CARELINE_PORT="$port" "$IMAGE" serve --role all >/dev/null  # SQLite: one process

"$PYTHON" - "$port" <<'PY' || { "${PODMAN[@]}" logs "$name" 2>&1 | tail -n 40 >&2; exit 1; }
import sys, time, urllib.error, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 90
while True:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
            assert answer.status == 200, answer.status
            break
    except (OSError, urllib.error.URLError):
        if time.monotonic() > deadline:
            sys.exit("/healthz did not answer within 90 s")
        time.sleep(0.5)
with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
    assert answer.status == 200, f"/readyz answered {answer.status}"
print(f"/healthz and /readyz answer on 127.0.0.1:{sys.argv[1]}")
PY

pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$name")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
if [ "$uid" = "0" ] || [ "$uid" != "$UID_EXPECTED" ]; then
  echo "the server runs as uid $uid, expected $UID_EXPECTED (not root)" >&2
  exit 1
fi
echo "the server process runs as uid $uid"
"${PODMAN[@]}" healthcheck run "$name" >/dev/null
echo "the image's HEALTHCHECK passes"

size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
stage "done"
echo "image $IMAGE: $((size / 1000000)) MB, built and smoke-tested in $(($(date +%s) - start)) s"
