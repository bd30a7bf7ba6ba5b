// Analytic FLOP counts of a ProGAN training step, shared by the CPU bench (bench.ts) and the GPU bench
// (scripts/gpu/bench.ts): the achieved GFLOP/s of each side is its step's FLOPs over its step time.
import { featureMaps, PRESETS } from '../../lib/options';

/** The presets the benches know (the paper's channels and the small CPU preset). */
export type PresetName = 'paper' | 'small';

/** Which plain 3×3 layers run as Winograd F(2×2, 3×3), by their channel counts. */
export type Winograd = (cin: number, cout: number) => boolean;

/** fusedScale 'auto' (native/networks/network_config.h fuseAt()): fused from 8² up. The CPU's Winograd
 * layers it leaves unfused do as many multiply-adds per output as a fused layer (4), so the count holds. */
export const fuseAuto = (r: number) => r >= 8;
export const fuseNever = () => false;
/** winograd 'auto' on the CPU (native/layers/winograd.cpp winogradPreferred()); never on a GPU. */
export const winogradAuto: Winograd = (cin, cout) => Math.min(cin, cout) >= 128;
export const winogradNever: Winograd = () => false;

/**
 * Multiply-adds of conv and dense layers (the only layers that matter) for ONE sample's forward pass.
 * fused: the official fused-scale convs (G: 3×3 kernel padded to 4×4, stride-2 transposed conv; D: 4×4
 * stride-2 conv) cost 16·Cin·Cout per LOW-res pixel = 4·Cin·Cout per high-res pixel instead of 9·…
 * winograd(cin, cout): the plain 3×3 layers that run as Winograd F(2×2, 3×3) cost 16 multiply-adds per
 * 2×2 output tile, 4·Cin·Cout per pixel instead of 9·….
 * Biases, activations, pixelnorm, pooling, lerps and minibatch stddev are not counted (< 2 % here).
 */
export function forwardMacs(preset: PresetName, res: number, fading: boolean, fused: (r: number) => boolean, winograd: Winograd = winogradNever) {
  const c = { ...PRESETS[preset], fmapDecay: 1 }; // the presets keep the default decay
  const nf = (s: number) => featureMaps(c, s);
  const top = Math.log2(res);
  const k3 = (cin: number, cout: number) => (winograd(cin, cout) ? 4 : 9); // per output pixel
  let g = c.latentSize * nf(1) * 16 + nf(1) * nf(1) * k3(nf(1), nf(1)) * 16; // dense + 4×4 conv
  let d = (nf(1) + 1) * nf(1) * k3(nf(1) + 1, nf(1)) * 16 + nf(1) * 16 * nf(0) + nf(0); // 4×4 conv (+stddev channel), dense, dense
  for (let r = 3; r <= top; r++) {
    const px = 4 ** r; // (2^r)² pixels
    const up = fused(2 ** r) ? 4 : k3(nf(r - 2), nf(r - 1));
    const down = fused(2 ** r) ? 4 : k3(nf(r - 1), nf(r - 2));
    g += nf(r - 2) * nf(r - 1) * up * px + nf(r - 1) * nf(r - 1) * k3(nf(r - 1), nf(r - 1)) * px; // conv0_up, conv1
    d += nf(r - 1) * nf(r - 1) * k3(nf(r - 1), nf(r - 1)) * px + nf(r - 1) * nf(r - 2) * down * px; // conv0, conv1_down
  }
  g += nf(top - 1) * 3 * res * res; // toRGB
  d += 3 * nf(top - 1) * res * res; // fromRGB
  if (fading && top > 2) {
    g += nf(top - 2) * 3 * (res / 2) ** 2; // old toRGB
    d += 3 * nf(top - 2) * (res / 2) ** 2; // old fromRGB
  }
  return { g, d };
}

/**
 * FLOPs of one training step of `batch` samples, in units of each network's forward F_G, F_D:
 *  D step: G fwd for the fakes (no grad) 1·F_G; D fwd reals + fakes 2·F_D; GP: D fwd on mixed 1·F_D,
 *    autograd.grad wrt the images (input grads only) 1·F_D; loss.backward: the real and fake passes
 *    (input + weight grads) 2·2·F_D, and the double backward = backward of the input-grad pass
 *    (grad wrt its incoming grad + wrt W) 2·F_D + backward through D(mixed)'s forward graph 2·F_D
 *    (autograd runs it: minibatch stddev has a non-zero second derivative, lrelu's is zeros that are
 *    still propagated) → F_G + 12·F_D.
 *  G step: G fwd 1·F_G, D fwd 1·F_D, D backward input grads only (D frozen) 1·F_D, G backward 2·F_G
 *    → 3·F_G + 2·F_D.
 *  Total 4·F_G + 14·F_D per sample; FLOPs = 2·MACs. An upper-ish count (first-layer input grads that
 *  autograd skips are included; they are tiny: 3 input channels).
 */
export function stepFlops(preset: PresetName, res: number, fading: boolean, fused: (r: number) => boolean, batch: number,
                          winograd: Winograd = winogradNever): number {
  const { g, d } = forwardMacs(preset, res, fading, fused, winograd);
  return 2 * batch * (4 * g + 14 * d);
}
