import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { defaultPolicy } from "../../policies/load.ts";
import { defaultInjectorConfig, type InjectorConfig, type PodSecurityLevel } from "../../webhook/config.ts";
import type { JsonObject } from "../../webhook/json.ts";
import { removeInjection } from "../../webhook/remove.ts";
import { render } from "../../webhook/render.ts";
import { podSecurityLevel, sidecarSecurity } from "../../webhook/security.ts";

const basePod = (): JsonObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "web", namespace: "shop", annotations: { "prometheus.io/scrape": "true", "odd~key/x": "1" } },
  spec: { containers: [{ name: "web", image: "nginx", futureField: { keep: true } }], futureSpecField: [1, 2] },
});

function renderPod(pod: JsonObject = basePod(), options: { native?: boolean; level?: PodSecurityLevel; config?: Partial<InjectorConfig> } = {}) {
  return render({
    pod,
    config: { ...defaultInjectorConfig(), ...options.config },
    policy: defaultPolicy(),
    podSecurityLevel: options.level ?? "privileged",
    native: options.native ?? true,
    namespace: "shop",
    clusterDns: undefined,
  });
}

const containersOf = (pod: JsonObject, key: string) => (pod.spec as JsonObject)[key] as JsonObject[];

describe("webhook/render", () => {
  it("keeps fields it does not know, and does not touch its input", () => {
    const input = basePod();
    const { pod } = renderPod(input);
    assert.deepEqual(input, basePod());
    assert.deepEqual(containersOf(pod, "containers")[0]!.futureField, { keep: true });
    assert.deepEqual((pod.spec as JsonObject).futureSpecField, [1, 2]);
  });

  it("answers with a patch that turns the input into the rendered pod, escaping / and ~ in keys", () => {
    const input = basePod();
    (input.metadata as JsonObject).annotations = {};
    const rendered = renderPod(input);
    assert.deepEqual(jsonpatch.applyPatch(structuredClone(input), rendered.patch, true, false).newDocument, rendered.pod);
    const paths = renderPod().patch.map((op) => op.path);
    assert.ok(paths.includes("/metadata/annotations/microenforcer.dev~1policy-document"), paths.join(" "));
    assert.ok(paths.every((p) => !p.includes("odd")), "untouched annotations are not in the patch");
  });

  it("puts the preload installer first, a native sidecar next among the init containers, a classic one last among the containers", () => {
    const withInit = basePod();
    (withInit.spec as JsonObject).initContainers = [{ name: "migrate", image: "m" }];
    const native = renderPod(withInit).pod;
    assert.deepEqual(containersOf(native, "initContainers").map((c) => [c.name, c.restartPolicy]), [
      ["microenforcer-preload", undefined],
      ["microenforcer", "Always"],
      ["migrate", undefined],
    ]);
    const classic = renderPod(basePod(), { native: false }).pod;
    assert.deepEqual(containersOf(classic, "initContainers").map((c) => c.name), ["microenforcer-preload"]);
    assert.deepEqual(containersOf(classic, "containers").map((c) => [c.name, c.restartPolicy]), [["web", undefined], ["microenforcer", undefined]]);
  });

  it("runs the sidecar with the contract's command, policy file, spool and downward-API env", () => {
    const { pod } = renderPod(basePod(), { config: { otelEnv: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" } } });
    const sidecar = containersOf(pod, "initContainers")[1]!;
    assert.deepEqual(sidecar.command, ["microenforcer", "watch", "--policy", "/etc/microenforcer/policy/policy.json", "--exporter", "both", "--format", "json"]);
    const env = sidecar.env as { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[];
    assert.deepEqual(
      env.map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef.fieldPath]),
      [
        ["POD_NAME", "metadata.name"],
        ["POD_NAMESPACE", "metadata.namespace"],
        ["POD_UID", "metadata.uid"],
        ["NODE_NAME", "spec.nodeName"],
        ["MICROENFORCER_SPOOL_DIR", "/var/lib/microenforcer/spool"],
        ["MICROENFORCER_EXEC_SOCKET", "/var/lib/microenforcer/preload/exec.sock"],
        ["NODE_OPTIONS", "--max-old-space-size=64 --max-semi-space-size=2"],
        ["OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"],
        ["MICROENFORCER_STARTED_PORT", "15477"],
        ["MICROENFORCER_WORKLOAD", '{"resource":{},"containerImages":{"web":"nginx"}}'],
      ],
    );
    const annotations = (pod.metadata as JsonObject).annotations as Record<string, string>;
    assert.deepEqual(JSON.parse(annotations["microenforcer.dev/policy-document"]!), defaultPolicy());
    assert.equal(annotations["microenforcer.dev/policy"], "default-forensics");
    assert.deepEqual(containersOf(pod, "containers")[0]!.env, [
      { name: "MICROENFORCER_CONTAINER", value: "web" },
      { name: "LD_PRELOAD", value: "/var/lib/microenforcer/preload/libmicroenforcer-exec.so" },
      { name: "MICROENFORCER_EXEC_SOCKET", value: "/var/lib/microenforcer/preload/exec.sock" },
    ]);
    // The kubelet starts the app containers once the sidecar answers: when its sensor watches.
    assert.deepEqual(sidecar.startupProbe, { httpGet: { path: "/started", port: 15477 }, periodSeconds: 1, failureThreshold: 60 });
  });

  it("is taken out exactly by removeInjection, shareProcessNamespace and the user's policy name included", () => {
    const input = basePod();
    (input.spec as JsonObject).shareProcessNamespace = false;
    (input.metadata as JsonObject).annotations = { "microenforcer.dev/policy": "default-forensics" };
    const rendered = renderPod(input);
    assert.equal((rendered.pod.spec as JsonObject).shareProcessNamespace, true);
    assert.deepEqual(rendered.status.annotations, ["microenforcer.dev/policy-document"]);
    assert.deepEqual(removeInjection(rendered.pod), input);
    assert.equal(removeInjection(input), undefined);
  });

  it("names the policy that runs, replacing a request that was not honoured", () => {
    const input = basePod();
    (input.metadata as JsonObject).annotations = { "microenforcer.dev/policy": "weakest" };
    const rendered = renderPod(input);
    assert.equal(((rendered.pod.metadata as JsonObject).annotations as JsonObject)["microenforcer.dev/policy"], "default-forensics");
    assert.deepEqual(rendered.status.annotations, ["microenforcer.dev/policy", "microenforcer.dev/policy-document"]);
  });

  describe("complete mode (forensics.preload)", () => {
    const lib = "/var/lib/microenforcer/preload/libmicroenforcer-exec.so";
    const envOf = (c: JsonObject) => Object.fromEntries((c.env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value ?? "valueFrom"]));
    const withApps = (): JsonObject => {
      const pod = basePod();
      (pod.spec as JsonObject).initContainers = [{ name: "migrate", image: "m" }];
      (pod.spec as JsonObject).containers = [
        { name: "web", image: "nginx", env: [{ name: "LD_PRELOAD", value: "/opt/jemalloc.so" }] },
        { name: "worker", image: "w", env: [{ name: "LD_PRELOAD", valueFrom: { configMapKeyRef: { name: "c", key: "k" } } }] },
        { name: "sly", image: "s", env: [{ name: "MICROENFORCER_EXEC_SOCKET", value: "/tmp/mine.sock" }], volumeMounts: [{ name: "microenforcer-preload", mountPath: "/x" }] },
      ];
      return pod;
    };

    it("gives every app container the library read-only, after its own LD_PRELOAD, and the sidecar's socket", () => {
      const { pod, warnings } = renderPod(withApps());
      const [web, worker, sly] = containersOf(pod, "containers");
      assert.equal(envOf(web!).LD_PRELOAD, `/opt/jemalloc.so:${lib}`);
      assert.equal(envOf(web!).MICROENFORCER_EXEC_SOCKET, "/var/lib/microenforcer/preload/exec.sock");
      assert.deepEqual(web!.volumeMounts, [{ name: "microenforcer-preload", mountPath: "/var/lib/microenforcer/preload", readOnly: true }]);
      assert.equal(envOf(worker!).LD_PRELOAD, "valueFrom", "an LD_PRELOAD from a reference cannot be appended to");
      assert.equal(envOf(worker!).MICROENFORCER_EXEC_SOCKET, undefined);
      assert.equal(envOf(sly!).MICROENFORCER_EXEC_SOCKET, "/var/lib/microenforcer/preload/exec.sock", "its own socket is overruled");
      assert.deepEqual(sly!.volumeMounts, [{ name: "microenforcer-preload", mountPath: "/var/lib/microenforcer/preload", readOnly: true }], "its writable mount of our volume is overruled");
      assert.deepEqual(
        warnings.filter((w) => /LD_PRELOAD|EXEC_SOCKET|microenforcer-preload/.test(w)),
        [
          "container worker sets LD_PRELOAD from a reference or more than once; the preload library is not added to it, and its programs are recorded without it",
          "container sly sets MICROENFORCER_EXEC_SOCKET itself; overruled with the sidecar's socket",
          "container sly mounts volume microenforcer-preload itself; overruled with the injector's read-only mount",
        ],
      );
      const migrate = containersOf(pod, "initContainers")[2]!;
      assert.equal(envOf(migrate).LD_PRELOAD, lib, "app init containers too, the native sidecar watching them");
    });

    it("installs the library with the pod's own policy document, writable only by the installer and the sidecar", () => {
      const { pod } = renderPod(basePod());
      const [installer, sidecar] = containersOf(pod, "initContainers");
      assert.deepEqual(installer!.command, ["microenforcer", "preload", "install", "--dir", "/var/lib/microenforcer/preload", "--policy", "/etc/microenforcer/policy/policy.json"]);
      assert.deepEqual(installer!.securityContext, sidecar!.securityContext);
      for (const c of [installer!, sidecar!]) {
        assert.deepEqual((c.volumeMounts as JsonObject[]).find((m) => m.name === "microenforcer-preload"), { name: "microenforcer-preload", mountPath: "/var/lib/microenforcer/preload" });
      }
      assert.deepEqual(((pod.spec as JsonObject).volumes as JsonObject[]).find((v) => v.name === "microenforcer-preload"), { name: "microenforcer-preload", emptyDir: { sizeLimit: "8Mi" } });
    });

    it("leaves app init containers alone with a classic sidecar, which is not running yet then", () => {
      const { pod } = renderPod(withApps(), { native: false });
      assert.deepEqual(containersOf(pod, "initContainers").map((c) => [c.name, c.env]), [
        ["microenforcer-preload", undefined],
        ["migrate", [{ name: "MICROENFORCER_CONTAINER", value: "migrate" }]],
      ]);
    });

    it("is taken out exactly, a container's own LD_PRELOAD restored", () => {
      const input = withApps();
      ((input.spec as JsonObject).containers as JsonObject[]).splice(2, 1); // what is overruled cannot come back
      const rendered = renderPod(input);
      assert.deepEqual(rendered.status.ldPreload, { web: "/opt/jemalloc.so" });
      assert.deepEqual(removeInjection(rendered.pod), input);
    });

    it("adds nothing to the app containers when the policy turns it off", () => {
      const policy = defaultPolicy();
      policy.spec.forensics.preload = false;
      const { pod } = render({ pod: basePod(), config: defaultInjectorConfig(), policy, podSecurityLevel: "privileged", native: true, namespace: "shop", clusterDns: undefined });
      assert.deepEqual(containersOf(pod, "initContainers").map((c) => c.name), ["microenforcer"]);
      assert.deepEqual(containersOf(pod, "containers")[0]!.env, [{ name: "MICROENFORCER_CONTAINER", value: "web" }]);
      assert.equal(containersOf(pod, "containers")[0]!.volumeMounts, undefined);
    });
  });

  it("refuses a status annotation it did not write", () => {
    const pod = basePod();
    (pod.metadata as JsonObject).annotations = { "microenforcer.dev/status": '{"containers":"x"}' };
    assert.throws(() => removeInjection(pod), /not one the injector wrote/);
  });
});

describe("webhook/security", () => {
  const spec = (podContext?: object, containerContext?: object): JsonObject => ({
    ...(podContext ? { securityContext: podContext } : {}),
    containers: [{ name: "app", ...(containerContext ? { securityContext: containerContext } : {}) }],
  });

  it("reads the enforced Pod Security level, privileged when unlabelled", () => {
    assert.equal(podSecurityLevel(undefined), "privileged");
    assert.equal(podSecurityLevel({ "pod-security.kubernetes.io/enforce": "restricted" }), "restricted");
    assert.equal(podSecurityLevel({ "pod-security.kubernetes.io/enforce": "bogus" }), "privileged");
  });

  it("runs as the app's UID and GID, locked down", () => {
    assert.deepEqual(sidecarSecurity(spec({ runAsUser: 1000, runAsGroup: 3000 }), "restricted", false), {
      securityContext: {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        seccompProfile: { type: "RuntimeDefault" },
        runAsUser: 1000,
        runAsGroup: 3000,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
      },
      bindsLowPorts: false,
      warnings: [],
    });
    assert.equal(sidecarSecurity(spec(undefined, { runAsUser: 101 }), "baseline", false).securityContext.runAsUser, 101);
  });

  it("matches an undeclared UID with root where allowed, and a non-root UID with a warning where not", () => {
    assert.equal(sidecarSecurity(spec(), "baseline", false).securityContext.runAsUser, 0);
    const restricted = sidecarSecurity(spec(), "restricted", false);
    assert.deepEqual([restricted.securityContext.runAsUser, restricted.securityContext.runAsNonRoot], [65532, true]);
    assert.match(restricted.warnings[0]!, /no runAsUser declared/);
    assert.equal(sidecarSecurity(spec({ runAsNonRoot: true }), "privileged", false).securityContext.runAsUser, 65532);
  });

  it("matches a root app with no securityContext: root, group 0, and the runtime's default capabilities kept, in baseline too", () => {
    for (const level of ["privileged", "baseline"] as const) {
      const { securityContext, warnings } = sidecarSecurity(spec(), level, false);
      assert.deepEqual([securityContext.runAsUser, securityContext.runAsGroup, securityContext.capabilities, warnings], [0, 0, undefined, []], level);
    }
  });

  it("says whether it may listen below 1024 on its own: only as root keeping NET_BIND_SERVICE", () => {
    assert.equal(sidecarSecurity(spec(), "baseline", false).bindsLowPorts, true, "a root app with the runtime's defaults");
    assert.equal(sidecarSecurity(spec(undefined, { capabilities: { drop: ["NET_BIND_SERVICE"] } }), "baseline", false).bindsLowPorts, false, "the app dropped it");
    assert.equal(sidecarSecurity(spec({ runAsUser: 1000, runAsGroup: 1000 }), "baseline", false).bindsLowPorts, false, "non-root: no capabilities after exec");
    assert.equal(sidecarSecurity(spec(), "privileged", true).bindsLowPorts, false, "--allow-ptrace drops everything but SYS_PTRACE and DAC_READ_SEARCH");
  });

  it("keeps what the root containers hold: less what all of them drop, plus what they add", () => {
    const pod: JsonObject = {
      containers: [
        { name: "router", securityContext: { capabilities: { add: ["NET_ADMIN"], drop: ["MKNOD", "cap_net_raw"] } } },
        { name: "cache", securityContext: { runAsUser: 0, capabilities: { drop: ["ALL"], add: ["NET_RAW"] } } },
        { name: "worker", securityContext: { runAsUser: 1000, capabilities: { add: ["SYS_ADMIN"] } } },
      ],
    };
    assert.deepEqual(sidecarSecurity(pod, "privileged", false).securityContext.capabilities, { drop: ["MKNOD"], add: ["NET_ADMIN"] }, "a non-root container's capabilities never reach its processes");
    assert.deepEqual(sidecarSecurity({ containers: [{ name: "a", securityContext: { capabilities: { drop: ["ALL"] } } }] }, "privileged", false).securityContext.capabilities, { drop: ["ALL"] });
  });

  it("adds beyond the runtime's default only where the level allows, and says whom it cannot read", () => {
    const crio = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "KILL"];
    const pod = (add: string): JsonObject => ({ containers: [{ name: "web", securityContext: { capabilities: { add: [add] } } }] });
    assert.deepEqual(sidecarSecurity(pod("MKNOD"), "baseline", false, crio).securityContext.capabilities, { add: ["MKNOD"] }, "baseline lets a container add MKNOD");
    const baseline = sidecarSecurity(pod("NET_RAW"), "baseline", false, crio);
    assert.equal(baseline.securityContext.capabilities, undefined);
    assert.match(baseline.warnings.join("\n"), /root in container web, which holds NET_RAW \(beyond what Pod Security level baseline lets the sidecar keep/);
    const mixed = sidecarSecurity({ containers: [{ name: "web" }, { name: "exporter", securityContext: { runAsUser: 9113, runAsGroup: 9113 } }, { name: "tuner", securityContext: { privileged: true } }] }, "privileged", false);
    assert.deepEqual(mixed.warnings, [
      "the sidecar runs as UID 0 (container web) and cannot read the executable, environment or sockets of processes of UID 9113 (container exporter); root in privileged container tuner (the sidecar is never privileged): it records their command lines, users and containers",
    ]);
  });

  it("runs a non-root app's sidecar without capabilities, and asks for a GID it cannot know", () => {
    const { securityContext, warnings } = sidecarSecurity(spec({ runAsUser: 1000 }), "privileged", false);
    assert.deepEqual([securityContext.runAsUser, securityContext.runAsGroup, securityContext.capabilities], [1000, undefined, { drop: ["ALL"] }]);
    assert.match(warnings[0]!, /declares runAsUser 1000 but no runAsGroup: its GID comes from its image/);
  });

  it("grants SYS_PTRACE only where the admin and the namespace's level allow it", () => {
    const granted = sidecarSecurity(spec({ runAsUser: 1000 }), "privileged", true).securityContext;
    assert.deepEqual([granted.runAsUser, granted.capabilities], [0, { drop: ["ALL"], add: ["SYS_PTRACE", "DAC_READ_SEARCH"] }]);
    const baseline = sidecarSecurity(spec({ runAsUser: 1000 }), "baseline", true);
    assert.deepEqual(baseline.securityContext.capabilities, { drop: ["ALL"] });
    assert.match(baseline.warnings[0]!, /SYS_PTRACE not granted \(the namespace enforces Pod Security level baseline\)/);
  });
});
