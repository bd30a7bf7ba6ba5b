#!/usr/bin/env python3
"""Independent reference for the growth schedule: the official ProGAN TrainingSchedule
(progressive_growing_of_gans/train.py), transcribed with plain Python floats (IEEE double, as numpy).

Usage: schedule.py job.json out.json
job.json: {"configs": [{"id", "startResolution", "finalResolution", "stableKimg", "fadeKimg",
           "minibatch": {res: n}, "minibatchBase", "learningRate": {res: lr}, "learningRateBase",
           "images": [cur_nimg, ...]}]}
out.json: {id: [{"resolution", "lod", "alpha", "phase", "minibatch", "learningRate"}, ...]}
"""
import json
import math
import sys

import numpy as np


class TrainingSchedule:
    # Official train.py, single GPU (minibatch -= minibatch % num_gpus is a no-op), G and D share
    # one learning-rate dict here.
    def __init__(self, cur_nimg, resolution_log2, lod_initial_resolution, lod_training_kimg,
                 lod_transition_kimg, minibatch_base, minibatch_dict, lrate_base, lrate_dict):
        self.kimg = cur_nimg / 1000.0
        phase_dur = lod_training_kimg + lod_transition_kimg
        phase_idx = int(np.floor(self.kimg / phase_dur)) if phase_dur > 0 else 0
        phase_kimg = self.kimg - phase_idx * phase_dur

        self.lod = resolution_log2
        self.lod -= np.floor(np.log2(lod_initial_resolution))
        self.lod -= phase_idx
        if lod_transition_kimg > 0:
            self.lod -= max(phase_kimg - lod_training_kimg, 0.0) / lod_transition_kimg
        self.lod = max(self.lod, 0.0)
        self.resolution = 2 ** (resolution_log2 - int(np.floor(self.lod)))

        self.minibatch = minibatch_dict.get(self.resolution, minibatch_base)
        self.lrate = lrate_dict.get(self.resolution, lrate_base)


def main():
    job = json.load(open(sys.argv[1]))
    out = {}
    for c in job["configs"]:
        final_log2 = int(round(math.log2(c["finalResolution"])))
        assert 2 ** final_log2 == c["finalResolution"]
        mb = {int(k): int(v) for k, v in c["minibatch"].items()}
        lr = {int(k): float(v) for k, v in c["learningRate"].items()}
        points = []
        for nimg in c["images"]:
            s = TrainingSchedule(nimg, final_log2, c["startResolution"], c["stableKimg"], c["fadeKimg"],
                                 c["minibatchBase"], mb, c["learningRateBase"], lr)
            lod = float(s.lod)
            frac = lod - math.floor(lod)
            points.append({
                "resolution": int(s.resolution),
                "lod": lod,
                # Weight of the newest block: 1 at a stable lod (integer), rising during a fade.
                "alpha": 1.0 - frac,
                "phase": "fade" if frac != 0.0 else "stable",
                "minibatch": int(s.minibatch),
                "learningRate": float(s.lrate),
            })
        out[c["id"]] = points
    json.dump(out, open(sys.argv[2], "w"))
    print(f"schedule.py: {sum(len(v) for v in out.values())} points in {len(out)} configs")


if __name__ == "__main__":
    main()
