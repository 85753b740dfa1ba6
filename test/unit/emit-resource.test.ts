import assert from "node:assert/strict";
import { buildResource, parseResourceAttributes } from "../../microenforcer/emit/resource.ts";

describe("emit/resource", () => {
  it("names the service and its version, and nothing else without env", () => {
    assert.deepEqual(buildResource({}, "1.2.3").attributes, { "service.name": "microenforcer", "service.version": "1.2.3" });
  });

  it("maps the downward-API variables to k8s semantic conventions", () => {
    const env = { POD_NAME: "api-7f9c", POD_NAMESPACE: "payments", POD_UID: "0b6c-11", NODE_NAME: "fargate-ip-10-0-1-2" };
    assert.deepEqual(buildResource(env, "1.2.3").attributes, {
      "service.name": "microenforcer",
      "service.version": "1.2.3",
      "k8s.pod.name": "api-7f9c",
      "k8s.namespace.name": "payments",
      "k8s.pod.uid": "0b6c-11",
      "k8s.node.name": "fargate-ip-10-0-1-2",
    });
  });

  it("leaves out attributes whose variable is empty", () => {
    const attributes = buildResource({ POD_NAME: "", NODE_NAME: "n1", OTEL_SERVICE_NAME: "" }, "1.2.3").attributes;
    assert.ok(!("k8s.pod.name" in attributes));
    assert.equal(attributes["k8s.node.name"], "n1");
    assert.equal(attributes["service.name"], "microenforcer");
  });

  it("adds OTEL_RESOURCE_ATTRIBUTES, percent-decoded, over the downward API", () => {
    const env = { POD_NAME: "from-downward-api", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=prod, team=pay%2Cments%3Dyes ,k8s.pod.name=override" };
    const attributes = buildResource(env, "1.2.3").attributes;
    assert.equal(attributes["deployment.environment.name"], "prod");
    assert.equal(attributes["team"], "pay,ments=yes");
    assert.equal(attributes["k8s.pod.name"], "override");
  });

  it("adds what the injector knew of the pod over the downward API, and under the admin's OTEL_RESOURCE_ATTRIBUTES", () => {
    const workload = { "k8s.deployment.name": "api", "k8s.cluster.name": "from-injector", "k8s.pod.name": "not-the-downward-api's" };
    const attributes = buildResource({ POD_NAME: "api-7f9c", OTEL_RESOURCE_ATTRIBUTES: "k8s.cluster.name=prod-eu" }, "1", workload).attributes;
    assert.equal(attributes["k8s.deployment.name"], "api");
    assert.equal(attributes["k8s.cluster.name"], "prod-eu");
    assert.equal(attributes["k8s.pod.name"], "not-the-downward-api's");
  });

  it("lets OTEL_SERVICE_NAME win over service.name in OTEL_RESOURCE_ATTRIBUTES", () => {
    assert.equal(buildResource({ OTEL_RESOURCE_ATTRIBUTES: "service.name=a" }, "1").attributes["service.name"], "a");
    assert.equal(buildResource({ OTEL_RESOURCE_ATTRIBUTES: "service.name=a", OTEL_SERVICE_NAME: "b" }, "1").attributes["service.name"], "b");
  });

  describe("parseResourceAttributes", () => {
    it("skips empty entries", () => {
      assert.deepEqual(parseResourceAttributes("a=1,,b=2,"), { a: "1", b: "2" });
      assert.deepEqual(parseResourceAttributes(undefined), {});
      assert.deepEqual(parseResourceAttributes("a="), { a: "" });
    });

    for (const malformed of ["a=1,b", "a=1,b=2=3", "a=1,=2", "a=%zz", "a=1,%E0%A4%A=x"]) {
      it(`discards the whole value when an entry is malformed: ${JSON.stringify(malformed)}`, () => {
        assert.deepEqual(parseResourceAttributes(malformed), {});
      });
    }
  });
});
