"""Independent plain-PyTorch reference of one ProGAN training step (official loss.py / train.py semantics,
PAPER.md), used by test/train-step.test.ts. G and D are test/reference/networks.py's (written from the
official networks.py, not from our C++); the loss, the real fade, the gradient penalty, Adam
(torch.optim.Adam, betas (0, 0.99), eps 1e-8, foreach), its reset on a change of floor/ceil(lod) and the
EMA are written here from the official code.

Besides the native-resolution step it evaluates the official code's *full-resolution* path: reals faded
at r and nearest-upscaled to the final resolution (official process_reals), fakes from the official
'linear' G structure at lod_in (upscaled inside G), and D's official 'linear' structure (lerp_clip, box
downscale) on full-resolution images; the gradient penalty takes the gradient w.r.t. the full-resolution
mixed images. A second, simpler variant nearest-upscales the native mixed images and lets D average-pool
them back before fromRGB.

usage: python3 train_step.py job.json   (job: {"cases": [...], "outDir": "..."}; kinds 'step' and 'run')
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import networks as N  # noqa: E402
import safetensors_io  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

DTYPES = {'float32': torch.float32, 'float64': torch.float64}


def load(path, dtype):
    arrays, _ = safetensors_io.read(path)
    return {k: torch.from_numpy(np.array(v)).to(dtype) for k, v in arrays.items()}


def lod_of(final, res, alpha):
    return math.log2(final) - math.log2(res) + 1.0 - alpha


# ---- official semantics --------------------------------------------------------------------------

def fade_reals(x, alpha):
    """official process_reals FadeLOD at the dataset level r: lerp(x, up(box_down(x)), lod - floor(lod))."""
    if alpha >= 1.0 or x.shape[-1] <= 4:
        return x
    y = N.upscale2d(N.downscale2d(x))
    return N.lerp(x, y, 1.0 - alpha)


def upscale_lod(x, k):
    """official process_reals UpscaleLOD: nearest ×k (k = 2^floor(lod))."""
    return x if k == 1 else N.upscale2d(x, k)


def lerp_clip(a, b, t):
    return a + (b - a) * min(max(t, 0.0), 1.0)


def G_official_full(P, cfg, latents, lod_in):
    """The official 'linear' G structure evaluated at lod_in: always outputs the final resolution."""
    eps = cfg.get('pixelNormEpsilon', 1e-8)
    top = N.log2(cfg['resolution'])
    x = N.pixel_norm(latents, eps) if cfg.get('normalizeLatents', True) else latents

    def block(x, r):
        R = 2 ** r
        if r == 2:
            x = N.dense(x, P['b4x4_dense.weight'], N.SQRT2 / 4).reshape(-1, N.nf(cfg, 1), 4, 4)
            x = N.pixel_norm(N.act(N.apply_bias(x, P['b4x4_dense.bias'])), eps)
            return N.pixel_norm(N.act(N.apply_bias(N.conv2d(x, P['b4x4_conv.weight'], N.SQRT2), P['b4x4_conv.bias'])), eps)
        x = N.upscale2d(x)
        x = N.pixel_norm(N.act(N.apply_bias(N.conv2d(x, P[f'b{R}x{R}_conv0_up.weight'], N.SQRT2), P[f'b{R}x{R}_conv0_up.bias'])), eps)
        return N.pixel_norm(N.act(N.apply_bias(N.conv2d(x, P[f'b{R}x{R}_conv1.weight'], N.SQRT2), P[f'b{R}x{R}_conv1.bias'])), eps)

    def torgb(x, r):
        R = 2 ** r
        return N.apply_bias(N.conv2d(x, P[f'torgb_{R}x{R}.weight'], 1.0), P[f'torgb_{R}x{R}.bias'])

    x = block(x, 2)
    images = torgb(x, 2)
    for r in range(3, top + 1):
        lod = top - r
        x = block(x, r)
        img = torgb(x, r)
        images = N.upscale2d(images)
        images = lerp_clip(img, images, lod_in - lod)
    return images


def D_official_full(P, cfg, images, lod_in):
    """The official 'linear' D structure at lod_in on final-resolution images (box downscale, lerp_clip)."""
    top = N.log2(cfg['resolution'])
    group = cfg.get('minibatchStddevGroup', 4)

    def fromrgb(x, r):
        R = 2 ** r
        return N.act(N.apply_bias(N.conv2d(x, P[f'fromrgb_{R}x{R}.weight'], N.SQRT2), P[f'fromrgb_{R}x{R}.bias']))

    def block(x, r):
        R = 2 ** r
        if r >= 3:
            x = N.act(N.apply_bias(N.conv2d(x, P[f'b{R}x{R}_conv0.weight'], N.SQRT2), P[f'b{R}x{R}_conv0.bias']))
            # official D_paper default fused_scale=True: Conv1_down = conv2d_downscale2d (conv, then the 2×2
            # box filter, both linear), then bias and activation — the pool comes before bias and LReLU.
            x = N.downscale2d(N.conv2d(x, P[f'b{R}x{R}_conv1_down.weight'], N.SQRT2))
            return N.act(N.apply_bias(x, P[f'b{R}x{R}_conv1_down.bias']))
        if group > 1:
            x = N.minibatch_stddev(x, group)
        x = N.act(N.apply_bias(N.conv2d(x, P['b4x4_conv.weight'], N.SQRT2), P['b4x4_conv.bias']))
        x = N.act(N.apply_bias(N.dense(x, P['b4x4_dense0.weight'], N.SQRT2), P['b4x4_dense0.bias']))
        return N.apply_bias(N.dense(x, P['b4x4_dense1.weight'], 1.0), P['b4x4_dense1.bias'])

    img = images
    x = fromrgb(img, top)
    for r in range(top, 2, -1):
        lod = top - r
        x = block(x, r)
        img = N.downscale2d(img)
        y = fromrgb(img, r - 1)
        x = lerp_clip(x, y, lod_in - lod)
    return block(x, 2)


def d_loss_terms(score, reals, fakes, u, loss, norm_divisor=1.0):
    """official loss.py D_wgangp_acgan (no labels): per-sample terms, then means. `score(x)` → [N]."""
    lam, gamma, eps_drift = loss['lambda'], loss['gamma'], loss['drift']
    real_s = score(reals)
    fake_s = score(fakes)
    mixed = N.lerp(reals.detach(), fakes.detach(), u).requires_grad_(True)
    mixed_s = score(mixed)
    grad = torch.autograd.grad(mixed_s.sum(), [mixed], create_graph=True)[0]
    norms = torch.sqrt(torch.sum(grad * grad, dim=(1, 2, 3))) / norm_divisor
    gp = (norms - gamma) ** 2 * (lam / gamma ** 2)
    drift = eps_drift * real_s ** 2
    per = fake_s - real_s + gp + drift
    return {
        'dLoss': per.mean(), 'gradientPenalty': gp.mean(), 'drift': drift.mean(),
        'wasserstein': (fake_s - real_s).mean(), 'norms': norms.detach(),
    }


class Adam:
    """torch.optim.Adam (foreach) on a dict of leaf tensors; reset() drops the state (official
    reset_optimizer_state) by building a fresh optimizer."""

    def __init__(self, params, adam):
        self.params = params
        self.cfg = adam
        self.reset()

    def reset(self):
        self.opt = torch.optim.Adam(list(self.params.values()), lr=1.0,
                                    betas=(float(self.cfg['beta1']), float(self.cfg['beta2'])), eps=float(self.cfg['epsilon']), foreach=True)

    def step(self, grads, lr):
        for k, p in self.params.items():
            p.grad = grads[k].detach().clone()
        for g in self.opt.param_groups:
            g['lr'] = lr
        self.opt.step()
        for p in self.params.values():
            p.grad = None


def ema_beta(ema, minibatch, images_shown):
    if ema['halfLifeKimg'] <= 0:
        return ema['beta']
    half = ema['halfLifeKimg'] * 1000.0
    if ema['rampup'] > 0:
        half = min(half, images_shown * ema['rampup'])
    return 0.5 ** (minibatch / max(half, 1e-8))


class Run:
    """G, D, G_ema, two Adams and the official prev_lod logic; one step = D update then G update."""

    def __init__(self, case, dtype):
        self.cfg = case['config']
        self.loss = case['loss']
        self.ema = case['ema']
        self.final = self.cfg['resolution']
        self.gp_scale = case['loss']['gradientPenaltyScale']
        self.gP = {k: v.clone().requires_grad_(True) for k, v in load(case['generatorWeights'], dtype).items()}
        self.dP = {k: v.clone().requires_grad_(True) for k, v in load(case['discriminatorWeights'], dtype).items()}
        self.gEma = {k: v.detach().clone() for k, v in self.gP.items()}
        self.adamG = Adam(self.gP, case['adam'])
        self.adamD = Adam(self.dP, case['adam'])
        self.prev_lod = -1.0
        self.images_shown = 0

    def step(self, res, alpha, lr, reals, latentsD, u, latentsG, feed=None):
        """feed: optional {'d': grads, 'g': grads} that Adam applies instead of this step's own gradients
        (which are still computed and returned)."""
        cfg = self.cfg
        lod = lod_of(self.final, res, alpha)
        reset = math.floor(lod) != math.floor(self.prev_lod) or math.ceil(lod) != math.ceil(self.prev_lod)
        if reset:
            self.adamG.reset()
            self.adamD.reset()
        self.prev_lod = lod
        reals = fade_reals(reals, alpha)
        divisor = self.final / res if self.gp_scale == 'official' else 1.0
        with torch.no_grad():
            fakes = N.G(self.gP, cfg, latentsD, None, res, alpha)
        terms = d_loss_terms(lambda x: N.D(self.dP, cfg, x, res, alpha)[:, 0], reals, fakes, u, self.loss, divisor)
        names = list(self.dP)
        dGrads = dict(zip(names, torch.autograd.grad(terms['dLoss'], [self.dP[k] for k in names], allow_unused=True)))
        dGrads = {k: torch.zeros_like(self.dP[k]) if g is None else g.detach() for k, g in dGrads.items()}
        self.adamD.step(feed['d'] if feed else dGrads, lr)

        dFixed = {k: v.detach() for k, v in self.dP.items()}
        gLoss = (-N.D(dFixed, cfg, N.G(self.gP, cfg, latentsG, None, res, alpha), res, alpha)[:, 0]).mean()
        names = list(self.gP)
        gGrads = dict(zip(names, torch.autograd.grad(gLoss, [self.gP[k] for k in names], allow_unused=True)))
        gGrads = {k: torch.zeros_like(self.gP[k]) if g is None else g.detach() for k, g in gGrads.items()}
        self.adamG.step(feed['g'] if feed else gGrads, lr)

        n = reals.shape[0]
        beta = ema_beta(self.ema, n, self.images_shown)
        with torch.no_grad():
            for k in self.gEma:
                self.gEma[k].copy_(N.lerp(self.gP[k].detach(), self.gEma[k], beta))
        self.images_shown += n
        stats = {k: terms[k].detach() for k in ('dLoss', 'gradientPenalty', 'drift', 'wasserstein')}
        stats['gLoss'] = gLoss.detach()
        return stats, dGrads, gGrads, terms['norms'], reset


class NearKinks:
    """Counts leaky-ReLU inputs within 1e-6·max|z| of the kink (per call) while active: there float32
    rounding may put an element on the other side, a jump in the gradient that no tolerance describes."""

    def __enter__(self):
        self.count, self.orig = 0, N.act

        def act(x):
            a = x.detach().abs()
            self.count += int((a < 1e-6 * a.max()).sum())
            return self.orig(x)

        N.act = act
        return self

    def __exit__(self, *exc):
        N.act = self.orig


def scalar(v):
    return torch.as_tensor(v, dtype=torch.float64).reshape(1)


def run_step(case):
    dtype = DTYPES[case.get('dtype', 'float64')]
    cfg, res, alpha, final = case['config'], case['resolution'], case['alpha'], case['config']['resolution']
    t = load(case['inputs'], dtype)
    r = Run(case, dtype)
    dP0 = {k: v.detach().clone() for k, v in r.dP.items()}
    gP0 = {k: v.detach().clone() for k, v in r.gP.items()}
    stats, dGrads, gGrads, norms, _ = r.step(res, alpha, case['learningRate'], t['reals'], t['latentsD'], t['u'], t['latentsG'])
    out = {'stat.' + k: scalar(v) for k, v in stats.items()}
    out.update({'d.' + k: v for k, v in dGrads.items()})
    out.update({'g.' + k: v for k, v in gGrads.items()})
    out['norms'] = norms
    out.update({'after.D.' + k: v.detach().clone() for k, v in r.dP.items()})
    out.update({'after.G.' + k: v.detach().clone() for k, v in r.gP.items()})
    if case.get('oursAfter'):
        # The G step again, on the caller's updated D: separates the G-gradient computation from the D
        # update (whose β1 = 0 first step is ±lr, so an element with a ~1e-7 gradient may step either way).
        dOurs = load(case['oursAfter'], dtype)
        dOurs = {k[2:]: v for k, v in dOurs.items() if k.startswith('D.')}
        gP = {k: v.clone().requires_grad_(True) for k, v in gP0.items()}
        with NearKinks() as kinks:
            gl = (-N.D(dOurs, cfg, N.G(gP, cfg, t['latentsG'], None, res, alpha), res, alpha)[:, 0]).mean()
        out['nearKinks.G'] = scalar(kinks.count)
        names = list(gP)
        for k, g in zip(names, torch.autograd.grad(gl, [gP[k] for k in names], allow_unused=True)):
            out['oursD.g.' + k] = torch.zeros_like(gP[k]) if g is None else g
        out['oursD.gLoss'] = scalar(gl.detach())

    # Native-resolution gradient norms (no divisor) on the same mixed images, and the penalty each scale gives.
    loss = case['loss']
    reals = fade_reals(t['reals'], alpha)
    with torch.no_grad():
        fakes = N.G(gP0, cfg, t['latentsD'], None, res, alpha)
    with NearKinks() as kinks:
        native = d_loss_terms(lambda x: N.D(dP0, cfg, x, res, alpha)[:, 0], reals, fakes, t['u'], loss, 1.0)
    out['nearKinks.D'] = scalar(kinks.count)
    out['native.norms'] = native['norms']
    out['native.gradientPenalty'] = scalar(native['gradientPenalty'].detach())

    if case.get('fullResolution'):
        lod = lod_of(final, res, alpha)
        k = 2 ** math.floor(lod)
        assert k == final // res, (k, final, res)
        # (a) The official code, literally: reals faded at r then upscaled (process_reals), fakes from the
        # official linear G at lod_in, D's linear structure at lod_in on full-resolution images.
        reals_full = upscale_lod(fade_reals(t['reals'], alpha), k)
        with torch.no_grad():
            fakes_full = G_official_full(gP0, cfg, t['latentsD'], lod)
        dP = {kk: v.clone().requires_grad_(True) for kk, v in dP0.items()}
        full = d_loss_terms(lambda x: D_official_full(dP, cfg, x, lod)[:, 0], reals_full, fakes_full, t['u'], loss, 1.0)
        names = list(dP)
        grads = torch.autograd.grad(full['dLoss'], [dP[kk] for kk in names], allow_unused=True)
        for kk, g in zip(names, grads):
            out['full.d.' + kk] = torch.zeros_like(dP[kk]) if g is None else g.detach()
        for kk in ('dLoss', 'gradientPenalty', 'drift', 'wasserstein'):
            out['full.' + kk] = scalar(full[kk].detach())
        out['full.norms'] = full['norms']
        out['full.fakesVsUpscaledNative'] = scalar((fakes_full - upscale_lod(fakes, k)).abs().max())
        # (b) The simple explicit path: nearest-upscale the native mixed images to the final resolution,
        # D average-pools them back to r before fromRGB, gradient w.r.t. the full-resolution input.
        mixed = N.lerp(upscale_lod(reals, k), upscale_lod(fakes, k), t['u']).requires_grad_(True)
        s = N.D(dP0, cfg, N.downscale2d(mixed, k) if k > 1 else mixed, res, alpha)[:, 0]
        g = torch.autograd.grad(s.sum(), [mixed])[0]
        n2 = torch.sqrt((g * g).sum(dim=(1, 2, 3)))
        out['pool.norms'] = n2
        out['pool.gradientPenalty'] = scalar(((n2 - loss['gamma']) ** 2 * (loss['lambda'] / loss['gamma'] ** 2)).mean())
    return out


def run_steps(case):
    """Two 20-step runs from the same initial weights, each with its own Adam (and resets) and EMA:
    'free' follows its own trajectory; 'forced' starts every step from the caller's weights before that
    step ({i}.G.*, {i}.D.*) — keeping its own Adam state — so float32-vs-float64 rounding cannot
    accumulate, and reports its weights after each step (forced.{i}.G.*, forced.{i}.D.*). Its Adam
    applies the caller's gradients ({i}.gradD.*, {i}.gradG.*) when given: its own gradients are
    compared with them separately, and Adam's second moment would otherwise carry one step's
    rounding-flipped leaky-ReLU kink into every update until the next reset."""
    dtype = DTYPES[case.get('dtype', 'float64')]
    t = load(case['inputs'], dtype)
    out = {}
    for mode in ('free', 'forced'):
        r = Run(case, dtype)
        rows = {k: [] for k in ('dLoss', 'gLoss', 'gradientPenalty', 'drift', 'wasserstein', 'reset')}
        for i, p in enumerate(case['points']):
            if mode == 'forced':
                with torch.no_grad():
                    for k, v in r.gP.items():
                        v.copy_(t[f'{i}.G.{k}'])
                    for k, v in r.dP.items():
                        v.copy_(t[f'{i}.D.{k}'])
            feed = None
            if mode == 'forced' and f'{i}.gradD.{next(iter(r.dP))}' in t:
                feed = {'d': {k: t[f'{i}.gradD.{k}'] for k in r.dP}, 'g': {k: t[f'{i}.gradG.{k}'] for k in r.gP}}
            stats, dGrads, gGrads, _, reset = r.step(p['resolution'], p['alpha'], p['learningRate'],
                                                     t[f'{i}.reals'], t[f'{i}.latentsD'], t[f'{i}.u'], t[f'{i}.latentsG'], feed)
            if mode == 'forced':
                out.update({f'forced.{i}.d.{k}': v for k, v in dGrads.items()})
                out.update({f'forced.{i}.g.{k}': v for k, v in gGrads.items()})
                out.update({f'forced.{i}.G.{k}': v.detach().clone() for k, v in r.gP.items()})
                out.update({f'forced.{i}.D.{k}': v.detach().clone() for k, v in r.dP.items()})
            for k, v in stats.items():
                rows[k].append(float(v))
            rows['reset'].append(1.0 if reset else 0.0)
        prefix = '' if mode == 'free' else 'forced.'
        out.update({prefix + k: torch.tensor(v, dtype=torch.float64) for k, v in rows.items()})
        if mode == 'free':
            out.update({'G.' + k: v.detach() for k, v in r.gP.items()})
            out.update({'D.' + k: v.detach() for k, v in r.dP.items()})
            out.update({'G_ema.' + k: v.detach() for k, v in r.gEma.items()})
    return out


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    for case in job['cases']:
        result = run_step(case) if case['kind'] == 'step' else run_steps(case)
        safetensors_io.write(os.path.join(job['outDir'], case['id'] + '.safetensors'),
                             {k: v.detach().contiguous().numpy() for k, v in result.items()})
    print(json.dumps({'done': len(job['cases'])}))


if __name__ == '__main__':
    main()
