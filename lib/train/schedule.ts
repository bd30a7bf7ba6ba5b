// The growth schedule as seen from TypeScript: the one implementation lives in C++
// (native/train/schedule.cpp); this only forwards to it.
import { native } from '../native';
import type { ScheduleConfig } from './options';

export interface SchedulePoint {
  /** Native resolution the networks run at (the newer one during a fade). */
  resolution: number;
  /** Level of detail: log2(final / resolution) + (1 − alpha). */
  lod: number;
  /** Weight of the newest block, 1 − frac(lod). */
  alpha: number;
  phase: 'stable' | 'fade';
  minibatch: number;
  learningRate: number;
}

export interface Schedule {
  readonly config: ScheduleConfig;
  at(imagesShown: number): SchedulePoint;
}

export function createSchedule(config: ScheduleConfig): Schedule {
  const addon = native() as unknown as { scheduleAt(c: ScheduleConfig, images: number): SchedulePoint };
  return {
    config,
    at(imagesShown: number): SchedulePoint {
      if (!Number.isFinite(imagesShown) || imagesShown < 0) {
        throw new RangeError(`Expected a non-negative number of images shown but received ${imagesShown}`);
      }
      return addon.scheduleAt(config, imagesShown);
    },
  };
}
