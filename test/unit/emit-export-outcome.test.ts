import assert from "node:assert/strict";
import { retryDelay } from "../../microenforcer/emit/backoff.ts";
import { deliveredOutcome, grpcOutcome, httpOutcome, networkOutcome, parseRetryAfter } from "../../microenforcer/emit/export-outcome.ts";

describe("emit/export-outcome", () => {
  it("HTTP: 429/502/503/504 are retried, 413 asks for smaller batches, other errors are final", () => {
    for (const status of [429, 502, 503, 504]) assert.equal(httpOutcome(status, undefined, "", 0).kind, "retry", String(status));
    for (const status of [400, 401, 403, 404, 500]) assert.equal(httpOutcome(status, undefined, "", 0).kind, "rejected", String(status));
    assert.deepEqual(httpOutcome(413, undefined, "", 0), { kind: "too-large", reason: "HTTP 413" });
    assert.deepEqual(httpOutcome(429, "3", " slow down ", 0), { kind: "retry", reason: "HTTP 429: slow down", afterMillis: 3000 });
  });

  it("gRPC: the retryable codes of the OTLP spec retry; RESOURCE_EXHAUSTED for size asks for smaller batches", () => {
    for (const code of [1, 4, 10, 11, 14, 15]) assert.equal(grpcOutcome(code, "x").kind, "retry", String(code));
    for (const code of [2, 3, 5, 7, 9, 12, 13, 16]) assert.equal(grpcOutcome(code, "x").kind, "rejected", String(code));
    assert.equal(grpcOutcome(8, "Received message larger than max (5000000 vs. 4194304)").kind, "too-large");
    assert.equal(grpcOutcome(8, "quota").kind, "retry");
  });

  it("no answer at all is always retried", () => {
    const error = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:4318"), { code: "ECONNREFUSED" });
    assert.deepEqual(networkOutcome(error), { kind: "retry", reason: "connect ECONNREFUSED 127.0.0.1:4318" });
    assert.deepEqual(networkOutcome(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })), { kind: "retry", reason: "ECONNRESET socket hang up" });
  });

  it("partial success: rejected records are counted, bounded by the batch", () => {
    assert.deepEqual(deliveredOutcome(undefined, 10), { kind: "delivered", rejected: 0 });
    assert.deepEqual(deliveredOutcome({ rejectedLogRecords: "3", errorMessage: "dup" }, 10), { kind: "delivered", rejected: 3, message: "dup" });
    assert.deepEqual(deliveredOutcome({ rejectedLogRecords: 99 }, 10), { kind: "delivered", rejected: 10 });
    assert.deepEqual(deliveredOutcome({ rejectedLogRecords: "junk" }, 10), { kind: "delivered", rejected: 0 });
  });

  it("Retry-After: seconds or an HTTP date", () => {
    const now = Date.parse("2026-03-01T12:00:00Z");
    assert.equal(parseRetryAfter("120", now), 120_000);
    assert.equal(parseRetryAfter("Sun, 01 Mar 2026 12:00:30 GMT", now), 30_000);
    assert.equal(parseRetryAfter("Sun, 01 Mar 2026 11:00:00 GMT", now), 0);
    assert.equal(parseRetryAfter("soon", now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

describe("emit/backoff", () => {
  const policy = { initialMillis: 500, maxMillis: 5000 };

  it("doubles per attempt up to the cap, with half of each delay random", () => {
    assert.deepEqual([1, 2, 3, 4, 5, 10].map((attempt) => retryDelay(attempt, 0, policy)), [250, 500, 1000, 2000, 2500, 2500]);
    assert.deepEqual([1, 2, 3, 4, 5, 10].map((attempt) => retryDelay(attempt, 0.999999, policy)).map(Math.round), [500, 1000, 2000, 4000, 5000, 5000]);
  });

  it("honours the backend's Retry-After, up to a minute", () => {
    assert.equal(retryDelay(1, 0, policy, 7000), 7000);
    assert.equal(retryDelay(1, 0, policy, 600_000), 60_000);
    assert.equal(retryDelay(4, 0, policy, 10), 2000, "never sooner than our own backoff");
  });
});
