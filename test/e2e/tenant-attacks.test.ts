/**
 * The pod's owner as the adversary, on the real kube-apiserver with the manifests installed
 * (mutating webhook, ValidatingAdmissionPolicies): a tenant user (impersonated with
 * `kubectl --as`), holding ordinary pod rights in its namespaces and none on
 * microenforcer.dev resources, tries each way of skipping or weakening the MicroEnforcer.
 * Each is refused, or the pod is injected anyway, with what the tenant's kubectl shows.
 */
import assert from "node:assert/strict";
import { embeddedPolicy, SIDECAR, suiteEnvironment, type Environment } from "./environment.ts";
import { eventually } from "./eventually.ts";
import type { Pod } from "./pods.ts";

const TENANT = ["--as=tenant", "--as-group=tenants"];

describe("e2e: a tenant tries to skip or weaken the MicroEnforcer", function () {
  this.timeout(60_000);
  let env: Environment;
  let enabled: string;
  let required: string;

  suiteEnvironment("e2e-tenant", async (started, ns) => {
    [env, enabled] = [started, ns];
    required = await env.createNamespace("e2e-required");
    await env.kubectl(["label", "--overwrite", "namespace", required, "microenforcer.dev/injection=required"]);
    for (const namespace of [enabled, required]) {
      // What a platform team gives an application team: pods and their exec, nothing else.
      await env.kubectl(["apply", "-f", "-"], JSON.stringify({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: "tenant", namespace },
        rules: [
          { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
          { apiGroups: [""], resources: ["pods/exec", "pods/attach", "pods/log"], verbs: ["get", "create"] },
        ],
      }));
      await env.kubectl(["create", "rolebinding", "tenant", "--namespace", namespace, "--role", "tenant", "--group", "tenants"]);
    }
    // The weakest policy, the one a tenant would pick, and the admin's choice for the required namespace.
    await env.applyPolicy("weakest", { priority: 0, forensics: { processActivity: false, fullCommandArguments: false, networkActivity: false } }, enabled);
    await env.applyPolicy("tenant-strict", { priority: 100, enforcementMode: "enforce", scope: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": required } } } }, required);
  });

  const pod = (namespace: string, name: string, metadata: object = {}, spec: object = {}) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, ...metadata },
    spec: { containers: [{ name: "app", image: env.images.app, command: ["sleep", "3600"] }], ...spec },
  });
  /** `kubectl create` as the tenant: exit code, the stored pod when created, and what kubectl printed on stderr. */
  async function tenantCreates(object: object): Promise<{ code: number | null; pod?: Pod; stderr: string }> {
    const result = await env.cp.kubectl([...TENANT, "create", "-o", "json", "-f", "-"], { input: JSON.stringify(object) });
    return { code: result.code, stderr: result.stderr, ...(result.code === 0 ? { pod: JSON.parse(result.stdout) as Pod } : {}) };
  }
  const sidecarOf = (stored: Pod) => [...(stored.spec.initContainers ?? []), ...stored.spec.containers].find((c) => c.name === SIDECAR);

  it("runs as a tenant with pod rights in its namespaces and none on RuntimePolicies", async () => {
    const can = (args: string[]) => env.cp.kubectl(["auth", "can-i", ...TENANT, ...args]).then((r) => r.stdout.trim());
    assert.equal(await can(["create", "pods", "-n", required]), "yes");
    assert.equal(await can(["patch", "pods", "-n", required]), "yes");
    assert.equal(await can(["patch", "runtimepolicies.microenforcer.dev"]), "no");
    assert.equal(await can(["patch", "namespaces"]), "no");
  });

  describe("in a namespace that requires the MicroEnforcer", () => {
    const injectedAnyway: Array<[string, object, object, RegExp | undefined]> = [
      ["claims to be injected (microenforcer.dev/status: x)", { annotations: { "microenforcer.dev/status": "x" } }, {}, undefined],
      ['opts out (label microenforcer.dev/inject: "false")', { labels: { "microenforcer.dev/inject": "false" } }, {}, /microenforcer: microenforcer\.dev\/inject: "false" ignored: the namespace requires the MicroEnforcer/],
      ["wears the injector's label (app.kubernetes.io/name: microenforcer-injector)", { labels: { "app.kubernetes.io/name": "microenforcer-injector" } }, {}, undefined],
      [
        'asks for a classic sidecar on a run-to-completion pod (native-sidecar: "false", restartPolicy: Never)',
        { annotations: { "microenforcer.dev/native-sidecar": "false" } },
        { restartPolicy: "Never" },
        /microenforcer: microenforcer\.dev\/native-sidecar: "false" ignored/,
      ],
      ["names the weakest policy (microenforcer.dev/policy: weakest)", { annotations: { "microenforcer.dev/policy": "weakest" } }, {}, /microenforcer: RuntimePolicy 'weakest' named by the pod ranks below tenant-strict \(priority 0 < 100\) and does not allow named selection; tenant-strict applies/],
    ];
    injectedAnyway.forEach(([what, metadata, spec, warning], i) => {
      it(`injects a pod that ${what}${warning ? ", with a warning" : ""}`, async () => {
        const created = await tenantCreates(pod(required, `anyway-${i}`, metadata, spec));
        assert.equal(created.code, 0, created.stderr);
        const sidecar = sidecarOf(created.pod!);
        assert.ok(sidecar, "injected");
        assert.equal(sidecar.restartPolicy, "Always", "the native sidecar");
        assert.equal(created.pod!.spec.shareProcessNamespace, true);
        assert.equal(embeddedPolicy(created.pod!)?.metadata.name, "tenant-strict", "the admin's policy");
        if (warning) assert.match(created.stderr, warning);
        assert.doesNotMatch(created.stderr, /1\.29/, "never blames an old Kubernetes");
      });
    });

    const refused: Array<[string, object, RegExp]> = [
      ["brings its own microenforcer container (it could print forged records)", { containers: [{ name: "app", image: "app" }, { name: "microenforcer", image: "app", command: ["sleep", "3600"] }] }, /denied the request: microenforcer: refused: the namespace requires the MicroEnforcer \(microenforcer\.dev\/injection=required\), and the pod already has container microenforcer \(not the genuine sidecar\)/],
      ["brings a volume named like the sidecar's spool", { volumes: [{ name: "microenforcer-spool", emptyDir: {} }] }, /refused: .*the pod already has volume microenforcer-spool/],
      ["shares the node's PID namespace", { hostPID: true }, /refused: .*hostPID pods share the node's PID namespace/],
    ];
    refused.forEach(([what, spec, message], i) => {
      it(`refuses a pod that ${what}, saying why`, async () => {
        const created = await tenantCreates(pod(required, `refused-${i}`, {}, spec));
        assert.notEqual(created.code, 0);
        assert.match(created.stderr, message);
      });
    });
  });

  it("in an enabled namespace, does not take the tenant's own microenforcer container for the sidecar", async () => {
    const created = await tenantCreates(pod(enabled, "own-sidecar", {}, { containers: [{ name: "app", image: "app" }, { name: "microenforcer", image: "app", command: ["sleep", "3600"] }] }));
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stderr, /Warning: microenforcer: not injected: the pod already has container microenforcer \(not the genuine sidecar\): image is/);
  });

  describe("on a running pod", () => {
    const running: Record<string, string> = {};
    before(async () => {
      for (const namespace of [enabled, required]) {
        const created = await tenantCreates({ ...pod(namespace, "running"), metadata: { generateName: "running-", namespace } });
        assert.equal(created.code, 0, created.stderr);
        running[namespace] = created.pod!.metadata.name;
      }
    });
    const tenant = (namespace: string, args: string[]) => env.cp.kubectl([...TENANT, "--namespace", namespace, ...args]);

    for (const which of ["enabled", "required"] as const) {
      it(`(${which} namespace) refuses the tenant's swap of the policy document, its labels, and the sidecar's image`, async () => {
        const namespace = which === "enabled" ? enabled : required;
        const name = running[namespace]!;
        const off = JSON.stringify({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: "tenant-strict" }, spec: { forensics: { processActivity: false } } });
        const swap = await tenant(namespace, ["annotate", "--overwrite", "pod", name, `microenforcer.dev/policy-document=${off}`]);
        assert.notEqual(swap.code, 0);
        assert.match(swap.stderr, /microenforcer: refused: only the MicroEnforcer injector may change microenforcer\.dev\/ labels and annotations \(microenforcer\.dev\/policy-document\)/);
        const optOut = await tenant(namespace, ["label", "pod", name, "microenforcer.dev/inject=false"]);
        assert.match(optOut.stderr, /refused: only the MicroEnforcer injector may change .*\(microenforcer\.dev\/inject\)/);
        const dropStatus = await tenant(namespace, ["annotate", "pod", name, "microenforcer.dev/status-"]);
        assert.match(dropStatus.stderr, /refused: .*\(microenforcer\.dev\/status\)/);
        const image = await tenant(namespace, ["set", "image", `pod/${name}`, `${SIDECAR}=${env.images.app}`]);
        assert.match(image.stderr, /microenforcer: refused: the image of the microenforcer sidecar cannot be changed/);
        const ordinary = await tenant(namespace, ["annotate", "pod", name, "team=payments"]);
        assert.equal(ordinary.code, 0, `other metadata stays the tenant's: ${ordinary.stderr}`);
      });
    }

    it("still lets the injector (its ServiceAccount) update the policy document when the admin edits the RuntimePolicy", async () => {
      await env.applyPolicy("tenant-strict", { priority: 100, enforcementMode: "audit", scope: { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": required } } } }, required);
      await eventually("the injector to update the running pod's policy document", async () => {
        const policy = embeddedPolicy(await env.getPod(required, running[required]!)) as { spec: { enforcementMode?: string } } | undefined;
        return policy?.spec.enforcementMode === "audit" ? true : undefined;
      });
    });
  });

  // Last: it stops the injector (mocha runs a suite's own tests before its nested suites).
  describe("with the injector down", () => {
    it("refuses pods without the sidecar in a required namespace while the injector is down (the validating policy)", async () => {
      await env.stopInjector();
      try {
        const created = await tenantCreates(pod(required, "while-down"));
        assert.notEqual(created.code, 0);
        assert.match(created.stderr, /ValidatingAdmissionPolicy 'microenforcer-sidecar-required' .*denied request: microenforcer: refused: the namespace requires the MicroEnforcer \(microenforcer\.dev\/injection=required\) and the pod has 0 containers named microenforcer/);
        // Fail-open stays the choice of enabled namespaces.
        const elsewhere = await tenantCreates(pod(enabled, "while-down"));
        assert.equal(elsewhere.code, 0, elsewhere.stderr);
        assert.equal(sidecarOf(elsewhere.pod!), undefined);
      } finally {
        await env.startInjector();
      }
    });
  });
});
