/**
 * Which reviews the admission server takes on, and where, decided from the request's
 * headers before a byte of its body is read. A real pod's review is a few KiB: those are
 * answered on the main thread as they come. Bigger ones cost more (parsing, copying and
 * diffing grow with the body), so they take turns: up to `mediumBytes` one at a time on the
 * main thread, each after the small ones waiting at that moment; beyond that (or of
 * undeclared length) on the review worker, one at a time, off the main thread. So a handful
 * of clients sending maximal bodies cannot hold up the ordinary reviews. Beyond the bounds
 * a review is turned away (429) at once: the apiserver then applies the failurePolicy.
 */
import { setImmediate as yieldToIo } from "node:timers/promises";

export type Lane = "small" | "medium" | "large";

export interface GateLimits {
  /** Largest declared body answered at once on the main thread. */
  smallBytes: number;
  /** Largest declared body answered on the main thread (one at a time); larger ones go to the worker. */
  mediumBytes: number;
  /** Reviews being read, waiting or answered at once, per lane. */
  reviews: Record<Lane, number>;
}

export const DEFAULT_GATE_LIMITS: GateLimits = { smallBytes: 16 * 1024, mediumBytes: 64 * 1024, reviews: { small: 256, medium: 32, large: 4 } };

export type Admission = { lane: Lane; leave: () => void } | { refused: string };

export class ReviewGate {
  private readonly limits: GateLimits;
  private readonly busy: Record<Lane, number> = { small: 0, medium: 0, large: 0 };
  private mediumTurn: Promise<void> = Promise.resolve();

  constructor(limits: GateLimits = DEFAULT_GATE_LIMITS) {
    this.limits = limits;
  }

  laneFor(declaredBytes: number | undefined): Lane {
    if (declaredBytes === undefined || declaredBytes > this.limits.mediumBytes) return "large";
    return declaredBytes > this.limits.smallBytes ? "medium" : "small";
  }

  enter(declaredBytes: number | undefined): Admission {
    const lane = this.laneFor(declaredBytes);
    const limit = this.limits.reviews[lane];
    if (this.busy[lane] >= limit) return { refused: `${limit} ${lane} reviews in progress` };
    this.busy[lane]++;
    let left = false;
    return {
      lane,
      leave: () => {
        if (!left) this.busy[lane]--;
        left = true;
      },
    };
  }

  /** Runs a medium review's work once the medium reviews before it are done and pending I/O has had its turn. */
  inMediumTurn<T>(work: () => Promise<T>): Promise<T> {
    const run = this.mediumTurn.then(async () => {
      await yieldToIo();
      return work();
    });
    this.mediumTurn = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}
