// Keeps the finetuned models this process serves equal to the store's live ones: at start, then
// whenever any process sharing the database publishes or deletes one (MODELS_CHANNEL), so a model
// finished on a training worker appears on every replica without a restart, and a deleted one
// disappears from all. At start the newest few models load at once (as one server always did) and
// older ones at their first request, as does one published later by another process, so a server
// that serves many finetuned models keeps only those in use in memory (src/server/registry.ts: on
// demand): each loaded model is a thread with its own V8 heap and weights.
import fs from 'node:fs';
import type { DataDir } from './files.js';
import { isCheckpointModelId } from './ids.js';
import { LOADED_FINETUNED, type ServedModels } from './served-models.js';
import { MODELS_CHANNEL, type JobStore } from './store.js';

export class ModelSync {
  /** Models this process serves because the store listed them live (only those go when they stop being). */
  private readonly fromStore = new Set<string>();
  private running: Promise<void> | undefined;
  private started = false;
  private again = false;
  private closed = false;

  constructor(
    private readonly store: JobStore,
    private readonly dirs: DataDir,
    private readonly models: ServedModels,
    private readonly log: (line: string) => void,
  ) {}

  /** Serves the store's models now and follows its changes from here on. */
  async start(): Promise<void> {
    await this.store.listen(MODELS_CHANNEL, () => this.request());
    await this.sync();
    this.started = true;
    if (this.again) {
      // announced while the first sync ran
      this.again = false;
      this.request();
    }
  }

  /** Syncs again (once more after the sync in progress, if one is). */
  request(): void {
    if (this.closed) return;
    if (this.running || !this.started) {
      this.again = true;
      return;
    }
    this.running = this.sync()
      .catch((e) => this.log(`could not follow the stored models: ${(e as Error).message}`))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.request();
        }
      });
  }

  private async sync(): Promise<void> {
    const live = await this.store.listModels(false); // oldest first
    const ids = new Set(live.map((m) => m.id));
    const newest = new Set(live.filter((m) => !isCheckpointModelId(m.id)).slice(-LOADED_FINETUNED).map((m) => m.id));
    for (const id of [...this.fromStore]) {
      if (ids.has(id)) continue;
      this.fromStore.delete(id);
      if (!this.models.has(id)) continue;
      this.log(`model ${id}: deleted; no longer serving it`);
      await this.models.remove(id);
    }
    for (const m of live) {
      if (this.fromStore.has(m.id) || this.closed) continue;
      const dir = this.dirs.abs(m.dir);
      if (this.models.has(m.id)) {
        if (this.models.isFinetuned(m.id)) this.fromStore.add(m.id); // published by this process
        else this.log(`model ${m.id}: a base model has the same id; the finetuned one is not served`);
        continue;
      }
      if (!fs.existsSync(`${dir}/config.json`)) {
        // Only the process that owns the folder may call it gone: on a shared volume it may not be visible here yet.
        if (this.store.engine === 'sqlite') {
          this.log(`model ${m.id}: its folder ${dir} is gone; no longer serving it`);
          await this.store.markModelDeleted(m.id);
        } else this.log(`model ${m.id}: its folder ${dir} is not there; not serving it (is the data folder shared with the other replicas?)`);
        continue;
      }
      this.fromStore.add(m.id);
      if (this.started || !newest.has(m.id)) {
        this.models.addOnDemand(m.id, dir); // loads at its first request
        continue;
      }
      const served = this.models.add(m.id, dir);
      served.ready.catch((e) => this.log(`model ${m.id} failed to load: ${(e as Error).message}`));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }
}
