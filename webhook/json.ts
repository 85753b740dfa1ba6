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

/**
 * Labels and annotations: string values only (anything else is not a valid label anyway).
 * The map itself when it holds only strings (read it, never change it): copying a hostile
 * review's 100 000 labels on every look was most of its cost.
 */
export function stringMapAt(value: unknown, key: string): Readonly<Record<string, string>> {
  const map = objectAt(value, key);
  if (map === undefined) return {};
  for (const k in map) {
    if (typeof map[k] !== "string") return Object.fromEntries(Object.entries(map).filter((entry): entry is [string, string] => typeof entry[1] === "string"));
  }
  return map as Record<string, string>;
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
  // Two stacks rather than one of [node, depth] pairs: no allocation per node.
  const nodes: unknown[] = [value];
  const depths: number[] = [0];
  while (nodes.length > 0) {
    const node = nodes.pop();
    const depth = depths.pop()!;
    if (typeof node !== "object" || node === null) continue;
    if (depth >= limit) return true;
    if (Array.isArray(node)) {
      for (const child of node) {
        if (typeof child !== "object" || child === null) continue;
        nodes.push(child);
        depths.push(depth + 1);
      }
    } else {
      for (const k in node) {
        const child = (node as JsonObject)[k];
        if (typeof child !== "object" || child === null) continue;
        nodes.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const BRACE = 0x7b;
const BRACKET = 0x5b;

/**
 * Whether JSON text holds more than `limit` values (roughly: commas and openings outside
 * strings), read from the bytes before parsing: what a review costs to parse, copy and diff
 * grows with its values, not its bytes.
 */
export function jsonValuesMoreThan(bytes: Uint8Array, limit: number): boolean {
  let count = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if ((byte === COMMA || byte === BRACE || byte === BRACKET) && ++count > limit) {
      return true;
    }
  }
  return false;
}
