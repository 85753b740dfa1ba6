/**
 * Reads RuntimePolicy documents (YAML or JSON, several per file) and validates them
 * against the schema, with one precise message per error: file, JSON path, expected, found.
 */
import { readFileSync } from "node:fs";
import type { TSchema } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { parseAllDocuments } from "yaml";
import { InputError } from "./input-error.ts";
import { RuntimePolicyDocument, type RuntimePolicy } from "./schema.ts";

/** What the sidecar runs with when no policy is given: every forensics switch on, audit. */
export function defaultPolicy(): RuntimePolicy {
  return withDefaults({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: "default-forensics" } });
}

function withDefaults(document: unknown): RuntimePolicy {
  const copy = structuredClone(document) as Record<string, unknown>;
  copy.spec ??= {};
  return Value.Default(RuntimePolicyDocument, copy) as RuntimePolicy;
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** TypeBox says "Expected union value" for enums; name the allowed values instead. */
function expected(schema: TSchema, message: string): string {
  const options = (schema.anyOf as TSchema[] | undefined)?.map((s) => s.const as unknown);
  if (options !== undefined && options.every((o) => o !== undefined)) {
    return `expected one of ${options.map((o) => JSON.stringify(o)).join(", ")}`;
  }
  return message.charAt(0).toLowerCase() + message.slice(1);
}

/** Validates one parsed document; returns the policy with defaults applied. */
export function validatePolicy(document: unknown, source: string): RuntimePolicy {
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new InputError([`${source}: expected a RuntimePolicy object, found ${describe(document)}`]);
  }
  const policy = withDefaults(document);
  const problems = [...Value.Errors(RuntimePolicyDocument, policy)].map(
    (e) => `${source}: ${e.path || "/"}: ${expected(e.schema, e.message)}, found ${describe(e.value)}`,
  );
  problems.push(...selectorProblems(policy, source));
  if (problems.length > 0) throw new InputError(problems);
  return policy;
}

/** What the schema cannot say about label selectors, as Kubernetes validates them. */
function selectorProblems(policy: RuntimePolicy, source: string): string[] {
  const problems: string[] = [];
  for (const which of ["namespaceSelector", "podSelector"] as const) {
    policy.spec.scope?.[which]?.matchExpressions?.forEach((e, i) => {
      const path = `${source}: /spec/scope/${which}/matchExpressions/${i}/values`;
      const needsValues = e.operator === "In" || e.operator === "NotIn";
      if (needsValues && (e.values ?? []).length === 0) problems.push(`${path}: expected at least one value for operator ${e.operator}, found ${describe(e.values)}`);
      if (!needsValues && (e.values ?? []).length > 0) problems.push(`${path}: expected no values for operator ${e.operator}, found ${describe(e.values)}`);
    });
  }
  return problems;
}

/** Every document in a YAML/JSON text, validated; errors from all documents together. */
export function parsePolicies(text: string, file: string): RuntimePolicy[] {
  const documents = parseAllDocuments(text);
  const policies: RuntimePolicy[] = [];
  const problems: string[] = [];
  documents.forEach((doc, index) => {
    const source = documents.length > 1 ? `${file} (document ${index + 1})` : file;
    if (doc.errors.length > 0) {
      problems.push(...doc.errors.map((e) => `${source}: line ${e.linePos?.[0]?.line ?? "?"}: ${e.message.split("\n")[0]}`));
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (err) {
      // Parsed but not resolvable, e.g. an alias to an anchor that is not there.
      problems.push(`${source}: ${(err as Error).message.split("\n")[0]}`);
      return;
    }
    if (value == null) return;
    try {
      policies.push(validatePolicy(value, source));
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      problems.push(...err.problems);
    }
  });
  if (problems.length > 0) throw new InputError(problems);
  if (policies.length === 0) throw new InputError([`${file}: no RuntimePolicy document found`]);
  return policies;
}

export function readPolicyText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new InputError([`${file}: cannot read policy file: ${(err as Error).message}`]);
  }
}

export function loadPolicyFile(file: string): RuntimePolicy[] {
  return parsePolicies(readPolicyText(file), file);
}
