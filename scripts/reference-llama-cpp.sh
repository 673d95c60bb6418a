#!/usr/bin/env bash
# Build llama.cpp as the reference implementation on this machine, for two uses:
#   - `kvduel bench engine` finds $KVDUEL_CACHE_DIR/llama.cpp/bin/llama-bench and measures
#     llama.cpp in the same run, with the same model and threads, to print honest ratios;
#   - scripts/reference/dump-logits.c (built here as kvduel-dump-logits) regenerates golden
#     logits such as Tests/LlamaTests/Fixtures/france-chat.*;
#   - llama-quantize makes quantised copies of synthetic models (scripts/make-shape-models.py);
#   - `kvduel bench --scenario F --llama-server PATH` starts llama-server and runs the scenario's
#     turns against it (same prompt token ids, one slot, prompt caching) beside kvduel's engines.
# The source is the llama.cpp tree vendored in the llama-cpp-python 0.3.8 sdist (llama.cpp commit
# 7841fc7, 2025-03-12), fetched from PyPI with `pip download` (never installed) and verified by
# sha256. cmake comes from the system or, if missing, from the PyPI `cmake` wheel (unzipped, not
# installed). Takes about 10 minutes on 2 cores (llama-server is the slow part). Nothing here is needed to run or test kvduel.
set -euo pipefail

SDIST_VERSION=0.3.8
SDIST_SHA256=31c91323b555c025a76a30923cead9f5695da103dd68c15cdbb4509b17f0ed77
CMAKE_WHEEL_VERSION=4.4.4
CACHE_DIR="${KVDUEL_CACHE_DIR:-$HOME/.cache/kvduel}"
DEST="$CACHE_DIR/llama.cpp"
PY="${PYTHON:-python3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
JOBS="$(nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)"

if [ -x "$DEST/bin/llama-bench" ] && [ -x "$DEST/bin/kvduel-dump-logits" ] && [ -x "$DEST/bin/llama-quantize" ] \
    && [ -x "$DEST/bin/llama-server" ]; then
    echo "llama.cpp: $DEST/bin (already built)"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "llama.cpp: downloading the llama-cpp-python==$SDIST_VERSION sdist from PyPI (not installing it)..."
"$PY" -m pip download --no-deps --quiet --disable-pip-version-check \
    --no-binary llama-cpp-python "llama-cpp-python==$SDIST_VERSION" -d "$tmp"
sdist="$tmp/llama_cpp_python-$SDIST_VERSION.tar.gz"
got="$("$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$sdist")"
if [ "$got" != "$SDIST_SHA256" ]; then
    echo "error: llama-cpp-python sdist checksum mismatch (got $got, want $SDIST_SHA256)" >&2
    exit 1
fi
mkdir -p "$DEST"
rm -rf "$DEST/src" && tar xzf "$sdist" -C "$tmp" && mv "$tmp/llama_cpp_python-$SDIST_VERSION/vendor/llama.cpp" "$DEST/src"
src="$DEST/src"
build="$DEST/build"

CMAKE="$(command -v cmake || true)"
if [ -z "$CMAKE" ]; then
    echo "llama.cpp: cmake not found; using the PyPI cmake==$CMAKE_WHEEL_VERSION wheel, unzipped (not installed)"
    "$PY" -m pip download --no-deps --quiet --disable-pip-version-check "cmake==$CMAKE_WHEEL_VERSION" -d "$tmp/wheels"
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$(ls "$tmp"/wheels/cmake-*.whl)" "$tmp/cmake"
    CMAKE="$(find "$tmp/cmake" -path '*/bin/cmake' -type f | head -1)"
    chmod +x "$CMAKE"
fi

echo "llama.cpp: building llama-bench, llama-server, llama-quantize and kvduel-dump-logits (about 10 minutes)..."
"$CMAKE" -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DGGML_METAL=OFF >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log" >&2; exit 1; }
"$CMAKE" --build "$build" -j "$JOBS" --target llama-bench llama-server llama-quantize llama >"$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log" >&2; exit 1; }
mkdir -p "$DEST/bin"
for tool in llama-bench llama-server llama-quantize; do   # via a rename: a running copy stays intact
    cp "$build/bin/$tool" "$DEST/bin/.$tool.new" && mv -f "$DEST/bin/.$tool.new" "$DEST/bin/$tool"
done
libs="$(find "$build" -name 'libllama.a' -o -name 'libggml*.a' | sort -r | tr '\n' ' ')"
openmp="$(sed -n 's/^OpenMP_C_FLAGS:STRING=//p' "$build/CMakeCache.txt")"   # ggml uses OpenMP when found
if [ "$(uname)" = Darwin ]; then   # untested: ld64 needs no group flags; ggml links Accelerate
    link="$libs -framework Accelerate"
else
    link="-Wl,--start-group $libs -Wl,--end-group"
fi
c++ -O2 -x c "$HERE/reference/dump-logits.c" -x none -I"$src/include" -I"$src/ggml/include" \
    $link $openmp -lpthread -lm -o "$DEST/bin/.kvduel-dump-logits.new"
mv -f "$DEST/bin/.kvduel-dump-logits.new" "$DEST/bin/kvduel-dump-logits"
echo "llama.cpp: $DEST/bin (llama-bench, llama-server, llama-quantize, kvduel-dump-logits; commit 7841fc7)"
