export { prepareDataset, type PrepareReport, type SkippedFile, type ProgressCallback } from './prepare';
export type { PrepareOptions, Fit } from './options';
export {
  openDataset,
  DatasetWriter,
  MAGIC,
  FORMAT_VERSION,
  type DatasetFile,
  type DatasetHeader,
  type LevelEntry,
  type OpenOptions,
} from './format';
export { buildPyramid, levelResolutions } from './pyramid';
export { registerPrepareCommand, formatReport } from './command';
