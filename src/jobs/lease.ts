// A process's hold on a job or a batch in the shared database: taken by claimJob/claimBatch,
// renewed here every third of its length, so another process takes the row over only after its
// holder died (or hung) for a whole lease. A renewal that finds the row taken means this process
// must stop working on it at once; one that finds the row cancelled tells the holder.
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { JobStore } from './store.js';

/** Who holds leases in this process: the machine, the pid and a nonce (a restarted pid is another holder). */
export const LEASE_OWNER = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;

export const DEFAULT_LEASE_SECONDS = 30;

/** How often an idle runner looks for rows whose lease ran out (and for work it did not hear of): a quarter lease. */
export const lookAgainMs = (leaseMs: number): number => Math.max(250, leaseMs / 4);

export interface LeaseEvents {
  /** The row's status changed under the holder (a cancel from another process). */
  status?: (status: string) => void;
  /** Another process holds the row now: stop without writing anything more for it. */
  lost: () => void;
}

export class Lease {
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  private lastStatus: string | undefined;

  constructor(
    private readonly store: JobStore,
    readonly table: 'jobs' | 'batches',
    readonly id: string,
    private readonly ms: number,
    private readonly on: LeaseEvents,
    private readonly log: (line: string) => void,
  ) {
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(ms / 3)));
  }

  private async renew(): Promise<void> {
    if (this.ended) return;
    let status: string | undefined;
    try {
      status = await this.store.renewLease(this.table, this.id, LEASE_OWNER, this.ms);
    } catch (e) {
      // The database is unreachable: keep trying while the lease lasts; if it runs out meanwhile, the
      // next renewal that gets through finds it taken.
      this.log(`${this.id}: could not renew its lease: ${(e as Error).message}`);
      return;
    }
    if (this.ended) return;
    if (status === undefined) {
      this.stop();
      this.log(`${this.id}: its lease was taken over by another process; stopping here`);
      this.on.lost();
      return;
    }
    if (status !== this.lastStatus) {
      this.lastStatus = status;
      this.on.status?.(status);
    }
  }

  /** Stops renewing (the lease then runs out by itself). */
  stop(): void {
    this.ended = true;
    clearInterval(this.timer);
  }

  /** Stops renewing and gives the row up now, so another process need not wait for the lease to run out. */
  async release(): Promise<void> {
    this.stop();
    await this.store.releaseLease(this.table, this.id, LEASE_OWNER);
  }
}
