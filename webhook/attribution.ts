/**
 * MICROENFORCER_CONTAINER=<name> on every container but ours (the sidecar, the preload
 * installer): the sensor attributes processes by it. A value the pod set itself is
 * overruled: a container could otherwise pass its processes off as another container's.
 */
import { ensureArray, isObject, stringAt } from "./json.ts";
import { CONTAINER_ENV } from "../microenforcer/sidecar-contract.ts";
import { isOurContainer } from "./keys.ts";

export interface Attribution {
  /** Containers given the variable (it was missing or wrong). */
  set: string[];
  /** What the pod had said where it was wrong: one warning each. */
  warnings: string[];
}

export function attributeContainers(containers: unknown[]): Attribution {
  const result: Attribution = { set: [], warnings: [] };
  for (const container of containers) {
    const name = stringAt(container, "name");
    if (!isObject(container) || name === undefined || isOurContainer(name)) continue;
    const env = ensureArray(container, "env");
    const own = env.filter((e) => stringAt(e, "name") === CONTAINER_ENV);
    if (own.length === 1 && isObject(own[0]) && own[0].value === name && own[0].valueFrom === undefined) continue;
    if (own.length > 0) {
      result.warnings.push(`container ${name} sets ${CONTAINER_ENV} itself (${JSON.stringify(own.map((e) => (isObject(e) ? (e.value ?? "valueFrom") : e)))}); overruled with its own name`);
      container.env = env.filter((e) => stringAt(e, "name") !== CONTAINER_ENV);
    }
    ensureArray(container, "env").push({ name: CONTAINER_ENV, value: name });
    result.set.push(name);
  }
  return result;
}
