#!/usr/bin/env python3
"""Regenerates the tiny safetensors fixtures under Tests/ModelsTests/Fixtures/safetensors/.

They are written by the reference implementation (huggingface/safetensors, whose Python
package calls the Rust serializer), so the Swift reader is tested against real files rather
than only against our own writer. F16 and BF16 tensors are given as raw bit patterns so the
expected Float values in SafeTensorsTests.swift are exact and independent of numpy.

    python3 -m venv /tmp/stvenv && /tmp/stvenv/bin/pip install safetensors numpy
    /tmp/stvenv/bin/python scripts/make-safetensors-fixtures.py
"""
import json
import os

import numpy as np
import safetensors

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ModelsTests", "Fixtures", "safetensors")

# IEEE half: 0, -0, 1, -2, 65504 (max), 2^-14 (min normal), 2^-24 (min subnormal),
# 1023*2^-24 (max subnormal), +inf, -inf, NaN, 0.333251953125.
F16_BITS = [0x0000, 0x8000, 0x3C00, 0xC000, 0x7BFF, 0x0400, 0x0001, 0x03FF, 0x7C00, 0xFC00, 0x7E00, 0x3555]
# bfloat16: 1, -2.5, +inf, 2^-133 (min subnormal), NaN, 3.140625.
BF16_BITS = [0x3F80, 0xC020, 0x7F80, 0x0001, 0x7FC0, 0x4049]


def spec(dtype, array, shape):
    array = np.ascontiguousarray(array)
    return safetensors.TensorSpec(dtype=dtype, shape=list(shape), data_ptr=array.ctypes.data, data_len=array.nbytes), array


def save(path, tensors, metadata=None):
    """tensors: name -> (safetensors dtype string, numpy array, shape)."""
    keep = []  # the serializer reads raw pointers: keep the arrays alive
    specs = {}
    for name, (dtype, array, shape) in tensors.items():
        specs[name], a = spec(dtype, array, shape)
        keep.append(a)
    safetensors.serialize_file(specs, path, metadata)
    print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    f16 = np.array(F16_BITS, dtype="<u2")
    bf16 = np.array(BF16_BITS, dtype="<u2")
    # Cross-check the bit patterns against numpy's own half conversion.
    print("f16 as float32:", f16.view(np.float16).astype(np.float32).tolist())
    print("bf16 as float32:", (bf16.astype("<u4") << 16).view(np.float32).tolist())
    save(os.path.join(OUT, "mixed.safetensors"), {
        "f16": ("float16", f16, [2, 6]),
        "bf16": ("bfloat16", bf16, [6]),
        "f32": ("float32", np.arange(6, dtype="<f4") * 0.5 - 1, [2, 3]),
        "scalar": ("float32", np.array(42.5, dtype="<f4"), []),
        "empty": ("float32", np.zeros((0, 3), dtype="<f4"), [0, 3]),
        "ids": ("int64", np.array([1, -2, 3], dtype="<i8"), [3]),
    }, {"format": "pt", "note": "made by scripts/make-safetensors-fixtures.py"})

    # All-F32 file with one metadata key: the Rust writer then emits tensors sorted by name and a
    # deterministic header, so SafeTensorsWriter's output for the same input must match byte for byte.
    save(os.path.join(OUT, "f32-reference.safetensors"), {
        "a": ("float32", np.array([[1.5, -2], [0.25, 1e-3]], dtype="<f4"), [2, 2]),
        "b": ("float32", np.array(-7, dtype="<f4"), []),
        "c": ("float32", np.array([3, 4, 5], dtype="<f4"), [3]),
        "d": ("float32", np.zeros((2, 0), dtype="<f4"), [2, 0]),
    }, {"format": "pt"})

    # A sharded checkpoint as transformers saves it: shards plus model.safetensors.index.json.
    sharded = os.path.join(OUT, "sharded")
    os.makedirs(sharded, exist_ok=True)
    shards = {
        "model-00001-of-00002.safetensors": {
            "a.weight": ("float32", np.array([[1, 2], [3, 4]], dtype="<f4"), [2, 2]),
            "a.bias": ("float32", np.array([0.5, -0.5], dtype="<f4"), [2]),
        },
        "model-00002-of-00002.safetensors": {
            "b.weight": ("bfloat16", np.array([0x3F80, 0x4000, 0x4040], dtype="<u2"), [3]),
        },
    }
    weight_map = {}
    total = 0
    for shard, tensors in shards.items():
        save(os.path.join(sharded, shard), tensors, {"format": "pt"})
        for name, (_, array, _) in tensors.items():
            weight_map[name] = shard
            total += array.nbytes
    with open(os.path.join(sharded, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
