/**
 * Every real-world workload of ../shared/corpus/workloads (see its NOTICE) through
 * `inject`: the output parses, its pods validate against the Kubernetes schema, the patch
 * turns input into output, removal gives back exactly the input (nothing else was
 * changed), and a second pass changes nothing.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import jsonpatch from "fast-json-patch";
import { parseAllDocuments, stringify } from "yaml";
import { defaultInjectorConfig } from "../../webhook/config.ts";
import { injectYaml } from "../../webhook/inject-yaml.ts";
import { podsIn, schemaErrors } from "./webhook-kube-schema.ts";

const CORPUS = new URL("../../../shared/corpus/workloads/", import.meta.url);
const offline = { config: defaultInjectorConfig(), policies: [], namespaceLabels: undefined, clusterDns: undefined };
/** As the webhook sees them: in a namespace, the cluster DNS known, so pods' resolvers are pointed at the forwarder. */
const inCluster = { ...offline, clusterDns: { nameservers: ["10.96.0.10"], domain: "cluster.local" } };

const documentsOf = (text: string): unknown[] =>
  parseAllDocuments(text, { version: "1.1" })
    .map((d) => d.toJS() as unknown)
    .filter((d) => d != null);

/** The documents as `kubectl apply -n corpus` would create them. */
function inNamespace(text: string): string {
  return documentsOf(text)
    .map((d) => {
      const metadata = ((d as { metadata?: Record<string, unknown> }).metadata ??= {});
      metadata.namespace ??= "corpus";
      return stringify(d, { version: "1.1" });
    })
    .join("---\n");
}

describe("inject over the real-world corpus", () => {
  it("finds the corpus next to the repository", () => {
    assert.ok(existsSync(CORPUS), `${CORPUS.pathname} is missing: the corpus test needs ../shared/corpus/workloads`);
  });
  if (!existsSync(CORPUS)) return;
  const files = readdirSync(CORPUS).filter((f) => f.endsWith(".yaml")).sort();

  it("has workloads to test", () => assert.ok(files.length >= 50, `${files.length} files`));

  let injectedPods = 0;
  let pointedPods = 0;
  for (const [file, context] of files.flatMap((f) => [[f, offline] as const, [f, inCluster] as const])) {
    it(`${file}${context === inCluster ? " (in a namespace, cluster DNS known)" : ""}`, () => {
      const raw = readFileSync(new URL(file, CORPUS), "utf8");
      const text = context === inCluster ? inNamespace(raw) : raw;
      const inputs = documentsOf(text);
      const first = injectYaml(text, file, context);
      const outputs = documentsOf(first.output);
      assert.equal(outputs.length, inputs.length, "one output document per input document");

      const podsBefore = inputs.flatMap(podsIn);
      const podsAfter = outputs.flatMap(podsIn);
      assert.equal(first.patches.length, podsAfter.length, "every pod injected");
      podsAfter.forEach((pod, p) => {
        const before = podsBefore[p]!;
        const patched = jsonpatch.applyPatch(structuredClone(before), first.patches[p]!.patch, true, false).newDocument;
        assert.deepEqual(patched, pod, `the patch turns pod ${p} into its output`);
        // The schema holds for the output wherever it held for the input (some inputs are deliberately odd).
        if (schemaErrors(before).length === 0) assert.deepEqual(schemaErrors(pod), [], `pod ${p}`);
      });
      injectedPods += podsAfter.length;
      pointedPods += podsAfter.filter((pod) => (pod as { spec?: { dnsPolicy?: string } }).spec?.dnsPolicy === "None").length;

      const removed = injectYaml(first.output, file, context, "remove");
      assert.deepEqual(documentsOf(removed.output), inputs, "removing the injection gives back the input exactly");
      const second = injectYaml(first.output, file, context);
      assert.equal(second.output, first.output, "a second pass changes nothing");
    });
  }

  after(() => {
    assert.ok(injectedPods > 0);
    assert.ok(pointedPods > 0, "some pods' resolvers were pointed at the DNS forwarder");
  });
});
