/**
 * The decision table, Linkerd-style: each pod label/annotation and pod state × each
 * namespace mode, with the action and reason the injector must reach. A pod's owner
 * writes everything in the rows; only the columns (the namespace label) are an admin's.
 */
import assert from "node:assert/strict";
import { decide, type DecideInput, type Decision } from "../../webhook/decide.ts";
import type { Presence } from "../../webhook/genuine.ts";

type Pod = { metadata: Record<string, unknown>; spec: Record<string, unknown> };
const pod = (metadata: Record<string, unknown> = {}, spec: Record<string, unknown> = {}): Pod => ({ metadata, spec: { containers: [{ name: "app", image: "app:1" }], ...spec } });
const MODES = {
  required: { "microenforcer.dev/injection": "required" },
  enabled: { "microenforcer.dev/injection": "enabled" },
  off: { team: "a" },
  "no cluster access": undefined,
} as const;
type Mode = keyof typeof MODES;

function input(overrides: Partial<DecideInput> = {}): DecideInput {
  return {
    pod: pod(),
    namespace: "shop",
    namespaceLabels: MODES.enabled,
    injectorNamespace: "microenforcer-system",
    injectorServiceAccount: "microenforcer-injector",
    nativeSidecars: true,
    ours: { sidecar: "absent" },
    ...overrides,
  };
}

/** "inject:<reason>[:classic]", "skip:<reason>" or "refuse:<reason>". */
function outcome(decision: Decision): string {
  if (decision.action === "inject") return `inject:${decision.reason}${decision.native ? "" : ":classic"}`;
  return `${decision.action}:${decision.reason}`;
}

const forged: Presence = { sidecar: "forged", detail: "the pod already has container microenforcer (not the genuine sidecar): image is \"evil\", not \"microenforcer:0.1.0\"" };

interface Row {
  name: string;
  pod?: Pod;
  ours?: Presence;
  expect: Record<Mode, string>;
}

const TABLE: Row[] = [
  {
    name: "a plain pod",
    expect: { required: "inject:namespace-required", enabled: "inject:namespace-enabled", off: "skip:namespace-not-enabled", "no cluster access": "inject:in-scope" },
  },
  {
    name: 'label microenforcer.dev/inject: "false"',
    pod: pod({ labels: { "microenforcer.dev/inject": "false" } }),
    expect: { required: "inject:namespace-required", enabled: "skip:pod-opted-out", off: "skip:pod-opted-out", "no cluster access": "skip:pod-opted-out" },
  },
  {
    name: 'annotation microenforcer.dev/inject: "false"',
    pod: pod({ annotations: { "microenforcer.dev/inject": "false" } }),
    expect: { required: "inject:namespace-required", enabled: "skip:pod-opted-out", off: "skip:pod-opted-out", "no cluster access": "skip:pod-opted-out" },
  },
  {
    name: 'label microenforcer.dev/inject: "true"',
    pod: pod({ labels: { "microenforcer.dev/inject": "true" } }),
    expect: { required: "inject:namespace-required", enabled: "inject:namespace-enabled", off: "inject:pod-opted-in", "no cluster access": "inject:pod-opted-in" },
  },
  {
    name: "annotation microenforcer.dev/status (any value) without the sidecar",
    pod: pod({ annotations: { "microenforcer.dev/status": "x" } }),
    expect: { required: "inject:namespace-required", enabled: "inject:namespace-enabled", off: "skip:namespace-not-enabled", "no cluster access": "inject:in-scope" },
  },
  {
    name: "label app.kubernetes.io/name: microenforcer-injector outside the injector's namespace",
    pod: pod({ labels: { "app.kubernetes.io/name": "microenforcer-injector" } }, { serviceAccountName: "microenforcer-injector" }),
    expect: { required: "inject:namespace-required", enabled: "inject:namespace-enabled", off: "skip:namespace-not-enabled", "no cluster access": "inject:in-scope" },
  },
  {
    name: 'annotation microenforcer.dev/native-sidecar: "false" on a restartPolicy Never pod',
    pod: pod({ annotations: { "microenforcer.dev/native-sidecar": "false" } }, { restartPolicy: "Never" }),
    expect: { required: "inject:namespace-required", enabled: "skip:runs-to-completion", off: "skip:namespace-not-enabled", "no cluster access": "skip:runs-to-completion" },
  },
  {
    name: 'annotation microenforcer.dev/native-sidecar: "false" on a long-running pod',
    pod: pod({ annotations: { "microenforcer.dev/native-sidecar": "false" } }),
    expect: { required: "inject:namespace-required", enabled: "inject:namespace-enabled:classic", off: "skip:namespace-not-enabled", "no cluster access": "inject:in-scope:classic" },
  },
  {
    name: "hostPID: true",
    pod: pod({}, { hostPID: true }),
    expect: { required: "refuse:host-pid", enabled: "skip:host-pid", off: "skip:namespace-not-enabled", "no cluster access": "skip:host-pid" },
  },
  {
    name: "a Windows pod",
    pod: pod({}, { os: { name: "windows" } }),
    expect: { required: "refuse:windows-pod", enabled: "skip:windows-pod", off: "skip:namespace-not-enabled", "no cluster access": "skip:windows-pod" },
  },
  {
    name: "a forged container or volume under our names",
    ours: forged,
    expect: { required: "refuse:name-conflict", enabled: "skip:name-conflict", off: "skip:namespace-not-enabled", "no cluster access": "skip:name-conflict" },
  },
  {
    name: 'a forged sidecar with label microenforcer.dev/inject: "false"',
    pod: pod({ labels: { "microenforcer.dev/inject": "false" } }),
    ours: forged,
    expect: { required: "refuse:name-conflict", enabled: "skip:pod-opted-out", off: "skip:pod-opted-out", "no cluster access": "skip:pod-opted-out" },
  },
  {
    name: "the genuine sidecar",
    ours: { sidecar: "genuine", native: true },
    expect: { required: "skip:already-injected", enabled: "skip:already-injected", off: "skip:already-injected", "no cluster access": "skip:already-injected" },
  },
  {
    name: "no spec.containers",
    pod: { metadata: {}, spec: {} },
    expect: { required: "refuse:invalid-pod", enabled: "skip:invalid-pod", off: "skip:invalid-pod", "no cluster access": "skip:invalid-pod" },
  },
];

describe("webhook/decide", () => {
  describe("decision table: pod state × namespace mode", () => {
    for (const row of TABLE) {
      for (const mode of Object.keys(MODES) as Mode[]) {
        it(`${row.name} in a namespace ${mode === "no cluster access" ? "seen without cluster access" : `labelled ${mode}`} → ${row.expect[mode]}`, () => {
          const decision = decide(input({ pod: row.pod ?? pod(), ours: row.ours ?? { sidecar: "absent" }, namespaceLabels: MODES[mode] }));
          assert.equal(outcome(decision), row.expect[mode]);
        });
      }
    }
  });

  it("says what a required namespace ignored, and counts it", () => {
    const asked = pod({ labels: { "microenforcer.dev/inject": "false" }, annotations: { "microenforcer.dev/native-sidecar": "false" } }, { restartPolicy: "Never" });
    const decision = decide(input({ pod: asked, namespaceLabels: MODES.required }));
    assert.ok(decision.action === "inject" && decision.native);
    assert.deepEqual(decision.overruled, ["microenforcer.dev/inject", "microenforcer.dev/native-sidecar"]);
    assert.match(decision.warnings[0]!, /microenforcer\.dev\/inject: "false" ignored: the namespace requires the MicroEnforcer/);
    assert.match(decision.warnings[1]!, /native-sidecar: "false" ignored/);
  });

  it("refuses with a message naming the namespace's requirement and the cause", () => {
    const decision = decide(input({ namespaceLabels: MODES.required, ours: forged }));
    assert.equal(decision.action, "refuse");
    assert.match((decision as { detail: string }).detail, /^the namespace requires the MicroEnforcer \(microenforcer\.dev\/injection=required\), and the pod already has container microenforcer \(not the genuine sidecar\): image is "evil"/);
  });

  it("blames Kubernetes < 1.29 only when the cluster has no native sidecars", () => {
    const job = pod({ annotations: { "microenforcer.dev/native-sidecar": "false" } }, { restartPolicy: "OnFailure" });
    const byPod = decide(input({ pod: job }));
    assert.equal(outcome(byPod), "skip:runs-to-completion");
    assert.doesNotMatch((byPod as { detail: string }).detail, /1\.29/);
    assert.match((byPod as { detail: string }).detail, /the pod asks for a classic sidecar/);
    const oldCluster = decide(input({ pod: pod({}, { restartPolicy: "Never" }), nativeSidecars: false, namespaceLabels: MODES.required }));
    assert.equal(outcome(oldCluster), "refuse:runs-to-completion");
    assert.match((oldCluster as { detail: string }).detail, /this cluster has no native sidecars \(Kubernetes < 1\.29\)/);
  });

  it("keeps the native-sidecar override in enabled namespaces, both ways", () => {
    assert.equal(outcome(decide(input({ nativeSidecars: false }))), "inject:namespace-enabled:classic");
    const optedNative = pod({ annotations: { "microenforcer.dev/native-sidecar": "true" } });
    assert.equal(outcome(decide(input({ nativeSidecars: false, pod: optedNative }))), "inject:namespace-enabled");
  });

  it("ignores an inject value that is not true/false, with a warning", () => {
    const decision = decide(input({ pod: pod({ labels: { "microenforcer.dev/inject": "yes" } }) }));
    assert.equal(outcome(decision), "inject:namespace-enabled");
    assert.match(decision.warnings[0]!, /"yes" is neither "true" nor "false"/);
  });

  it("lets the pod's label win over its annotation in enabled namespaces", () => {
    const both = pod({ labels: { "microenforcer.dev/inject": "false" }, annotations: { "microenforcer.dev/inject": "true" } });
    assert.equal(outcome(decide(input({ pod: both }))), "skip:pod-opted-out");
  });

  it("recognises the injector's pods by namespace and ServiceAccount, never by a label", () => {
    const injector = pod({}, { serviceAccountName: "microenforcer-injector" });
    assert.equal(outcome(decide(input({ namespace: "microenforcer-system", pod: injector, namespaceLabels: MODES.required }))), "skip:injector-pod");
    assert.equal(outcome(decide(input({ namespace: "microenforcer-system", pod: pod(), namespaceLabels: MODES.required }))), "skip:injector-namespace");
    assert.equal(outcome(decide(input({ namespace: "tenant", pod: injector, namespaceLabels: MODES.required }))), "inject:namespace-required");
  });

  it("never injects system namespaces, whatever their labels", () => {
    assert.equal(outcome(decide(input({ namespace: "kube-system", namespaceLabels: MODES.required }))), "skip:system-namespace");
    assert.equal(outcome(decide(input({ namespace: undefined, pod: pod({ namespace: "kube-public" }) }))), "skip:system-namespace");
  });

  for (const bad of [{}, { spec: {} }, { spec: { containers: "app" } }, { spec: { containers: [null] } }]) {
    it(`skips a malformed object without throwing: ${JSON.stringify(bad)}`, () => {
      assert.equal(outcome(decide(input({ pod: bad }))), "skip:invalid-pod");
    });
  }
});
