// progan's public API.
export { Tensor, tensor, randn, type DType } from './tensor';
export {
  PRESETS,
  resolveNetworkOptions,
  featureMaps,
  resolutionsUpTo,
  type NetworkConfig,
  type NetworkOptionsInput,
  type PresetName,
} from './options';
export { Networks, Network, createNetworks, type ForwardOptions, type Gradients, type CreateNetworksOptions } from './networks';
export { readSafetensors, writeSafetensors, SafetensorsError, type NamedTensors } from './safetensors';
export { NativeLoadError, native, addonPath } from './native';
export { describeArchitecture, type ArchitectureSummary } from './architecture';
