/**
 * The RuntimePolicy in force, held in one place. The pipeline's stages (tracker records,
 * engine, network monitor) read `current` each time they decide, so a reload applies from
 * the next event on; what must act on a change (the capture worker's network sensor, the
 * DNS forwarder, the status record that announces it) subscribes.
 */
import type { RuntimePolicy } from "../../policies/schema.ts";

export class PolicyHolder {
  #current: RuntimePolicy;
  readonly #listeners: Array<(policy: RuntimePolicy) => void> = [];

  constructor(initial: RuntimePolicy) {
    this.#current = initial;
  }

  get current(): RuntimePolicy {
    return this.#current;
  }

  /** In force from now on; listeners hear of it in the order they subscribed. */
  set(policy: RuntimePolicy): void {
    this.#current = policy;
    for (const listener of this.#listeners) listener(policy);
  }

  /** Called with every later policy (not with the current one). */
  subscribe(listener: (policy: RuntimePolicy) => void): void {
    this.#listeners.push(listener);
  }
}

/** The socket tables are read when the policy records network activity or has network controls. */
export function networkSensorNeeded(policy: RuntimePolicy): boolean {
  const controls = policy.spec.controls;
  return policy.spec.forensics.networkActivity || controls?.network !== undefined || controls?.portScan?.detect === true;
}
