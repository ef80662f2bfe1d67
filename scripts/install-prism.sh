#!/usr/bin/env bash
# Installs Stoplight Prism (the OpenAPI mock server the contract tests run) into
# <repo>/.cache/prism. Pinned so every machine mocks the specs the same way; no lock file is
# written because npm records registry hosts in it.
set -euo pipefail

PRISM_VERSION="${PRISM_VERSION:-5.16.0}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${repo_root}/.cache/prism"
bin="${prefix}/node_modules/.bin/prism"

if [[ -x "${bin}" ]] && "${bin}" --version 2>/dev/null | grep -qx "${PRISM_VERSION}"; then
    echo "prism ${PRISM_VERSION} already installed at ${bin}"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "npm is missing: install Node.js (e.g. apt-get install -y nodejs npm) and retry" >&2
    exit 1
fi

mkdir -p "${prefix}"
npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    --prefix "${prefix}" "@stoplight/prism-cli@${PRISM_VERSION}"
echo "prism $("${bin}" --version) installed at ${bin}"
