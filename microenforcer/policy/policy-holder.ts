/**
 * The RuntimePolicy in force, held in one place. The pipeline's stages (tracker records,
 * engine, network monitor) read `current` each time they decide, so a reload applies from
 * the next event on; what must act on a change (the capture worker's network sensor, the
 * DNS forwarder, the status record that announces it) subscribes.
 */
import type { RuntimePolicy } from "../../policies/schema.ts";
import type { DocumentSource } from "../../policies/signed-document.ts";

export class PolicyHolder {
  #current: RuntimePolicy;
  #source: DocumentSource | undefined;
  readonly #listeners: Array<(policy: RuntimePolicy, source: DocumentSource | undefined) => void> = [];

  constructor(initial: RuntimePolicy, source?: DocumentSource) {
    this.#current = initial;
    this.#source = source;
  }

  get current(): RuntimePolicy {
    return this.#current;
  }

  /** The document the policy in force was read from (digest, signer); undefined for the built-in default. */
  get source(): DocumentSource | undefined {
    return this.#source;
  }

  /** In force from now on; listeners hear of it in the order they subscribed. */
  set(policy: RuntimePolicy, source?: DocumentSource): void {
    this.#current = policy;
    this.#source = source;
    for (const listener of this.#listeners) listener(policy, source);
  }

  /** Called with every later policy (not with the current one). */
  subscribe(listener: (policy: RuntimePolicy, source: DocumentSource | undefined) => void): void {
    this.#listeners.push(listener);
  }
}

/** The socket tables are read when the policy records network activity or has network controls. */
export function networkSensorNeeded(policy: RuntimePolicy): boolean {
  const controls = policy.spec.controls;
  return policy.spec.forensics.networkActivity || controls?.network !== undefined || controls?.portScan?.detect === true;
}

/** Interpreters' stdio is read at first sight while the policy looks for reverse shells. */
export function stdioNeeded(policy: RuntimePolicy): boolean {
  return policy.spec.controls?.reverseShell !== undefined;
}
