"""An int8 kiln model opens with safetensors.numpy like any safetensors file.

Usage: python3 int8_safetensors.py MODEL.safetensors
Checks dtypes (I8 weights, I32 biases, F32 scales), shapes, and that the
graph JSON in the metadata names every tensor it uses.
"""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, "np") as f:
    graph = json.loads(f.metadata()["kiln"])

dense = [l for l in graph["layers"] if l["op"] == "dense_int8"]
assert dense, "no dense_int8 layers"
for layer in dense:
    w, s, b = tensors[layer["weight"]], tensors[layer["weight_scale"]], tensors[layer["bias"]]
    assert w.dtype == np.int8, w.dtype
    assert s.dtype == np.float32 and (s > 0).all(), s.dtype
    assert b.dtype == np.int32, b.dtype
    assert w.ndim == 2 and s.shape == (w.shape[0],) and b.shape == (w.shape[0],)
    assert w.min() >= -127 and w.max() <= 127
print(f"ok: {len(dense)} int8 dense layers, {len(tensors)} tensors")
