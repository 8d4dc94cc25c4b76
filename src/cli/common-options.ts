// Options that several commands take, declared once for all of them.
import { DEVICES, type Device } from '../model/runtime.js';
import { choice, int, num } from './options.js';

/** How a model runs: every command that loads one. */
export const RUNTIME_OPTIONS = {
  device: choice(DEVICES as readonly Device[], { default: 'cpu', help: 'where the model runs' }),
  threads: int({ arg: 'N', min: 1, defaultText: 'all cores', help: 'intra-op threads' }),
  quantize: choice(['none', 'int8'], { default: 'none', help: 'int8: decode with blockwise int8 weights (faster, not fp32-exact; prefill stays fp32)' }),
};

/** Sampling, whose defaults come from the model's generation_config.json: generate and chat. */
export const SAMPLING_OPTIONS = {
  temperature: num({ arg: 'T', defaultText: "generation_config.json's, else 1", help: '0 = greedy' }),
  topK: int({ arg: 'K', min: 0, defaultText: "generation_config.json's, else off", help: 'keep the K most likely tokens' }),
  topP: num({ arg: 'P', defaultText: "generation_config.json's, else off", help: 'keep the most likely tokens up to probability P' }),
  seed: int({ arg: 'S', help: 'the same seed and input give the same tokens' }),
};
