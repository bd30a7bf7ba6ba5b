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
export { Trainer, resolveDevice, type Progress, type TrainerState, type TrainPhaseOptions, type TrainOptions, type SampleOptions } from './train/trainer';
export { resolveTrainingOptions, type TrainingConfig, type TrainingOptionsInput } from './train/options';
export { createSchedule, type Schedule, type SchedulePoint } from './train/schedule';
export { readCheckpoint, writeCheckpoint, CheckpointError } from './train/checkpoint';
export { TrainingRun, type RunSettings, type RunSummary } from './train/run';
export { prepareDataset, openDataset, type PrepareOptions, type PrepareReport } from './dataset';
export { imageGrid, writeTimelapse } from './images';
export { TensorBoardWriter } from './tensorboard';
