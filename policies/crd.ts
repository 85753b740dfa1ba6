/**
 * The RuntimePolicy CustomResourceDefinition, generated from the TypeBox schema so the
 * API server validates exactly what `policy validate` and the sidecar accept.
 * `npm run generate:crd` writes it into manifests/ and into the Helm chart (which installs
 * it when `crds.install` is on); a test fails when they drift.
 */
import { stringify } from "yaml";
import { RuntimePolicySpec } from "./schema.ts";

type JsonSchema = Record<string, unknown>;

/**
 * TypeBox emits draft-07 JSON Schema; Kubernetes wants a structural schema: enums instead
 * of unions of constants, additionalProperties instead of patternProperties, no
 * `additionalProperties: false` (the API server prunes unknown fields instead), and no
 * `required` for properties it defaults.
 */
export function toStructural(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  const anyOf = schema.anyOf as JsonSchema[] | undefined;
  if (anyOf !== undefined && anyOf.every((s) => s.const !== undefined)) {
    out.type = typeof anyOf[0]!.const;
    out.enum = anyOf.map((s) => s.const);
  }
  for (const [key, value] of Object.entries(schema)) {
    if (key === "anyOf" && out.enum !== undefined) continue;
    if (key === "additionalProperties" && value === false) continue;
    if (key === "required") {
      // The API server fills in defaults before it validates: a property with a default is
      // never missing, and an object's own `default: {}` must validate without it.
      const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
      const required = (value as string[]).filter((name) => properties[name]?.default === undefined);
      if (required.length > 0) out.required = required;
    } else if (key === "properties") {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, JsonSchema>).map(([k, v]) => [k, toStructural(v)]));
    } else if (key === "items") {
      out.items = toStructural(value as JsonSchema);
    } else if (key === "patternProperties") {
      out.additionalProperties = toStructural(Object.values(value as Record<string, JsonSchema>)[0]!);
    } else {
      out[key] = value;
    }
  }
  return out;
}

export function runtimePolicyCrd(): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: "runtimepolicies.microenforcer.dev" },
    spec: {
      group: "microenforcer.dev",
      scope: "Cluster",
      names: { plural: "runtimepolicies", singular: "runtimepolicy", kind: "RuntimePolicy", listKind: "RuntimePolicyList", shortNames: ["rp"] },
      versions: [
        {
          name: "v1alpha1",
          served: true,
          storage: true,
          additionalPrinterColumns: [
            { name: "Mode", type: "string", jsonPath: ".spec.enforcementMode" },
            { name: "Priority", type: "integer", jsonPath: ".spec.priority" },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: toStructural(JSON.parse(JSON.stringify(RuntimePolicySpec)) as JsonSchema),
              },
            },
          },
        },
      ],
    },
  };
}

export const crdPaths = ["manifests/crd/runtimepolicies.microenforcer.dev.yaml", "charts/microenforcer/files/runtimepolicies.microenforcer.dev.yaml"];

export function renderCrdYaml(): string {
  return `# Generated from policies/schema.ts by \`npm run generate:crd\`. Do not edit.\n${stringify(runtimePolicyCrd(), { lineWidth: 0, version: "1.1" })}`;
}

if (import.meta.main) {
  const { writeFileSync, mkdirSync } = await import("node:fs");
  for (const path of crdPaths) {
    const target = new URL(`../${path}`, import.meta.url);
    mkdirSync(new URL(".", target), { recursive: true });
    writeFileSync(target, renderCrdYaml());
    process.stdout.write(`wrote ${path}\n`);
  }
}
