/**
 * Golden files: test/fixtures/inject/X.yaml → X.injected.yaml (the `inject` output, with
 * its messages as leading comments) and X.patch.json (per injected pod, the JSON patch the
 * webhook answers). A fixture's first lines may hold `# args: ...` (inject
 * options) and `# env: NAME=value ...` (the injector's environment).
 * `npm run inject:update-golden` rewrites the expected files.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { parseInjectArgs } from "../../webhook/inject-command.ts";
import { injectYaml } from "../../webhook/inject-yaml.ts";
import { podsIn, schemaErrors } from "./webhook-kube-schema.ts";

const DIR = new URL("../fixtures/inject/", import.meta.url);
const UPDATE = process.env.UPDATE_GOLDEN === "1";

const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith(".yaml") && !f.endsWith(".injected.yaml"))
  .sort();

function header(text: string, key: string): string[] {
  const line = text.split("\n").find((l) => l.startsWith(`# ${key}: `));
  return line === undefined ? [] : line.slice(`# ${key}: `.length).trim().split(/\s+/);
}

/** Runs `input` (default: the fixture) the way `microenforcer inject -f` would, with the fixture's header. */
function runFixture(name: string, input?: string) {
  const text = readFileSync(new URL(name, DIR), "utf8");
  const env = Object.fromEntries(header(text, "env").map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]));
  const request = parseInjectArgs([...header(text, "args"), "-f", name], env);
  return injectYaml(input ?? text, name, request.context, request.mode);
}

function goldenText(result: ReturnType<typeof runFixture>): string {
  return result.messages.map((m) => `# ${m}\n`).join("") + result.output;
}

function check(file: string, actual: string): void {
  const url = new URL(file, DIR);
  if (UPDATE) writeFileSync(url, actual);
  let expected: string;
  try {
    expected = readFileSync(url, "utf8");
  } catch {
    assert.fail(`${file} is missing: run npm run inject:update-golden and review it`);
  }
  assert.equal(actual, expected, `${file} differs: if the change is intended, run npm run inject:update-golden and review the diff`);
}

describe("inject golden files", () => {
  it("has at least 20 fixtures", () => {
    assert.ok(fixtures.length >= 20, `${fixtures.length} fixtures`);
  });

  for (const fixture of fixtures) {
    const base = fixture.slice(0, -".yaml".length);
    describe(fixture, () => {
      const result = runFixture(fixture);

      it("matches the golden output and patch", () => {
        check(`${base}.injected.yaml`, goldenText(result));
        check(`${base}.patch.json`, `${JSON.stringify(result.patches, null, 2)}\n`);
      });

      it("changes nothing on a second pass", () => {
        const again = runFixture(fixture, result.output);
        assert.equal(again.output, result.output);
        assert.deepEqual(again.patches, []);
      });

      it("yields pods that validate against the Kubernetes schema", () => {
        for (const doc of parseAllDocuments(result.output, { version: "1.1" })) {
          for (const pod of podsIn(doc.toJS())) assert.deepEqual(schemaErrors(pod), []);
        }
      });
    });
  }
});
