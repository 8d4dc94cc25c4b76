// Job rows as the service writes them, for tests and benchmarks that fill the store directly.
import type { JobRow } from '../../src/jobs/store.js';

export const jobId = (n: number) => `ftjob-${String(n).padStart(24, '0')}`;

export const jobRow = (id: string, status: JobRow['status'] = 'queued') => ({
  id,
  status,
  model: 'base',
  training_file: 'file-AAAAAAAAAAAAAAAAAAAAAAAA',
  validation_file: null,
  hyperparameters: { n_epochs: 1, batch_size: 1, learning_rate_multiplier: 1 },
  method: { type: 'supervised' },
  seed: 1,
  suffix: null,
  metadata: { k: 'v' },
});
