/**
 * Runs the socket sensor (net/network-sampler.ts) on the capture worker's thread, on the
 * capture loop's ticks: on while the policy wants network records or controls, polled when
 * due, early when new processes appeared, and a last time at the end.
 */
import type { Owner } from "../net/inode-owners.ts";
import { NetworkSampler, type SamplerOptions } from "../net/network-sampler.ts";
import type { CaptureEvent } from "./events.ts";
import { networkEvents } from "./messages.ts";

/** What the host needs of the processes the worker watches. */
export interface SocketOwners {
  /** Processes that may own sockets. */
  live(): Iterable<Owner>;
  /** A socket of `owner` was just seen: report its exec first if it exec'd since its last look. */
  ownerSeen(owner: Owner, now: number): void;
}

export type PollReason = "timer" | "nudge" | "final";

export class NetworkHost {
  private readonly options: SamplerOptions;
  private sampler: NetworkSampler | undefined;
  private wanted = false;

  constructor(options: SamplerOptions) {
    this.options = options;
  }

  /** Turns the socket sensor on or off; an error event when it cannot run here. */
  set(on: boolean): CaptureEvent[] {
    if (on === this.wanted) return [];
    this.wanted = on;
    if (!on) {
      this.close();
      return [];
    }
    try {
      this.sampler = new NetworkSampler(this.options);
      return [];
    } catch (err) {
      return [{ type: "error", message: `network sensor unavailable: ${(err as Error).message}` }];
    }
  }

  /** When the next poll is due (Infinity: when the loop ticks anyway, or never). */
  nextDueAt(): number {
    return this.sampler?.nextDueAt() ?? Infinity;
  }

  /** One poll, when due: what the read found, as network events (owners' execs are reported first, through `owners`). */
  poll(now: number, reason: PollReason, owners: SocketOwners): CaptureEvent[] {
    if (this.sampler === undefined) return [];
    const sample = this.sampler.poll(now, () => owners.live(), reason);
    if (sample === undefined || (sample.observations.length === 0 && sample.problems.length === 0 && sample.malformed === 0)) return [];
    for (const { owner } of sample.observations) if (owner !== undefined) owners.ownerSeen(owner, now);
    return networkEvents(sample, now);
  }

  /** TCP connections opened and gone unseen since the last call. */
  takeTcpGap(): number {
    return this.sampler?.takeTcpGap() ?? 0;
  }

  close(): void {
    this.sampler?.close();
    this.sampler = undefined;
  }
}
