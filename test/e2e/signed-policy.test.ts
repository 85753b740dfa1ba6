/**
 * The policy document is authenticated end to end: the injector signs what it embeds and
 * binds it to the pod (a nonce in the sidecar's environment); the running sidecar refuses a
 * document that someone other than the injector put in the annotation — anyone past the
 * ValidatingAdmissionPolicy (an admin's mistake, a compromised controller, a cluster without
 * it) — and one the injector signed for another pod, keeping the policy in force and saying
 * why in an ERROR record. Every policy record carries the document's digest and signer.
 *
 * The forged documents go into the pod's annotation through the API with the injector's
 * ServiceAccount (what a compromised controller holding its rights could do, past the
 * ValidatingAdmissionPolicy); the kubelet writes them into the sidecar's downward-API file.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import type { CollectedLogRecord } from "../infra/otelcol/collector.ts";
import { signDocument } from "../../policies/signed-document.ts";
import { validatePolicy } from "../../policies/load.ts";
import { embeddedPolicy, POLICY_DOCUMENT_ANNOTATION, suiteEnvironment, type Environment } from "./environment.ts";
import { eventually } from "./eventually.ts";
import { INJECTOR_NAMESPACE } from "./injector.ts";
import type { RunningPod } from "./pods.ts";
import { isClientSession, runClient, startTestNginx } from "./test-nginx.ts";

const POLICY = "signed-audit";
const SPEC = { enforcementMode: "audit", forensics: { processActivity: true, fullCommandArguments: true } };

const isStatus = (text: string) => (r: CollectedLogRecord) => r.eventName === "microenforcer.sensor.status" && String(r.body).includes(text);

describe("e2e: the sidecar runs only the policy document the injector signed for its pod", function () {
  this.timeout(60_000);
  let env: Environment;
  let namespace: string;
  let pod: RunningPod;

  suiteEnvironment("e2e-signed", async (started, ns) => {
    [env, namespace] = [started, ns];
    await env.applyPolicy(POLICY, SPEC, namespace);
    pod = await startTestNginx(env, namespace, POLICY);
    // `kubectl patch` reads the pod first; the injector itself patches without reading.
    await env.kubectl(["--namespace", namespace, "create", "role", "read-pods", "--verb=get", "--resource=pods"]);
    await env.kubectl(["--namespace", namespace, "create", "rolebinding", "injector-reads-pods", "--role=read-pods", `--serviceaccount=${INJECTOR_NAMESPACE}:microenforcer-injector`]);
  });

  /** Puts `document` in the pod's annotation as the injector's ServiceAccount; the kubelet refreshes the file. */
  const annotate = (document: string) =>
    env.kubectl([
      `--as=system:serviceaccount:${INJECTOR_NAMESPACE}:microenforcer-injector`,
      "--namespace",
      namespace,
      "patch",
      "pod",
      pod.name,
      "--type=merge",
      "-p",
      JSON.stringify({ metadata: { annotations: { [POLICY_DOCUMENT_ANNOTATION]: document } } }),
    ]);

  it("starts with the signed document, naming its digest and signer", async () => {
    const [start] = await env.records(pod, isStatus("microenforcer watching this PID namespace with policy"));
    assert.ok(start);
    assert.equal(start.attributes["microenforcer.policy.name"], POLICY);
    assert.match(String(start.attributes["microenforcer.policy.signer"]), /^ed25519:[0-9a-f]{16}$/);
    assert.match(String(start.attributes["microenforcer.policy.digest"]), /^sha256:[0-9a-f]{64}$/);
  });

  it("refuses a forged document (every switch off, unsigned), keeps the policy in force and says why", async () => {
    const off = { apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: POLICY }, spec: { forensics: { processActivity: false, fullCommandArguments: false, networkActivity: false } } };
    await annotate(JSON.stringify(off));
    const [refused] = await env.records(pod, (r) => isStatus("new policy rejected")(r) && String(r.body).includes("not a signed policy document"));
    assert.ok(refused, "the sidecar reported the refusal");
    assert.equal(refused.severityText, "ERROR");
    assert.equal(refused.attributes["microenforcer.policy.name"], POLICY, "names the policy that stays");
    // Still recording processes: the forged document never applied.
    assert.equal((await runClient(pod, "/after-forgery")).code, 0);
    const [session] = await env.records(pod, (r) => isClientSession(r) && String(r.attributes["process.command_line"]).includes("/after-forgery"));
    assert.ok(session, "exec sessions are still recorded");
  });

  it("refuses a document signed with another key, and one the injector signed for another pod", async () => {
    const weak = validatePolicy({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: POLICY }, spec: { forensics: { processActivity: false } } }, "weak");
    await annotate(signDocument(weak, { nonce: "n", namespace }, generateKeyPairSync("ed25519").privateKey, new Date()));
    await env.records(pod, (r) => isStatus("the signature does not verify with the injector's key")(r));
    // The injector's own document for another pod of the namespace (a tenant can read those).
    const other = await env.createPod({ apiVersion: "v1", kind: "Pod", metadata: { generateName: "other-", namespace }, spec: { containers: [{ name: "a", image: env.images.app }] } });
    await annotate(other.metadata.annotations![POLICY_DOCUMENT_ANNOTATION]!);
    const [foreign] = await env.records(pod, (r) => isStatus("the document was signed for another pod")(r));
    assert.ok(foreign);
  });

  it("reloads the injector's next document for this pod, with its digest and signer", async () => {
    await env.applyPolicy(POLICY, { ...SPEC, forensics: { processActivity: true, fullCommandArguments: false } }, namespace);
    await eventually("the injector to update the running pod's policy", async () => {
      const current = await env.getPod(namespace, pod.name);
      return embeddedPolicy(current)?.spec.forensics.fullCommandArguments === false ? current : undefined;
    });
    const [reloaded] = await env.records(pod, isStatus(`policy reloaded: ${POLICY}`));
    assert.ok(reloaded);
    assert.match(String(reloaded.attributes["microenforcer.policy.signer"]), /^ed25519:/);
    const [start] = await env.records(pod, isStatus("microenforcer watching this PID namespace with policy"));
    assert.equal(reloaded.attributes["microenforcer.policy.signer"], start!.attributes["microenforcer.policy.signer"], "the same injector key");
    assert.notEqual(reloaded.attributes["microenforcer.policy.digest"], start!.attributes["microenforcer.policy.digest"]);
  });
});
