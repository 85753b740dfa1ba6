/**
 * "Already injected" means the genuine sidecar: what render added, as the apiserver stores
 * it (with its defaults), and nothing a pod's owner could have written instead.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { attributeContainers } from "../../webhook/attribution.ts";
import { defaultInjectorConfig } from "../../webhook/config.ts";
import { inspectSidecar, type Presence } from "../../webhook/genuine.ts";
import type { JsonObject } from "../../webhook/json.ts";
import { defaultPolicy } from "../../policies/load.ts";
import { signerFrom } from "../../webhook/policy-document.ts";
import { render } from "../../webhook/render.ts";

const config = defaultInjectorConfig();
const expectation = { config, podSecurityLevel: "privileged" as const };
const app = (): JsonObject => ({ metadata: { name: "web" }, spec: { containers: [{ name: "web", image: "nginx", securityContext: { runAsUser: 1000 } }] } });
const injected = (native = true): any => render({ pod: app(), config, policy: defaultPolicy(), podSecurityLevel: "privileged", native, namespace: "shop", clusterDns: { nameservers: ["10.96.0.10"], domain: "cluster.local" } }).pod; // eslint-disable-line @typescript-eslint/no-explicit-any

/** What the apiserver's defaulting adds to the sidecar and its volumes before a later webhook sees them. */
function withApiDefaults(pod: any): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  const copy = structuredClone(pod);
  for (const c of [...(copy.spec.initContainers ?? []), ...copy.spec.containers]) {
    c.terminationMessagePath = "/dev/termination-log";
    for (const e of c.env ?? []) if (e.valueFrom?.fieldRef) e.valueFrom.fieldRef.apiVersion = "v1";
  }
  for (const v of copy.spec.volumes) {
    if (v.downwardAPI) {
      v.downwardAPI.defaultMode = 420;
      for (const item of v.downwardAPI.items) item.fieldRef.apiVersion = "v1";
    }
  }
  return copy;
}

/** The native sidecar among the init containers (the preload installer runs before it). */
const sidecarOf = (pod: any): any => pod.spec.initContainers.find((c: { name: string }) => c.name === "microenforcer"); // eslint-disable-line @typescript-eslint/no-explicit-any

const forgedDetail = (presence: Presence) => {
  assert.equal(presence.sidecar, "forged");
  return (presence as { detail: string }).detail;
};

describe("webhook/genuine", () => {
  it("finds nothing in a plain pod", () => {
    assert.deepEqual(inspectSidecar(app(), expectation), { sidecar: "absent" });
  });

  it("recognises what render added, in both forms, also after the apiserver's defaulting", () => {
    assert.deepEqual(inspectSidecar(injected(), expectation), { sidecar: "genuine", native: true });
    assert.deepEqual(inspectSidecar(injected(false), expectation), { sidecar: "genuine", native: false });
    assert.deepEqual(inspectSidecar(withApiDefaults(injected()), expectation), { sidecar: "genuine", native: true });
  });

  it("is not fooled by annotations: the status annotation alone proves nothing", () => {
    const pod = app() as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    pod.metadata.annotations = injected().metadata.annotations;
    assert.deepEqual(inspectSidecar(pod, expectation), { sidecar: "absent" });
  });

  const tampered: Array<[string, (pod: any) => void, RegExp]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ["another image", (p) => (sidecarOf(p).image = "registry.example/evil:1"), /image is "registry\.example\/evil:1", not "microenforcer:0\.1\.0"/],
    ["another command", (p) => (sidecarOf(p).command = ["sh", "-c", "sleep infinity"]), /command is/],
    ["args appended to the command", (p) => (sidecarOf(p).args = ["--policy", "/tmp/weak.json"]), /args is set .*the injector sets no args/],
    ["an extra variable", (p) => sidecarOf(p).env.push({ name: "OTEL_SDK_DISABLED", value: "true" }), /env is/],
    ["envFrom", (p) => (sidecarOf(p).envFrom = [{ configMapRef: { name: "mine" } }]), /envFrom is set/],
    ["a weaker securityContext", (p) => (sidecarOf(p).securityContext.runAsUser = 4242), /securityContext\.runAsUser is 4242, not 1000/],
    ["a probe that kills it", (p) => (sidecarOf(p).livenessProbe = { exec: { command: ["false"] } }), /livenessProbe is set/],
    ["the policy volume from another source", (p) => (p.spec.volumes[0] = { name: "microenforcer-policy", configMap: { name: "weak" } }), /volume microenforcer-policy \(not the injector's\)/],
    ["shareProcessNamespace off", (p) => (p.spec.shareProcessNamespace = false), /shareProcessNamespace is not true/],
    ["a second container of that name", (p) => p.spec.containers.push({ ...sidecarOf(p), restartPolicy: undefined }), /2 containers named microenforcer/],
  ];
  for (const [what, change, message] of tampered) {
    it(`calls a sidecar with ${what} forged, and says why`, () => {
      const pod = injected();
      change(pod);
      assert.match(forgedDetail(inspectSidecar(pod, expectation)), message);
    });
  }

  it("calls our names on the pod's own container or volume forged", () => {
    const container = app() as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    container.spec.containers.push({ name: "microenforcer", image: "microenforcer:0.1.0", command: ["sh", "-c", "echo '{\"eventName\":\"microenforcer.process.exec\"}'"] });
    assert.match(forgedDetail(inspectSidecar(container, expectation)), /container microenforcer \(not the genuine sidecar\)/);
    const volume = app() as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    volume.spec.volumes = [{ name: "microenforcer-spool", emptyDir: {} }];
    assert.match(forgedDetail(inspectSidecar(volume, expectation)), /already has volume microenforcer-spool/);
  });

  it("takes the sidecar's own binding nonce, never another key to verify its policy with", () => {
    const signer = signerFrom(generateKeyPairSync("ed25519").privateKey);
    const signing = { ...config, signer };
    const pod = render({ pod: app(), config: signing, policy: defaultPolicy(), podSecurityLevel: "privileged", native: true, namespace: "shop", clusterDns: undefined, binding: { nonce: "abc", namespace: "shop" } }).pod;
    assert.deepEqual(inspectSidecar(pod, { config: signing, podSecurityLevel: "privileged" }), { sidecar: "genuine", native: true });
    const otherKey = { config: { ...config, signer: signerFrom(generateKeyPairSync("ed25519").privateKey) }, podSecurityLevel: "privileged" as const };
    assert.match(forgedDetail(inspectSidecar(pod, otherKey)), /env\[4\]\.value is "MCowBQYDK2Vw/);
    assert.match(forgedDetail(inspectSidecar(pod, expectation)), /env is/, "a signing sidecar is not what an injector without a key adds");
  });

  it("judges the sidecar against the settings of this injector (image, resources)", () => {
    const other = { ...expectation, config: { ...config, image: "registry.example/microenforcer:2.0.0" } };
    assert.match(forgedDetail(inspectSidecar(injected(), other)), /image is "microenforcer:0\.1\.0", not "registry\.example\/microenforcer:2\.0\.0"/);
  });
});

describe("webhook/attribution", () => {
  it("adds MICROENFORCER_CONTAINER where missing and keeps a correct one", () => {
    const containers = [{ name: "a" }, { name: "b", env: [{ name: "MICROENFORCER_CONTAINER", value: "b" }] }];
    assert.deepEqual(attributeContainers(containers), { set: ["a"], warnings: [] });
    assert.deepEqual(containers[0], { name: "a", env: [{ name: "MICROENFORCER_CONTAINER", value: "a" }] });
  });

  it("overrules a container that names itself after another, however it spells it", () => {
    const containers: any[] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
      { name: "miner", env: [{ name: "MICROENFORCER_CONTAINER", value: "web" }] },
      { name: "twice", env: [{ name: "MICROENFORCER_CONTAINER", value: "twice" }, { name: "MICROENFORCER_CONTAINER", value: "web" }] },
      { name: "ref", env: [{ name: "MICROENFORCER_CONTAINER", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }] },
    ];
    const result = attributeContainers(containers);
    assert.deepEqual(result.set, ["miner", "twice", "ref"]);
    assert.match(result.warnings[0]!, /container miner sets MICROENFORCER_CONTAINER itself \(\["web"\]\); overruled/);
    for (const c of containers) assert.deepEqual(c.env.filter((e: { name: string }) => e.name === "MICROENFORCER_CONTAINER"), [{ name: "MICROENFORCER_CONTAINER", value: c.name }]);
  });

  it("leaves the sidecar itself alone", () => {
    assert.deepEqual(attributeContainers([{ name: "microenforcer" }]).set, []);
  });
});
