/** `microenforcer inject` as users run it: the built CLI, its output, messages and exit codes. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cli } from "./pid-namespace.ts";

const fixture = (name: string) => new URL(`../fixtures/inject/${name}`, import.meta.url).pathname;

function inject(args: string[], input?: string) {
  // A clean environment: OTEL_* of the machine running the tests must not leak into the pods.
  const result = spawnSync(process.execPath, [cli, "inject", ...args], { input, encoding: "utf8", env: { PATH: process.env.PATH ?? "" } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The golden file without its leading message comments. */
const golden = (name: string) =>
  readFileSync(fixture(name), "utf8")
    .split("\n")
    .filter((line) => !line.startsWith("# "))
    .join("\n");

describe("microenforcer inject (CLI)", () => {
  it("prints the injected pod and reports on stderr", () => {
    const { code, stdout, stderr } = inject(["-f", fixture("plain-pod.yaml")]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout, golden("plain-pod.injected.yaml"));
    assert.match(stderr, /Pod\/web: injected \(in-scope\), RuntimePolicy default-forensics \(default\)/);
  });

  it("reads standard input with -f - and honours the options", () => {
    const text = readFileSync(fixture("psa-restricted.yaml"), "utf8");
    const labels = "microenforcer.dev/injection=enabled,pod-security.kubernetes.io/enforce=restricted";
    const { code, stdout } = inject(["-f", "-", "--namespace-labels", labels], text);
    assert.equal(code, 0);
    assert.equal(stdout, golden("psa-restricted.injected.yaml"));
  });

  it("sizes the sidecar's memory limit, and its heaps with it, with --sidecar-memory", () => {
    const { code, stdout, stderr } = inject(["-f", fixture("plain-pod.yaml"), "--sidecar-memory", "256Mi"]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /limits:\n\s+cpu: 500m\n\s+memory: 256Mi\n/);
    assert.match(stdout, /requests:\n\s+cpu: 20m\n\s+memory: 64Mi\n/);
    assert.match(stdout, /- name: NODE_OPTIONS\n\s+value: --max-old-space-size=102 --max-semi-space-size=2\n/);
  });

  it("sets every sidecar request and limit as the Helm chart's sidecar.resources passes them", () => {
    const { code, stdout, stderr } = inject(["-f", fixture("plain-pod.yaml"), "--sidecar-cpu-request", "50m", "--sidecar-memory-request", "96Mi", "--sidecar-cpu", "1", "--sidecar-memory", "320Mi"]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /limits:\n\s+cpu: "1"\n\s+memory: 320Mi\n/);
    assert.match(stdout, /requests:\n\s+cpu: 50m\n\s+memory: 96Mi\n/);
    assert.match(stdout, /--max-old-space-size=128 /);
  });

  it("removes the injection with --remove", () => {
    const { code, stdout, stderr } = inject(["-f", fixture("plain-pod.injected.yaml"), "--remove"]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^apiVersion: v1\nkind: Pod\n/);
    assert.doesNotMatch(stdout, /microenforcer/);
  });

  it("exits 1 with file and line for input it cannot read", () => {
    const broken = inject(["-f", "-"], "apiVersion: v1\nkind: Pod\nmetadata: [\n");
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /cannot inject:\n {2}-: line \d+: /);
    const missing = inject(["-f", "/nonexistent/pod.yaml"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\/nonexistent\/pod\.yaml: cannot read: ENOENT/);
    const nothing = inject(["-f", "-"], "# only a comment\n");
    assert.match(nothing.stderr, /-: no Kubernetes object found/);
  });

  it("exits 1 naming the error of an invalid --policy file", () => {
    const { code, stderr } = inject(["-f", fixture("plain-pod.yaml"), "--policy", fixture("plain-pod.yaml")]);
    assert.equal(code, 1);
    assert.match(stderr, /plain-pod\.yaml: \/apiVersion: /);
  });

  it("exits 2 on usage errors", () => {
    const usage = [[], ["-f", "x", "--bogus"], ["-f", "x", "--namespace-labels", "novalue"], ["-f", "x", "--kube-version", "latest"], ["-f", "x", "--sidecar-memory", "lots"], ["-f", "x", "--sidecar-memory", "32Mi"],
      ["-f", "x", "--sidecar-cpu", "lots"], ["-f", "x", "--sidecar-cpu-request", "600m"], ["-f", "x", "--sidecar-memory-request", "1Gi"]];
    for (const args of usage) {
      const { code, stderr } = inject(args);
      assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
      assert.match(stderr, /^microenforcer inject: /);
    }
  });
});
