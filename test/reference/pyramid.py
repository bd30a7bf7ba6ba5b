#!/usr/bin/env python3
"""Independent reference for the dataset pyramid, written as the official ProGAN dataset_tool.py
(TFRecordExporter.add_image): a float32 image, each lower level the 2x2 mean of the previous float
level, every level quantised with np.rint(img).clip(0, 255).astype(np.uint8).

usage: pyramid.py <top.raw> <N> <C> <R> <out.raw>
  top.raw: N*C*R*R uint8 (NCHW). out.raw: levels R, R/2, ..., 4 back to back, each N*C*r*r uint8.
"""
import sys
import numpy as np


def main():
    src, n, c, r, dst = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    top = np.fromfile(src, dtype=np.uint8)
    assert top.size == n * c * r * r, f"{src}: {top.size} bytes, expected {n * c * r * r}"
    img = top.reshape(n, c, r, r)
    out = []
    lod = 0
    while (r >> lod) >= 4:
        if lod:
            img = img.astype(np.float32)
            img = (img[:, :, 0::2, 0::2] + img[:, :, 0::2, 1::2] + img[:, :, 1::2, 0::2] + img[:, :, 1::2, 1::2]) * 0.25
        quant = np.rint(img).clip(0, 255).astype(np.uint8)
        out.append(quant.reshape(-1))
        lod += 1
    np.concatenate(out).tofile(dst)
    ties = 0
    # Report how many exact .5 values the quantisation met (where half-to-even matters).
    img = top.reshape(n, c, r, r).astype(np.float32)
    while img.shape[-1] > 4:
        img = (img[:, :, 0::2, 0::2] + img[:, :, 0::2, 1::2] + img[:, :, 1::2, 0::2] + img[:, :, 1::2, 1::2]) * np.float32(0.25)
        ties += int(np.count_nonzero(img - np.floor(img) == 0.5))
    print(f"levels={lod} bytes={sum(o.size for o in out)} ties={ties}")


if __name__ == "__main__":
    main()
