#!/usr/bin/env python3
"""Loads a progan checkpoint with Python's safetensors (numpy backend) and prints, as JSON, every
tensor's name, shape and dtype plus the metadata keys. Usage: checkpoint_load.py <file.safetensors>"""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

path = sys.argv[1]
tensors = load_file(path)
same = True
with safe_open(path, framework="np") as f:
    metadata = f.metadata() or {}
    keys = list(f.keys())
    for k in keys:
        a = f.get_tensor(k)
        if a.dtype != tensors[k].dtype or a.shape != tensors[k].shape or not np.array_equal(a, tensors[k], equal_nan=True):
            same = False
    same = same and sorted(keys) == sorted(tensors)
# The options are JSON inside the metadata, as written.
json.loads(metadata["options"])
json.loads(metadata["scalars"])
print(json.dumps({
    "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in tensors.items()},
    "metadata": sorted(metadata.keys()),
    "sameViaSafeOpen": same,
}))
