/**
 * Narrow views of untrusted JSON (admission requests, YAML the user gave us): every reader
 * tolerates a wrong shape, so a malformed object yields a clear skip or message, never a crash.
 */
export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function objectAt(value: unknown, key: string): JsonObject | undefined {
  if (!isObject(value)) return undefined;
  const child = value[key];
  return isObject(child) ? child : undefined;
}

export function arrayAt(value: unknown, key: string): unknown[] {
  if (!isObject(value)) return [];
  const child = value[key];
  return Array.isArray(child) ? child : [];
}

export function stringAt(value: unknown, key: string): string | undefined {
  if (!isObject(value)) return undefined;
  const child = value[key];
  return typeof child === "string" ? child : undefined;
}

/** Labels and annotations: string values only (anything else is not a valid label anyway). */
export function stringMapAt(value: unknown, key: string): Record<string, string> {
  const map = objectAt(value, key);
  if (map === undefined) return {};
  return Object.fromEntries(Object.entries(map).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
}

/** Gets `parent[key]` as an object, creating it (or replacing a non-object) when needed. */
export function ensureObject(parent: JsonObject, key: string): JsonObject {
  const child = parent[key];
  if (isObject(child)) return child;
  const created: JsonObject = {};
  parent[key] = created;
  return created;
}

/** Gets `parent[key]` as an array, creating it when absent. */
export function ensureArray(parent: JsonObject, key: string): unknown[] {
  const child = parent[key];
  if (Array.isArray(child)) return child;
  const created: unknown[] = [];
  parent[key] = created;
  return created;
}

/**
 * Whether any value lies more than `limit` objects or arrays deep. Iterative on purpose:
 * the point is to refuse, before any recursive code sees it, JSON deep enough to overflow
 * the stack.
 */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== "object" || node === null) continue;
    if (depth >= limit) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}
