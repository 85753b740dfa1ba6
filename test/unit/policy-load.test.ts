import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { crdPaths, renderCrdYaml, toStructural } from "../../policies/crd.ts";
import { defaultPolicy, loadPolicyFile, parsePolicies } from "../../policies/load.ts";
import { InputError } from "../../policies/input-error.ts";

const examples = new URL("../../policies/examples/", import.meta.url);

function problemsOf(text: string): string[] {
  try {
    parsePolicies(text, "p.yaml");
  } catch (err) {
    if (err instanceof InputError) return err.problems;
    throw err;
  }
  return [];
}

const header = "apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\n";

describe("RuntimePolicy loading", () => {
  it("validates every example policy", () => {
    const files = readdirSync(examples).filter((f) => f.endsWith(".yaml"));
    assert.ok(files.length >= 3);
    for (const file of files) assert.equal(loadPolicyFile(new URL(file, examples).pathname).length, 1, file);
  });

  it("applies defaults in one place: every forensics switch on, audit, priority 0", () => {
    const [p] = parsePolicies(`${header}spec: {}\n`, "p.yaml");
    assert.deepEqual(p!.spec, {
      enforcementMode: "audit",
      priority: 0,
      forensics: { processActivity: true, fullCommandArguments: true, networkActivity: true, preload: true },
      verdict: { timeoutMs: 250, failure: "allow" },
    });
    assert.deepEqual(defaultPolicy().spec.forensics, p!.spec.forensics);
    const [blocking] = parsePolicies(`${header}spec: {controls: {reverseShell: {}, portScan: {}}}\n`, "p.yaml");
    assert.deepEqual(blocking!.spec.controls, { reverseShell: { block: true }, portScan: { detect: true, distinctPorts: 20, windowSeconds: 10 } });
  });

  it("names file, JSON path, what was expected and what was found", () => {
    assert.deepEqual(problemsOf(`${header}spec:\n  enforcementMode: block\n  forensics: {processActivity: yes-please, bogus: 1}\n  controls: {network: {blockedListenPorts: [70000]}}\n`), [
      'p.yaml: /spec/enforcementMode: expected one of "audit", "enforce", found "block"',
      "p.yaml: /spec/forensics/bogus: unexpected property, found 1",
      'p.yaml: /spec/forensics/processActivity: expected boolean, found "yes-please"',
      "p.yaml: /spec/controls/network/blockedListenPorts/0: expected integer to be less or equal to 65535, found 70000",
    ]);
    assert.match(problemsOf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").join("\n"), /\/apiVersion: expected 'microenforcer.dev\/v1alpha1', found "v1"/);
    assert.deepEqual(problemsOf("a: [\n").length, 1);
    assert.match(problemsOf("- 1\n")[0]!, /expected a RuntimePolicy object/);
  });

  it("checks label selectors as Kubernetes does", () => {
    const scope = (expr: string) => problemsOf(`${header}spec: {scope: {podSelector: {matchExpressions: [${expr}]}}}\n`);
    assert.deepEqual(scope("{key: app, operator: In, values: []}"), ["p.yaml: /spec/scope/podSelector/matchExpressions/0/values: expected at least one value for operator In, found []"]);
    assert.deepEqual(scope("{key: app, operator: Exists, values: [x]}"), ['p.yaml: /spec/scope/podSelector/matchExpressions/0/values: expected no values for operator Exists, found ["x"]']);
    assert.deepEqual(scope("{key: app, operator: NotIn, values: [a]}, {key: tier, operator: DoesNotExist}"), []);
  });

  it("reads every document of a multi-document file and reports errors per document", () => {
    const good = `${header}spec: {}\n`;
    assert.equal(parsePolicies(`${good}---\n${good.replace("name: p", "name: q")}`, "m.yaml").length, 2);
    const problems = problemsOf(`${good}---\n${header}spec: {priority: high}\n`);
    assert.deepEqual(problems, ['p.yaml (document 2): /spec/priority: expected integer, found "high"']);
    assert.deepEqual(problemsOf("# nothing\n"), ["p.yaml: no RuntimePolicy document found"]);
  });
});

describe("RuntimePolicy CRD", () => {
  for (const path of crdPaths) {
    it(`is generated from the schema into ${path} (run \`npm run generate:crd\` after changing policies/schema.ts)`, () => {
      assert.equal(readFileSync(new URL(`../../${path}`, import.meta.url), "utf8"), renderCrdYaml());
    });
  }

  it("turns unions of constants into enums, records into additionalProperties, and drops additionalProperties: false", () => {
    assert.deepEqual(toStructural({ anyOf: [{ const: "a", type: "string" }, { const: "b", type: "string" }], default: "a" }), {
      type: "string",
      enum: ["a", "b"],
      default: "a",
    });
    assert.deepEqual(toStructural({ type: "object", patternProperties: { "^(.*)$": { type: "string" } } }), {
      type: "object",
      additionalProperties: { type: "string" },
    });
    assert.deepEqual(toStructural({ type: "object", additionalProperties: false, properties: { a: { type: "array", items: { type: "integer" } } } }), {
      type: "object",
      properties: { a: { type: "array", items: { type: "integer" } } },
    });
    assert.deepEqual(
      toStructural({ type: "object", default: {}, required: ["mode", "name"], properties: { mode: { type: "string", default: "audit" }, name: { type: "string" } } }),
      { type: "object", default: {}, required: ["name"], properties: { mode: { type: "string", default: "audit" }, name: { type: "string" } } },
      "a defaulted property is not required",
    );
  });
});
