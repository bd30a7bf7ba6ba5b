#!/usr/bin/env python3
"""Plain-PyTorch ProGAN training step: the code a competent PyTorch user would write (no custom ops,
no fused-scale convs), used by bench.ts as the baseline on the same machine in the same run.

Networks follow /work/shared/PAPER.md: equalized learning rate (weights N(0,1) scaled at run time by
gain/sqrt(fan_in)), G blocks nearest-upsample -> conv3x3 -> lrelu -> pixelnorm (x2), toRGB 1x1, D blocks
conv -> lrelu -> conv (no bias) -> avgpool -> bias -> lrelu (official fused_scale=True order),
D 4x4 block minibatch stddev -> conv -> dense -> dense, fade-in lerps for G output, D input and reals.
Loss WGAN-GP (lambda 10, gamma 1, drift 0.001, GP via autograd.grad(create_graph=True), official norm
scale k = final/res), Adam(lr 1e-3, betas (0, 0.99), eps 1e-8), G EMA beta 0.999 every step.

Usage: a JSON list of jobs on stdin, or one JSON job per line (--lines, answered one line each).
Job: {"op": "step", preset, resolution, alpha, batch, steps, warmup, threads, finalResolution, device, fmapMax}
       device "cpu" (default) or "cuda": on a GPU the step is what a careful PyTorch user would write
       there (cudnn.benchmark on, the uint8 dataset resident on the GPU, no host sync inside the timed
       steps: the losses are read once after them), fp32 with PyTorch's default TF32 settings.
     {"op": "ceiling", threads}   fp32 GEMM and 3x3-conv ceilings (GFLOP/s)
     {"op": "profile", ...step job}  torch.profiler op mix of one step
     {"op": "traceMix", path, steps}  the same op mix from a Chrome trace of our steps
     {"op": "info"}
Each answer is one JSON line.
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    'paper': dict(fmap_base=8192, fmap_max=512, latent=512),
    'small': dict(fmap_base=1024, fmap_max=128, latent=128),
}


def nf(p, stage):
    return min(int(p['fmap_base'] / 2.0 ** stage), p['fmap_max'])


class EqConv(nn.Module):
    def __init__(self, cin, cout, k, gain=math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(cin * k * k)
        self.pad = k // 2

    def forward(self, x, bias=True):
        return F.conv2d(x, self.weight * self.scale, self.bias if bias else None, padding=self.pad)


class EqLinear(nn.Module):
    def __init__(self, cin, cout, gain=math.sqrt(2), bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = gain / math.sqrt(cin)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def pixel_norm(x, eps=1e-8):
    return x * torch.rsqrt(x.square().mean(1, keepdim=True) + eps)


def minibatch_stddev(x, group=4):
    n, c, h, w = x.shape
    g = min(group, n)
    y = x.reshape(g, n // g, c, h, w)
    y = y - y.mean(0, keepdim=True)
    y = (y.square().mean(0) + 1e-8).sqrt().mean([1, 2, 3], keepdim=True)  # [M,1,1,1]
    y = y.repeat(g, 1, h, w)
    return torch.cat([x, y], 1)


class Generator(nn.Module):
    def __init__(self, p, final):
        super().__init__()
        self.p = p
        top = int(math.log2(final))
        c1 = nf(p, 1)
        self.dense = EqLinear(p['latent'], c1 * 16, gain=math.sqrt(2) / 4, bias=False)
        self.dense_bias = nn.Parameter(torch.zeros(c1))
        self.conv4 = EqConv(c1, c1, 3)
        self.conv0 = nn.ModuleDict()
        self.conv1 = nn.ModuleDict()
        self.torgb = nn.ModuleDict({str(r): EqConv(nf(p, r - 1), 3, 1, gain=1.0) for r in range(2, top + 1)})
        for r in range(3, top + 1):
            self.conv0[str(r)] = EqConv(nf(p, r - 2), nf(p, r - 1), 3)
            self.conv1[str(r)] = EqConv(nf(p, r - 1), nf(p, r - 1), 3)

    def block(self, x, r):
        if r == 2:
            y = self.dense(x).view(x.shape[0], -1, 4, 4) + self.dense_bias.view(1, -1, 1, 1)
            y = pixel_norm(lrelu(y))
            return pixel_norm(lrelu(self.conv4(y)))
        x = F.interpolate(x, scale_factor=2, mode='nearest')
        x = pixel_norm(lrelu(self.conv0[str(r)](x)))
        return pixel_norm(lrelu(self.conv1[str(r)](x)))

    def forward(self, z, res, alpha):
        top = int(math.log2(res))
        x = self.block(pixel_norm(z), 2)
        for r in range(3, top):
            x = self.block(x, r)
        if top == 2:
            return self.torgb['2'](x)
        out = self.torgb[str(top)](self.block(x, top))
        if alpha < 1:
            old = F.interpolate(self.torgb[str(top - 1)](x), scale_factor=2, mode='nearest')
            out = torch.lerp(old, out, alpha)
        return out


class Discriminator(nn.Module):
    def __init__(self, p, final):
        super().__init__()
        top = int(math.log2(final))
        self.fromrgb = nn.ModuleDict({str(r): EqConv(3, nf(p, r - 1), 1) for r in range(2, top + 1)})
        self.conv0 = nn.ModuleDict()
        self.conv1 = nn.ModuleDict()
        for r in range(3, top + 1):
            self.conv0[str(r)] = EqConv(nf(p, r - 1), nf(p, r - 1), 3)
            self.conv1[str(r)] = EqConv(nf(p, r - 1), nf(p, r - 2), 3)
        self.conv4 = EqConv(nf(p, 1) + 1, nf(p, 1), 3)
        self.dense0 = EqLinear(nf(p, 1) * 16, nf(p, 0))
        self.dense1 = EqLinear(nf(p, 0), 1, gain=1.0)

    def block(self, x, r):
        if r == 2:
            x = lrelu(self.conv4(minibatch_stddev(x)))
            x = lrelu(self.dense0(x.flatten(1)))
            return self.dense1(x)
        c1 = self.conv1[str(r)]
        x = lrelu(self.conv0[str(r)](x))
        x = F.avg_pool2d(c1(x, bias=False), 2) + c1.bias.view(1, -1, 1, 1)
        return lrelu(x)

    def forward(self, img, res, alpha):
        top = int(math.log2(res))
        x = self.block(lrelu(self.fromrgb[str(top)](img)), top)
        if top > 2 and alpha < 1:
            x = torch.lerp(lrelu(self.fromrgb[str(top - 1)](F.avg_pool2d(img, 2))), x, alpha)
        for r in range(top - 1, 1, -1):
            x = self.block(x, r)
        return x[:, 0]


class ProGANStep:
    def __init__(self, preset, final=64, lr=1e-3, seed=0, check_finite=False, device='cpu', fmap_max=None):
        torch.manual_seed(seed)
        p = dict(PRESETS[preset], **({'fmap_max': fmap_max} if fmap_max else {}))
        self.p, self.final, self.device = p, final, torch.device(device)
        self.G, self.D = Generator(p, final).to(self.device), Discriminator(p, final).to(self.device)
        self.G_ema = Generator(p, final).to(self.device)
        self.G_ema.load_state_dict(self.G.state_dict())
        self.G_ema.requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.0, 0.99), eps=1e-8)
        self.check_finite = check_finite
        # A uint8 "dataset" per resolution, sampled and converted every step as a loader would.
        self.data = {}

    def reals(self, res, n):
        if res not in self.data:
            self.data[res] = torch.randint(0, 256, (256, 3, res, res), dtype=torch.uint8, device=self.device)
        idx = torch.randint(0, 256, (n,), device=self.device)
        return self.data[res][idx].float().mul_(2 / 255).sub_(1)

    def finite(self, params):
        grads = [q.grad for q in params if q.grad is not None]
        return bool(torch.stack(torch._foreach_norm(grads)).sum().isfinite()) if grads else True

    def step(self, res, alpha, n, gp_on=True):
        G, D, latent = self.G, self.D, self.p['latent']
        k = self.final / res  # official GP scale: D sees nearest-upscaled images, box-downsampled by k
        reals = self.reals(res, n)
        if alpha < 1 and res > 4:
            reals = torch.lerp(F.interpolate(F.avg_pool2d(reals, 2), scale_factor=2, mode='nearest'), reals, alpha)

        # D step
        with torch.no_grad():
            fakes = G(torch.randn(n, latent, device=self.device), res, alpha)
        real_s = D(reals, res, alpha)
        fake_s = D(fakes, res, alpha)
        gp = 0.0
        if gp_on:  # off only for the profile's ablation
            u = torch.rand(n, 1, 1, 1, device=self.device)
            mixed = torch.lerp(reals, fakes, u).requires_grad_(True)
            mixed_s = D(mixed, res, alpha)
            grad, = torch.autograd.grad(mixed_s.sum(), mixed, create_graph=True)
            norms = grad.flatten(1).norm(dim=1) / k
            gp = 10.0 * (norms - 1.0).square()
        d_loss = (fake_s - real_s + gp + 0.001 * real_s.square()).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        if not self.check_finite or self.finite(D.parameters()):
            self.opt_d.step()

        # G step: D's weights are constants
        D.requires_grad_(False)
        g_loss = -D(G(torch.randn(n, latent, device=self.device), res, alpha), res, alpha).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        D.requires_grad_(True)
        if not self.check_finite or self.finite(G.parameters()):
            self.opt_g.step()

        with torch.no_grad():
            for pe, pg in zip(self.G_ema.parameters(), self.G.parameters()):
                pe.lerp_(pg, 1 - 0.999)
        return d_loss.detach(), g_loss.detach()


def peak_rss_mb():
    # VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives fork+exec, so a child of a big Node
    # process would report the parent's size. VmHWM belongs to this process's own address space.
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


_steppers = {}


def stepper(job):
    key = (job['preset'], job.get('finalResolution', 64), bool(job.get('checkFinite', False)), job.get('device', 'cpu'), job.get('fmapMax'))
    if key not in _steppers:
        _steppers[key] = ProGANStep(job['preset'], final=key[1], check_finite=key[2], device=key[3], fmap_max=key[4])
    return _steppers[key]


def run_step(job):
    torch.set_num_threads(int(job['threads']))
    s = stepper(job)
    res, alpha, n = job['resolution'], float(job['alpha']), int(job.get('batch', 16))
    gp_on = bool(job.get('gp', True))
    if s.device.type == 'cuda':
        return run_step_cuda(s, job, res, alpha, n, gp_on)
    for _ in range(int(job.get('warmup', 1))):
        s.step(res, alpha, n, gp_on)
    steps = int(job['steps'])
    times = []
    cpu0 = time.process_time()  # all of this process's threads
    for _ in range(steps):
        t0 = time.perf_counter()
        d, g = s.step(res, alpha, n, gp_on)
        float(d), float(g)  # the losses a training loop would log
        times.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    total = sum(times)
    return {
        'imagesPerSecond': steps * n / total,
        'stepMs': 1000 * total / steps,
        'cpuMsPerStep': 1000 * cpu / steps,
        'stepMsMin': 1000 * min(times),
        'peakRssMB': peak_rss_mb(),
    }


def run_step_cuda(s, job, res, alpha, n, gp_on):
    """The GPU timing: one sync before and after the timed steps (none inside), losses read after."""
    torch.backends.cudnn.benchmark = True
    for _ in range(int(job.get('warmup', 1))):
        s.step(res, alpha, n, gp_on)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    steps = int(job['steps'])
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        losses.append(torch.stack(s.step(res, alpha, n, gp_on)))
    finite = bool(torch.stack(losses).isfinite().all())  # waits for the last step
    total = time.perf_counter() - t0
    return {
        'imagesPerSecond': steps * n / total,
        'stepMs': 1000 * total / steps,
        'lossesFinite': finite,
        'peakGpuMB': torch.cuda.max_memory_allocated() / 2 ** 20,
        'peakReservedGpuMB': torch.cuda.max_memory_reserved() / 2 ** 20,
        'peakRssMB': peak_rss_mb(),
    }


def ceiling(job):
    """fp32 ceilings: a 1024^3 GEMM and two ProGAN-shaped 3x3 convs (best of 5 timed loops: the machine is shared).
    With job['device'] == 'cuda': cuDNN's 3x3 convs at paper shapes (TF32 as the library default has it,
    NCHW and channels-last, benchmark mode), the GPU's conv ceiling for the steps' convolutions."""
    if job.get('device') == 'cuda':
        return cuda_ceiling(job)
    torch.set_num_threads(int(job['threads']))
    reps = int(job.get('reps', 8))

    def best(fn, flops):
        for _ in range(2):
            fn()
        b = float('inf')
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            b = min(b, (time.perf_counter() - t0) / reps)
        return flops / b / 1e9

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    out = {'gemmGflops': best(lambda: a @ b, 2 * 1024 ** 3)}
    convs = {}
    for c, hw in ((256, 16), (512, 8)):
        x, w = torch.randn(16, c, hw, hw), torch.randn(c, c, 3, 3)
        convs[f'{c}ch{hw}'] = best(lambda: F.conv2d(x, w, padding=1), 2 * 16 * c * c * 9 * hw * hw)
    out['conv3x3Gflops'] = max(convs.values())
    out['conv3x3ByShape'] = convs
    return out


def cuda_ceiling(job):
    torch.backends.cudnn.benchmark = True
    reps = int(job.get('reps', 20))
    dev = torch.device('cuda')

    def best(fn, flops):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        b = float('inf')
        for _ in range(5):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(reps):
                fn()
            end.record()
            end.synchronize()
            b = min(b, start.elapsed_time(end) / 1e3 / reps)
        return flops / b / 1e9

    convs = {}
    for n, c, hw in ((128, 512, 16), (64, 512, 32), (32, 256, 64)):
        for layout in ('nchw', 'nhwc'):
            fmt = torch.channels_last if layout == 'nhwc' else torch.contiguous_format
            x = torch.randn(n, c, hw, hw, device=dev).to(memory_format=fmt)
            w = torch.randn(c, c, 3, 3, device=dev).to(memory_format=fmt)
            convs[f'{c}ch{hw}-n{n}-{layout}'] = best(lambda: F.conv2d(x, w, padding=1), 2 * n * c * c * 9 * hw * hw)
    a, b = torch.randn(8192, 8192, device=dev), torch.randn(8192, 8192, device=dev)
    return {'gemmGflops': best(lambda: a @ b, 2 * 8192 ** 3), 'conv3x3Gflops': max(convs.values()), 'conv3x3ByShape': convs,
            'tf32': {'cudnn': torch.backends.cudnn.allow_tf32, 'matmul': torch.backends.cuda.matmul.allow_tf32}}


def op_group(name):
    """The profile's op families, the same for torch's step and for ours."""
    if 'convolution_backward' in name or 'ConvolutionBackward' in name or name == 'progan::narrowGram':
        return 'conv backward'
    if name == 'progan::narrowProduct':  # our 1×1 layers' forward and input gradient
        return 'conv forward'
    if 'mkldnn_convolution' in name or 'conv' in name:
        return 'conv forward'
    if name in ('aten::mm', 'aten::addmm', 'aten::bmm') or 'linear' in name:
        return 'linear (mm)'
    if 'adam' in name.lower() or 'Optimizer' in name or 'foreach' in name:
        return 'optimizer / foreach'
    if 'leaky' in name or 'threshold' in name:
        return 'leaky relu (+bwd)'
    if 'pool' in name or 'upsample' in name:
        return 'pool / upsample (+bwd)'
    return 'other elementwise / reductions / autograd'


def op_mix(rows, steps):
    """rows: (op name, self ms, calls) summed over `steps` steps -> per-step total, family shares, top ops."""
    total = sum(r[1] for r in rows)
    rows = sorted(rows, key=lambda r: -r[1])
    groups = {}
    for name, ms, _ in rows:
        groups[op_group(name)] = groups.get(op_group(name), 0.0) + ms
    return {
        'totalSelfMs': round(total / max(steps, 1), 1),
        'opsPerStep': round(sum(r[2] for r in rows) / max(steps, 1)),
        'groups': {k: round(100 * v / total, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        'top': [{'op': r[0], 'pct': round(100 * r[1] / total, 1), 'calls': r[2]} for r in rows[:12]],
    }


def profile(job):
    from torch.profiler import ProfilerActivity, profile as tprofile
    torch.set_num_threads(int(job['threads']))
    s = stepper(job)
    res, alpha, n = job['resolution'], float(job['alpha']), int(job.get('batch', 16))
    s.step(res, alpha, n)
    s.step(res, alpha, n)
    steps = int(job.get('steps', 1))
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            s.step(res, alpha, n)
    return op_mix([(e.key, e.self_cpu_time_total / 1000.0, e.count) for e in prof.key_averages()], steps)


def trace_mix(job):
    """Self time per op from a Chrome trace of our steps (trainPhase's `profile`), CPU ops only.

    An op's self time is its duration less that of the ops nested in it on the same thread, as
    torch.profiler's key_averages computes it for the PyTorch step.
    """
    with open(job['path']) as f:
        events = json.load(f)['traceEvents']
    by_thread = {}
    for e in events:
        if e.get('ph') == 'X' and e.get('cat') == 'cpu_op':
            by_thread.setdefault((e['pid'], e['tid']), []).append(e)
    self_ms, calls = {}, {}
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e['ts'], -e['dur']))
        stack = []  # [end, name, child time]
        def close(frame):
            name = frame[1]
            self_ms[name] = self_ms.get(name, 0.0) + (frame[3] - frame[2]) / 1000.0
        for e in evs:
            while stack and stack[-1][0] <= e['ts']:
                close(stack.pop())
            if stack:
                stack[-1][2] += e['dur']
            stack.append([e['ts'] + e['dur'], e['name'], 0.0, e['dur']])
            calls[e['name']] = calls.get(e['name'], 0) + 1
        while stack:
            close(stack.pop())
    return op_mix([(k, v, calls[k]) for k, v in self_ms.items()], int(job.get('steps', 1)))


def adam_cost(job):
    """What our trainer's per-step bookkeeping costs, timed with the same ATen calls (native/train/adam.cpp,
    trainer.cpp gradientsFinite): Adam over every parameter of the final-resolution networks (zeros_like
    grads for the unused ones) vs only the parameters in use at `resolution`; the non-finite check."""
    torch.set_num_threads(int(job['threads']))
    s = ProGANStep(job['preset'], final=job.get('finalResolution', 64))
    res = job['resolution']
    s.opt_d.zero_grad(set_to_none=True)
    s.opt_g.zero_grad(set_to_none=True)
    s.step(res, 1.0, 16)  # leaves grads on the parameters used at res
    params = [p for m in (s.G, s.D) for p in m.parameters()]
    used = [p for p in params if p.grad is not None]
    def adam(ps, m, v):
        with torch.no_grad():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in ps]
            torch._foreach_lerp_(m, grads, 1.0)
            torch._foreach_mul_(v, 0.99)
            torch._foreach_addcmul_(v, grads, grads, 0.01)
            d = torch._foreach_sqrt(v)
            torch._foreach_div_(d, 0.1)
            torch._foreach_add_(d, 1e-8)
            torch._foreach_addcdiv_([p.detach() for p in ps], m, d, -0.0)
    def timeit(fn, reps=int(job.get('reps', 5))):
        fn()
        best = float('inf')
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return 1000 * best
    ma, va = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    mu, vu = [torch.zeros_like(p) for p in used], [torch.zeros_like(p) for p in used]
    def finite():
        g = [p.grad for p in used]
        return torch.stack(torch._foreach_norm(g)).sum().isfinite().item()
    return {
        'paramsAll': sum(p.numel() for p in params), 'paramsUsed': sum(p.numel() for p in used),
        'adamAllMs': timeit(lambda: adam(params, ma, va)), 'adamUsedMs': timeit(lambda: adam(used, mu, vu)),
        'finiteCheckMs': timeit(finite),
    }


def info(_job):
    cuda = torch.cuda.is_available()
    return {
        'torch': torch.__version__,
        'cuda': torch.version.cuda if cuda else None,
        'gpu': torch.cuda.get_device_name(0) if cuda else None,
        'tf32': {'cudnn': torch.backends.cudnn.allow_tf32, 'matmul': torch.backends.cuda.matmul.allow_tf32} if cuda else None,
        'cpuCapability': torch.backends.cpu.get_cpu_capability(),
        'threads': torch.get_num_threads(),
        'mkldnn': torch.backends.mkldnn.is_available(),
    }


OPS = {'step': run_step, 'ceiling': ceiling, 'profile': profile, 'traceMix': trace_mix, 'info': info, 'adamCost': adam_cost}


def answer(job):
    try:
        return {'ok': True, **OPS[job.get('op', 'step')](job)}
    except Exception as e:  # report, keep serving
        return {'ok': False, 'error': f'{type(e).__name__}: {e}'}


def main():
    if '--lines' in sys.argv:
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(answer(json.loads(line))), flush=True)
        return
    for job in json.load(sys.stdin):
        print(json.dumps(answer(job)), flush=True)


if __name__ == '__main__':
    main()
