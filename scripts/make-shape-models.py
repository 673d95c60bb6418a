#!/usr/bin/env python3
"""Writes a random-weight model with Qwen2.5-0.5B's dimensions, for benchmarks and the duel on a
bigger shape: qwen2 architecture (q/k/v biases, NEOX RoPE, base 1e6, tied output), width 896,
24 layers, 14 query heads over 2 KV heads (head size 64), FF 4864. The vocabulary is SmolLM2's,
copied from the default model (49152 tokens instead of Qwen's 151936; the chat template is ChatML,
whose markers SmolLM2 has), so the file is about 0.4 B parameters. Weights are F16, then
llama-quantize makes Q8_0 and Q4_0 copies.

Needs numpy and llama.cpp's gguf-py (the tree `make reference` unpacks; nothing is installed).

    python3 scripts/make-shape-models.py [--out DIR] [--seed N]
"""
import argparse
import os
import subprocess
import sys

cache = os.environ.get("KVDUEL_CACHE_DIR") or os.path.expanduser("~/.cache/kvduel")
sys.path.insert(0, os.path.join(cache, "llama.cpp", "src", "gguf-py"))
import types  # noqa: E402
import numpy as np  # noqa: E402
try:
    import sentencepiece  # noqa: F401  (gguf-py's vocab module imports it; nothing here uses it)
except ImportError:
    sys.modules["sentencepiece"] = types.SimpleNamespace(SentencePieceProcessor=None)
import gguf  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--out", default=os.path.join(cache, "models"))
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--vocab-from", default=os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
args = ap.parse_args()

D, L, H, HKV, DH, F = 896, 24, 14, 2, 64, 4864
Q, KV = H * DH, HKV * DH
arch = "qwen2"
name = "qwen2.5-0.5b-shape"
os.makedirs(args.out, exist_ok=True)
f16 = os.path.join(args.out, f"{name}.f16.gguf")

rng = np.random.default_rng(args.seed)
def rand(shape, scale):
    return ((rng.random(shape, dtype=np.float32) * 2 - 1) * scale).astype(np.float32)

reader = gguf.GGUFReader(args.vocab_from)
w = gguf.GGUFWriter(f16, arch)
w.add_name(name)
w.add_block_count(L)
w.add_context_length(4096)
w.add_embedding_length(D)
w.add_feed_forward_length(F)
w.add_head_count(H)
w.add_head_count_kv(HKV)
w.add_key_length(DH)
w.add_value_length(DH)
w.add_rope_freq_base(1_000_000.0)
w.add_layer_norm_rms_eps(1e-6)
w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
V = None
for field in reader.fields.values():
    if not field.name.startswith("tokenizer.") or field.name == "tokenizer.chat_template":
        continue
    t = field.types[0]
    if t == gguf.GGUFValueType.ARRAY:
        vals = field.contents()
        if field.name == "tokenizer.ggml.tokens":
            V = len(vals)
        w.add_array(field.name, vals)
    elif t == gguf.GGUFValueType.STRING:
        w.add_string(field.name, field.contents())
    else:
        w.add_key_value(field.name, field.contents(), t)
w.add_chat_template(
    "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}{%- for message in messages %}{{- '<|im_start|>' + "
    "message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}{%- endif %}")
w.add_vocab_size(V)

# Scales as in Tests/TestSupport/ShapeModels.swift: attention scores σ ≈ 3, peaked logits.
s3 = np.sqrt(3.0)
def mat(n, rows, cols, scale):
    w.add_tensor(n, rand((rows, cols), scale).astype(np.float16))
def vec(n, size, scale, center=0.0):
    w.add_tensor(n, (center + rand((size,), scale)).astype(np.float32))
mat("token_embd.weight", V, D, 1.0)
vec("output_norm.weight", D, 0.2, 1.0)
for l in range(L):
    p = f"blk.{l}."
    vec(p + "attn_norm.weight", D, 0.2, 1.0)
    mat(p + "attn_q.weight", Q, D, 3 / np.sqrt(D))
    mat(p + "attn_k.weight", KV, D, 3 / np.sqrt(D))
    mat(p + "attn_v.weight", KV, D, s3 / np.sqrt(D))
    vec(p + "attn_q.bias", Q, 0.5)
    vec(p + "attn_k.bias", KV, 0.5)
    vec(p + "attn_v.bias", KV, 0.2)
    mat(p + "attn_output.weight", D, Q, s3 / np.sqrt(Q))
    vec(p + "ffn_norm.weight", D, 0.2, 1.0)
    mat(p + "ffn_gate.weight", F, D, s3 / np.sqrt(D))
    mat(p + "ffn_up.weight", F, D, s3 / np.sqrt(D))
    mat(p + "ffn_down.weight", D, F, 0.5 * s3 / np.sqrt(F))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {f16}")

quantize = os.path.join(cache, "llama.cpp", "bin", "llama-quantize")
for qt in ["Q8_0", "Q4_0"]:
    out = os.path.join(args.out, f"{name}.{qt}.gguf")
    subprocess.run([quantize, f16, out, qt], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"wrote {out}")
