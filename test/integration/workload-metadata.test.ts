/**
 * What the injector knew of the pod reaches every record: the real `watch` in a PID
 * namespace, with the workload variable the injector renders into the sidecar's spec.
 */
import assert from "node:assert/strict";
import { execs, runInPidNamespace } from "./pid-namespace.ts";

describe("workload metadata on the sidecar's records", function () {
  this.timeout(30_000);

  it("puts the workload, labels, cluster and cloud on every record's resource, and each container's image on its processes", async () => {
    const workload = {
      resource: { "k8s.deployment.name": "api", "k8s.replicaset.name": "api-7d9f8b6c5d", "k8s.pod.label.app": "api", "k8s.cluster.name": "prod-eu", "cloud.provider": "aws" },
      containerImages: { app: "registry.example/shop/api:1.4.2" },
    };
    const run = await runInPidNamespace("/bin/true; sleep 0.05", { env: { MICROENFORCER_CONTAINER: "app", MICROENFORCER_WORKLOAD: JSON.stringify(workload) } });
    assert.ok(run.records.length > 3, run.stderr);
    for (const record of run.records) assert.deepEqual({ ...record.resource, ...workload.resource }, record.resource, record.eventName);
    const app = execs(run).filter((r) => r.attributes["k8s.container.name"] === "app");
    assert.ok(app.length >= 2, JSON.stringify(execs(run).map((r) => r.body)));
    for (const record of app) {
      assert.equal(record.attributes["container.image.name"], "registry.example/shop/api");
      assert.deepEqual(record.attributes["container.image.tags"], ["1.4.2"]);
    }
  });

  it("says so when the variable is unreadable, and watches all the same", async () => {
    const run = await runInPidNamespace("sleep 0.05; sleep 0.05", { env: { MICROENFORCER_WORKLOAD: "{not json" } });
    const warning = run.records.find((r) => r.eventName === "microenforcer.sensor.status" && r.body.includes("MICROENFORCER_WORKLOAD is not JSON"));
    assert.ok(warning, JSON.stringify(run.records.map((r) => r.body)));
    assert.equal(warning.severityText, "WARN");
    assert.ok(execs(run).some((r) => JSON.stringify(r.attributes["process.command_args"]) === '["sleep","0.05"]'));
  });
});
