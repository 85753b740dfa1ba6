/** The sidecar's heap sizes, from its memory limit. */
import assert from "node:assert/strict";
import { memoryBytes, sidecarNodeOptions } from "../../webhook/sidecar-heap.ts";

describe("sidecar heap sizes", () => {
  it("reads Kubernetes memory quantities, binary and decimal", () => {
    assert.equal(memoryBytes("160Mi"), 160 * 2 ** 20);
    assert.equal(memoryBytes("1Gi"), 2 ** 30);
    assert.equal(memoryBytes("256M"), 256e6);
    assert.equal(memoryBytes("1.5Gi"), 1.5 * 2 ** 30);
    assert.equal(memoryBytes("134217728"), 134217728);
    assert.equal(memoryBytes(" 64Ki "), 65536);
    for (const bad of ["", "Mi", "160 Mi", "160mi", "-1Gi", "1e3"]) assert.equal(memoryBytes(bad), undefined, bad);
  });

  it("gives each of the two heaps 40 % of the limit, and small young generations", () => {
    assert.equal(sidecarNodeOptions("160Mi"), "--max-old-space-size=64 --max-semi-space-size=2");
    assert.equal(sidecarNodeOptions("1Gi"), "--max-old-space-size=409 --max-semi-space-size=2");
    // A tiny limit still leaves V8 room to start.
    assert.equal(sidecarNodeOptions("20Mi"), "--max-old-space-size=16 --max-semi-space-size=2");
  });

  it("sizes only the young generations without a readable limit", () => {
    assert.equal(sidecarNodeOptions(undefined), "--max-semi-space-size=2");
    assert.equal(sidecarNodeOptions("lots"), "--max-semi-space-size=2");
  });
});
