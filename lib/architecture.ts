// A summary of the networks for `progan info`: parameter counts, per-resolution feature maps.
import { createNetworks, type Network } from './networks';
import { featureMaps, resolutionsUpTo, type NetworkOptionsInput, type NetworkConfig } from './options';

export interface ArchitectureSummary {
  config: NetworkConfig;
  generator: { parameters: number };
  discriminator: { parameters: number };
  resolutions: {
    resolution: number;
    /** Feature maps of the generator block (and of the discriminator block's input) at this resolution. */
    channels: number;
    generatorParameters: number;
    discriminatorParameters: number;
  }[];
}

export function describeArchitecture(options: NetworkOptionsInput = {}): ArchitectureSummary {
  const nets = createNetworks(options);
  const config = nets.generator.config;
  return {
    config,
    generator: { parameters: nets.generator.parameterCount },
    discriminator: { parameters: nets.discriminator.parameterCount },
    resolutions: resolutionsUpTo(config.resolution).map((resolution) => ({
      resolution,
      channels: featureMaps(config, Math.log2(resolution) - 1),
      generatorParameters: countAt(nets.generator, resolution),
      discriminatorParameters: countAt(nets.discriminator, resolution),
    })),
  };
}

// Parameter names carry their resolution (b8x8_conv0_up.weight, torgb_8x8.bias, …).
function countAt(network: Network, resolution: number): number {
  const tag = `${resolution}x${resolution}`;
  let n = 0;
  for (const [name, t] of network.parameters()) if (name.split(/[_.]/).includes(tag) || name.startsWith(`b${tag}_`)) n += t.size;
  return n;
}
