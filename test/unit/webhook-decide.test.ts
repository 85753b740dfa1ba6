import assert from "node:assert/strict";
import { decide, type DecideInput } from "../../webhook/decide.ts";

const pod = (metadata: object = {}, spec: object = {}) => ({ metadata, spec: { containers: [{ name: "app", image: "app:1" }], ...spec } });
const enabled = { "microenforcer.dev/injection": "enabled" };

function input(overrides: Partial<DecideInput> = {}): DecideInput {
  return { pod: pod(), namespace: "shop", namespaceLabels: enabled, injectorNamespace: "microenforcer-system", nativeSidecars: true, ...overrides };
}

const reasonOf = (overrides: Partial<DecideInput>) => decide(input(overrides)).reason;

describe("webhook/decide", () => {
  it("injects in a labelled namespace, natively by default", () => {
    assert.deepEqual(decide(input()), { inject: true, reason: "namespace-enabled", native: true, warnings: [] });
  });

  it("takes every pod as in scope without cluster access", () => {
    assert.equal(reasonOf({ namespaceLabels: undefined }), "in-scope");
  });

  it("skips a namespace without the label unless the pod opts in", () => {
    assert.equal(reasonOf({ namespaceLabels: { team: "a" } }), "namespace-not-enabled");
    assert.equal(reasonOf({ namespaceLabels: { "microenforcer.dev/injection": "disabled" } }), "namespace-not-enabled");
    assert.equal(reasonOf({ namespaceLabels: {}, pod: pod({ annotations: { "microenforcer.dev/inject": "true" } }) }), "pod-opted-in");
  });

  it("lets the pod's label win over its annotation, and the pod over the namespace", () => {
    const both = pod({ labels: { "microenforcer.dev/inject": "false" }, annotations: { "microenforcer.dev/inject": "true" } });
    assert.equal(reasonOf({ pod: both }), "pod-opted-out");
  });

  it("ignores an inject value that is not true/false, with a warning", () => {
    const decision = decide(input({ pod: pod({ labels: { "microenforcer.dev/inject": "yes" } }) }));
    assert.equal(decision.reason, "namespace-enabled");
    assert.match(decision.warnings[0]!, /"yes" is neither "true" nor "false"/);
  });

  it("never injects system namespaces or the injector's own pods, even when asked", () => {
    const optIn = pod({ labels: { "microenforcer.dev/inject": "true" } });
    assert.equal(reasonOf({ namespace: "kube-system", pod: optIn }), "system-namespace");
    assert.equal(reasonOf({ namespace: "microenforcer-system", pod: optIn }), "injector-pod");
    assert.equal(reasonOf({ pod: pod({ labels: { "app.kubernetes.io/name": "microenforcer-injector" } }) }), "injector-pod");
  });

  it("reads the namespace from the pod when the request has none", () => {
    assert.equal(reasonOf({ namespace: undefined, pod: pod({ namespace: "kube-public" }) }), "system-namespace");
  });

  it("leaves injected, hostPID, Windows and name-clashing pods alone", () => {
    assert.equal(reasonOf({ pod: pod({ annotations: { "microenforcer.dev/status": "{}" } }) }), "already-injected");
    assert.equal(reasonOf({ pod: pod({}, { hostPID: true }) }), "host-pid");
    assert.equal(reasonOf({ pod: pod({}, { os: { name: "windows" } }) }), "windows-pod");
    assert.equal(reasonOf({ pod: pod({}, { nodeSelector: { "kubernetes.io/os": "windows" } }) }), "windows-pod");
    assert.equal(reasonOf({ pod: pod({}, { volumes: [{ name: "microenforcer-spool", emptyDir: {} }] }) }), "name-conflict");
    assert.equal(reasonOf({ pod: pod({}, { initContainers: [{ name: "microenforcer", image: "x" }] }) }), "name-conflict");
  });

  it("chooses the sidecar form from the cluster and the pod's annotation", () => {
    const classic = decide(input({ nativeSidecars: false }));
    assert.ok(classic.inject && !classic.native);
    const optedNative = decide(input({ nativeSidecars: false, pod: pod({ annotations: { "microenforcer.dev/native-sidecar": "true" } }) }));
    assert.ok(optedNative.inject && optedNative.native);
  });

  it("skips run-to-completion pods when only a classic sidecar is possible", () => {
    assert.equal(reasonOf({ nativeSidecars: false, pod: pod({}, { restartPolicy: "Never" }) }), "runs-to-completion");
    assert.equal(reasonOf({ nativeSidecars: true, pod: pod({}, { restartPolicy: "OnFailure" }) }), "namespace-enabled");
  });

  for (const bad of [{}, { spec: {} }, { spec: { containers: "app" } }, { spec: { containers: [null] } }]) {
    it(`skips a malformed object without throwing: ${JSON.stringify(bad)}`, () => {
      assert.equal(reasonOf({ pod: bad }), "invalid-pod");
    });
  }
});
