#!/usr/bin/env bash
# Regenerates Tests/LlamaTests/Fixtures/shapes/: llama.cpp's final logits on the random-weight
# shape models of Tests/TestSupport/ShapeModels.swift (see the README there).
#   1. the Swift test writes the models (it then fails on the stale or missing fixture; that is expected):
#        KVDUEL_SHAPES_DIR=/tmp/shapes swift test -c release --skip-build --scratch-path .build-tests --filter ShapeTests/testShapesMatchLlamaCpp
#   2. bash scripts/make-shape-fixtures.sh /tmp/shapes
# Needs `make reference` (kvduel-dump-logits).
set -euo pipefail
SHAPES="${1:?usage: make-shape-fixtures.sh DIR_WITH_shape-*.gguf}"
CACHE_DIR="${KVDUEL_CACHE_DIR:-$HOME/.cache/kvduel}"
DUMP="$CACHE_DIR/llama.cpp/bin/kvduel-dump-logits"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$HERE/Tests/LlamaTests/Fixtures/shapes"
[ -x "$DUMP" ] || { echo "error: $DUMP not found; run make reference" >&2; exit 1; }
mkdir -p "$OUT"
for s in llama3 qwen2 mqa; do
    "$DUMP" "$SHAPES/shape-$s.gguf" "$OUT/prompt.txt" "$OUT/$s.final_logits.f32" 8 > "$SHAPES/$s.json" 2> "$SHAPES/$s.log" \
        || { tail -20 "$SHAPES/$s.log" >&2; exit 1; }
done
python3 - "$SHAPES" "$OUT" <<'PY'
import hashlib, json, os, sys
shapes, out = sys.argv[1], sys.argv[2]
result = {}
for s in ["llama3", "qwen2", "mqa"]:
    path = os.path.join(shapes, f"shape-{s}.gguf")
    data = open(path, "rb").read()
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    dump = json.load(open(os.path.join(shapes, f"{s}.json")))
    result[s] = {"prompt_ids": dump["prompt_ids"], "greedy_8_ids": dump["greedy"],
                 "gguf_bytes": len(data), "gguf_fnv1a64": format(h, "x"),
                 "gguf_sha256": hashlib.sha256(data).hexdigest()}
json.dump(result, open(os.path.join(out, "shapes.json"), "w"), indent=1)
print(json.dumps({k: {kk: v[kk] for kk in ("gguf_bytes", "gguf_sha256")} for k, v in result.items()}, indent=1))
PY
