"""Independent plain-PyTorch reference of the official ProGAN G and D (tkarras/progressive_growing_of_gans,
networks.py, TF), used by test/networks.test.ts. Written from PAPER.md / the official semantics, not from
our C++: weights by name, NCHW, equalized LR applied at run time, official lerp, reshape-based
upscale/downscale and the official minibatch-stddev reshape.

usage: python3 networks.py job.json   (job: {"cases": [...], "outDir": "..."}; see run_case below)
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def nf(cfg, stage):
    return min(int(math.floor(cfg['fmapBase'] / (2.0 ** (stage * cfg.get('fmapDecay', 1.0))))), cfg['fmapMax'])


def log2(r):
    return int(round(math.log2(r)))


# ---- official building blocks -------------------------------------------------------------------

def wscale(shape_in_fan, gain):
    return gain / math.sqrt(shape_in_fan)


def dense(x, w, gain):
    # official: reshape to [N, prod], fan_in = in features, matmul with w * wscale
    x = x.reshape(x.shape[0], -1)
    return torch.matmul(x, (w * wscale(w.shape[1], gain)).t())


def conv2d(x, w, gain):
    # official: kernel [k, k, in, out], fan_in = k*k*in; SAME padding
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    return torch.nn.functional.conv2d(x, w * wscale(fan_in, gain), padding=w.shape[2] // 2)


def conv2d_downscale2d(x, w, gain):
    # official: kernel padded to 4x4, the four shifted copies summed x 0.25, stride-2 SAME conv
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    w = torch.nn.functional.pad(w * wscale(fan_in, gain), (1, 1, 1, 1))
    w = (w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]) * 0.25
    return torch.nn.functional.conv2d(x, w, stride=2, padding=1)


def apply_bias(x, b):
    if x.dim() == 2:
        return x + b.reshape(1, -1)
    return x + b.reshape(1, -1, 1, 1)


def act(x):
    return torch.where(x >= 0, x, x * 0.2)  # official leaky_relu: tf.maximum(x * alpha, x)


def pixel_norm(x, eps):
    return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + eps)


def upscale2d(x, factor=2):
    s = x.shape
    x = x.reshape(s[0], s[1], s[2], 1, s[3], 1).expand(-1, -1, -1, factor, -1, factor)
    return x.reshape(s[0], s[1], s[2] * factor, s[3] * factor)


def downscale2d(x, factor=2):
    s = x.shape
    return x.reshape(s[0], s[1], s[2] // factor, factor, s[3] // factor, factor).mean(dim=(3, 5))


def lerp(a, b, t):
    return a + (b - a) * t


def minibatch_stddev(x, group_size):
    g = min(group_size, x.shape[0])
    s = x.shape
    y = x.reshape(g, -1, s[1], s[2], s[3])                       # sample i -> group i mod N/G
    y = y.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    y = y - y.mean(dim=0, keepdim=True)
    y = (y * y).mean(dim=0)
    y = torch.sqrt(y + 1e-8)
    y = y.mean(dim=(1, 2, 3), keepdim=True).to(x.dtype)         # [M, 1, 1, 1]
    y = y.repeat(g, 1, s[2], s[3])                               # tile, as tf.tile
    return torch.cat([x, y], dim=1)


# ---- G and D -----------------------------------------------------------------------------------

SQRT2 = math.sqrt(2.0)


def G(P, cfg, latents, labels, res, alpha):
    eps = cfg.get('pixelNormEpsilon', 1e-8)
    x = latents if labels is None else torch.cat([latents, labels], dim=1)
    if cfg.get('normalizeLatents', True):
        x = pixel_norm(x, eps)
    top = log2(res)

    def block(x, r):
        R = 2 ** r
        if r == 2:
            x = dense(x, P['b4x4_dense.weight'], SQRT2 / 4)
            x = x.reshape(-1, nf(cfg, 1), 4, 4)
            x = pixel_norm(act(apply_bias(x, P['b4x4_dense.bias'])), eps)
            x = pixel_norm(act(apply_bias(conv2d(x, P['b4x4_conv.weight'], SQRT2), P['b4x4_conv.bias'])), eps)
            return x
        x = upscale2d(x)
        x = pixel_norm(act(apply_bias(conv2d(x, P[f'b{R}x{R}_conv0_up.weight'], SQRT2), P[f'b{R}x{R}_conv0_up.bias'])), eps)
        x = pixel_norm(act(apply_bias(conv2d(x, P[f'b{R}x{R}_conv1.weight'], SQRT2), P[f'b{R}x{R}_conv1.bias'])), eps)
        return x

    def torgb(x, r):
        R = 2 ** r
        return apply_bias(conv2d(x, P[f'torgb_{R}x{R}.weight'], 1.0), P[f'torgb_{R}x{R}.bias'])

    # official "linear" structure, evaluated at lod_in = (top_res - res) + (1 - alpha)
    x = block(x, 2)
    img = torgb(x, 2)
    for r in range(3, top + 1):
        x = block(x, r)
        new = torgb(x, r)
        img = upscale2d(img)
        t = alpha if r == top else 1.0
        img = new if t == 1.0 else lerp(img, new, t)
    if cfg.get('outputActivation', 'linear') == 'tanh':
        img = torch.tanh(img)
    return img


def D(P, cfg, images, res, alpha):
    top = log2(res)
    group = cfg.get('minibatchStddevGroup', 4)

    def fromrgb(x, r):
        R = 2 ** r
        return act(apply_bias(conv2d(x, P[f'fromrgb_{R}x{R}.weight'], SQRT2), P[f'fromrgb_{R}x{R}.bias']))

    def block(x, r):
        R = 2 ** r
        if r >= 3:
            # official D_paper default (fused_scale=True): Conv0, then Conv1_down = conv2d_downscale2d,
            # i.e. the pool comes before bias and activation.
            x = act(apply_bias(conv2d(x, P[f'b{R}x{R}_conv0.weight'], SQRT2), P[f'b{R}x{R}_conv0.bias']))
            x = act(apply_bias(conv2d_downscale2d(x, P[f'b{R}x{R}_conv1_down.weight'], SQRT2), P[f'b{R}x{R}_conv1_down.bias']))
            return x
        if group > 1:
            x = minibatch_stddev(x, group)
        x = act(apply_bias(conv2d(x, P['b4x4_conv.weight'], SQRT2), P['b4x4_conv.bias']))
        x = act(apply_bias(dense(x, P['b4x4_dense0.weight'], SQRT2), P['b4x4_dense0.bias']))
        x = apply_bias(dense(x, P['b4x4_dense1.weight'], 1.0), P['b4x4_dense1.bias'])
        return x

    # official "linear" structure: start at the top, fade the old fromRGB in on the downscaled image
    x = block(fromrgb(images, top), top) if top > 2 else fromrgb(images, top)
    if top > 2:
        if alpha < 1.0:
            x = lerp(fromrgb(downscale2d(images), top - 1), x, alpha)
        for r in range(top - 1, 1, -1):
            x = block(x, r)
    else:
        x = block(x, 2)
    return x


# ---- init (independent of ours): N(0, 1) weights, zero biases -----------------------------------

def param_shapes(cfg, which):
    C, top = cfg.get('channels', 3), log2(cfg['resolution'])
    out = {}
    if which == 'generator':
        out['b4x4_dense.weight'] = [nf(cfg, 1) * 16, cfg['latentSize'] + cfg.get('labelSize', 0)]
        out['b4x4_dense.bias'] = [nf(cfg, 1)]
        out['b4x4_conv.weight'] = [nf(cfg, 1), nf(cfg, 1), 3, 3]
        out['b4x4_conv.bias'] = [nf(cfg, 1)]
        for r in range(3, top + 1):
            R = 2 ** r
            out[f'b{R}x{R}_conv0_up.weight'] = [nf(cfg, r - 1), nf(cfg, r - 2), 3, 3]
            out[f'b{R}x{R}_conv0_up.bias'] = [nf(cfg, r - 1)]
            out[f'b{R}x{R}_conv1.weight'] = [nf(cfg, r - 1), nf(cfg, r - 1), 3, 3]
            out[f'b{R}x{R}_conv1.bias'] = [nf(cfg, r - 1)]
        for r in range(2, top + 1):
            R = 2 ** r
            out[f'torgb_{R}x{R}.weight'] = [C, nf(cfg, r - 1), 1, 1]
            out[f'torgb_{R}x{R}.bias'] = [C]
    else:
        for r in range(2, top + 1):
            R = 2 ** r
            out[f'fromrgb_{R}x{R}.weight'] = [nf(cfg, r - 1), C, 1, 1]
            out[f'fromrgb_{R}x{R}.bias'] = [nf(cfg, r - 1)]
        for r in range(top, 2, -1):
            R = 2 ** r
            out[f'b{R}x{R}_conv0.weight'] = [nf(cfg, r - 1), nf(cfg, r - 1), 3, 3]
            out[f'b{R}x{R}_conv0.bias'] = [nf(cfg, r - 1)]
            out[f'b{R}x{R}_conv1_down.weight'] = [nf(cfg, r - 2), nf(cfg, r - 1), 3, 3]
            out[f'b{R}x{R}_conv1_down.bias'] = [nf(cfg, r - 2)]
        extra = 1 if cfg.get('minibatchStddevGroup', 4) > 1 else 0
        out['b4x4_conv.weight'] = [nf(cfg, 1), nf(cfg, 1) + extra, 3, 3]
        out['b4x4_conv.bias'] = [nf(cfg, 1)]
        out['b4x4_dense0.weight'] = [nf(cfg, 0), nf(cfg, 1) * 16]
        out['b4x4_dense0.bias'] = [nf(cfg, 0)]
        out['b4x4_dense1.weight'] = [1 + cfg.get('labelSize', 0), nf(cfg, 0)]
        out['b4x4_dense1.bias'] = [1 + cfg.get('labelSize', 0)]
    return out


def init_params(cfg, which, gen):
    return {k: (torch.randn(s, generator=gen) if k.endswith('.weight') else torch.zeros(s))
            for k, s in param_shapes(cfg, which).items()}


# ---- job runner --------------------------------------------------------------------------------

def load_params(path, which_shapes=None):
    arrays, _ = safetensors_io.read(path)
    return {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}


class NearKinks:
    """Records the leaky-ReLU inputs within 1e-6·max|x| of the kink (per call) while active: float32
    rounding (summation order) may put such an element on the other side, a jump in the gradient of up
    to (1 − 0.2)·its share that no elementwise tolerance describes. `flip` names sites (call, flat
    index) that take the other side's slope, as a float32 result that rounded across the kink does."""

    def __init__(self, flip=()):
        self.flip = list(flip)

    def __enter__(self):
        global act
        self.sites, self.orig, calls = [], act, [0]

        def recording(x):
            call = calls[0]
            calls[0] += 1
            a = x.detach().abs()
            self.sites += [(call, i) for i in (a < 1e-6 * a.max()).flatten().nonzero().flatten().tolist()]
            y = self.orig(x)
            mine = [i for c, i in self.flip if c == call]
            if not mine:
                return y
            flipped = torch.zeros(x.numel(), dtype=torch.bool)
            flipped[mine] = True
            return torch.where(flipped.reshape(x.shape), torch.where(x >= 0, x * 0.2, x), y)

        act = recording
        return self

    @property
    def count(self):
        return len(self.sites)

    def __exit__(self, *exc):
        global act
        act = self.orig


# Near-kink sites up to which the float64 truth is also computed with every non-empty subset of them
# flipped (2^n − 1 variants): ours must then match the truth, or one of those.
MAX_FLIPPED_SITES = 4


def truth_with_flips(fn, P, x, gout, prefix, result, flips):
    """The float64 truth under `prefix` and its near-kink count; with `flips`, also the flipped
    variants under prefix + 'k{j}.' (j = 1 … 2^n − 1, bit i of j flipping site i)."""
    with NearKinks() as kinks:
        out = fwd_bwd(fn, P, x, gout)
    for k, v in out.items():
        result[f'{prefix}.{k}'] = v
    result[f'{prefix}.nearKinks'] = torch.tensor([float(kinks.count)], dtype=torch.float64)
    variants = 2 ** kinks.count - 1 if flips and kinks.count <= MAX_FLIPPED_SITES else 0
    result[f'{prefix}.kinkVariants'] = torch.tensor([float(variants)], dtype=torch.float64)
    for j in range(1, variants + 1):
        with NearKinks([site for i, site in enumerate(kinks.sites) if j >> i & 1]):
            for k, v in fwd_bwd(fn, P, x, gout).items():
                result[f'{prefix}k{j}.{k}'] = v


def fwd_bwd(fn, P, x, gout):
    P = {k: v.clone().requires_grad_(True) for k, v in P.items()}
    x = x.clone().requires_grad_(True)
    y = fn(P, x)
    out = {'output': y.detach()}
    if gout is not None:
        grads = torch.autograd.grad(y, [x] + list(P.values()), gout, allow_unused=True)
        out['inputGrad'] = grads[0]
        for (k, v), g in zip(P.items(), grads[1:]):
            out['grad.' + k] = torch.zeros_like(v) if g is None else g
    return out


def run_parity(case):
    cfg = case['config']
    gP = load_params(case['generatorWeights'])
    dP = load_params(case['discriminatorWeights'])
    inp, _ = safetensors_io.read(case['inputs'])
    t = {k: torch.from_numpy(np.array(v)) for k, v in inp.items()}
    res, alpha = case['resolution'], case['alpha']
    labels = t.get('labels')
    result = {}
    g = fwd_bwd(lambda P, z: G(P, cfg, z, labels, res, alpha), gP, t['latents'], t['gradG'])
    d = fwd_bwd(lambda P, im: D(P, cfg, im, res, alpha), dP, t['images'], t['gradD'])
    for k, v in g.items():
        result['g.' + k] = v
    for k, v in d.items():
        result['d.' + k] = v
    if case.get('float64Truth') and t['latents'].dtype == torch.float32:
        # The same float32 weights and inputs, computed in float64: how far float32 itself is from exact.
        up = lambda m: {k: v.double() for k, v in m.items()}
        t64 = up(t)
        lab64 = t64.get('labels')
        truth_with_flips(lambda P, z: G(P, cfg, z, lab64, res, alpha), up(gP), t64['latents'], t64['gradG'], 'g64', result, 'G' in case.get('kinkVariants', ''))
        truth_with_flips(lambda P, im: D(P, cfg, im, res, alpha), up(dP), t64['images'], t64['gradD'], 'd64', result, 'D' in case.get('kinkVariants', ''))
    return result


def run_stats(case):
    """Std of G's output over the given latents and of D's output over the given images, with the given
    (init) weights, at each resolution; then the same with the reference's own independent inits."""
    cfg = case['config']
    result = {}
    gP = load_params(case['generatorWeights'])
    dP = load_params(case['discriminatorWeights'])
    inp, _ = safetensors_io.read(case['inputs'])
    t = {k: torch.from_numpy(np.array(v)) for k, v in inp.items()}
    with torch.no_grad():
        for res in case['resolutions']:
            result[f'same.gstd.{res}'] = G(gP, cfg, t['latents'], None, res, 1.0).std().reshape(1).double()
            result[f'same.dstd.{res}'] = D(dP, cfg, t[f'images{res}'], res, 1.0).std().reshape(1).double()
        n = t['latents'].shape[0]
        for res in case.get('ownResolutions', case['resolutions']):
            gs, ds = [], []
            for seed in case['seeds']:
                gen = torch.Generator().manual_seed(seed)
                gI, dI = init_params(cfg, 'generator', gen), init_params(cfg, 'discriminator', gen)
                z = torch.randn(n, cfg['latentSize'], generator=gen)
                gs.append(G(gI, cfg, z, None, res, 1.0).std().item())
                x = torch.randn(n, cfg.get('channels', 3), res, res, generator=gen)
                ds.append(D(dI, cfg, x, res, 1.0).std().item())
            result[f'own.gstd.{res}'] = torch.tensor(gs, dtype=torch.float64)
            result[f'own.dstd.{res}'] = torch.tensor(ds, dtype=torch.float64)
    return result


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    for case in job['cases']:
        result = run_parity(case) if case['kind'] == 'parity' else run_stats(case)
        safetensors_io.write(os.path.join(job['outDir'], case['id'] + '.safetensors'),
                             {k: v.detach().contiguous().numpy() for k, v in result.items()})
    print(json.dumps({'done': len(job['cases'])}))


if __name__ == '__main__':
    main()
