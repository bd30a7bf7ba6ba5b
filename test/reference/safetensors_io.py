"""Minimal safetensors reader/writer (numpy only): an 8-byte LE header length, a JSON header, raw LE data."""
import json
import struct

import numpy as np

_DTYPES = {'F32': np.float32, 'F64': np.float64, 'U8': np.uint8, 'I32': np.int32, 'I64': np.int64}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}


def read(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n].decode('utf8'))
    data = raw[8 + n:]
    meta = header.pop('__metadata__', {}) or {}
    out = {}
    for name, e in header.items():
        b, s = e['data_offsets']
        dt = np.dtype(_DTYPES[e['dtype']]).newbyteorder('<')
        out[name] = np.frombuffer(data[b:s], dtype=dt).reshape(e['shape']).astype(_DTYPES[e['dtype']])
    return out, meta


def write(path, tensors, metadata=None):
    header = {'__metadata__': {k: str(v) for k, v in (metadata or {}).items()}}
    blobs, off = [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        blob = a.astype(a.dtype.newbyteorder('<'), copy=False).tobytes()
        header[name] = {'dtype': _NAMES[a.dtype], 'shape': list(a.shape), 'data_offsets': [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header).encode('utf8')
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for blob in blobs:
            f.write(blob)
