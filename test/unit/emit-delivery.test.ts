import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ReadableLogRecord, ReadWriteLogRecord } from "@opentelemetry/sdk-logs";
import { MemoryBacklog, type Backlog } from "../../microenforcer/spool/backlog.ts";
import { Delivery } from "../../microenforcer/emit/delivery.ts";
import type { SendOutcome } from "../../microenforcer/emit/export-outcome.ts";
import type { OtlpTransport } from "../../microenforcer/emit/otlp-transport.ts";
import type { SensorRecord } from "../../microenforcer/records/record.ts";
import { Spool } from "../../microenforcer/spool/spool.ts";
import { logRecord } from "./emit-fixtures.ts";

/** A backend whose answers the test scripts; it keeps what it accepted. */
class ScriptedBackend implements OtlpTransport {
  readonly accepted: ReadableLogRecord[] = [];
  readonly batches: number[] = [];
  answer: (records: ReadableLogRecord[]) => SendOutcome | Promise<SendOutcome> = () => ({ kind: "delivered", rejected: 0 });

  async send(records: ReadableLogRecord[]): Promise<SendOutcome> {
    this.batches.push(records.length);
    const outcome = await this.answer(records);
    if (outcome.kind === "delivered") this.accepted.push(...records.slice(0, records.length - outcome.rejected));
    return outcome;
  }

  shutdown(): void {}
}

const refused: SendOutcome = { kind: "retry", reason: "ECONNREFUSED" };

interface Harness {
  delivery: Delivery;
  backend: ScriptedBackend;
  reports: SensorRecord[];
  warnings: string[];
  emit(seq: number, eventName?: string): void;
}

function harness(backlog: Backlog, backend = new ScriptedBackend(), batch = { maxQueueSize: 20, maxExportBatchSize: 10, scheduledDelayMillis: 5 }): Harness {
  const reports: SensorRecord[] = [];
  const warnings: string[] = [];
  const delivery: Delivery = new Delivery({
    transport: backend,
    backlog,
    batch,
    retry: { initialMillis: 5, maxMillis: 20 },
    shutdownTimeoutMillis: 200,
    // As the emitter does: a loss report is emitted like any record.
    report: (record) => {
      reports.push(record);
      delivery.onEmit(logRecord({ eventName: record.eventName, attributes: record.attributes, body: record.body }) as ReadWriteLogRecord);
    },
    warn: (message) => warnings.push(message),
  });
  return {
    delivery,
    backend,
    reports,
    warnings,
    emit: (seq, eventName = "microenforcer.process.exec") => delivery.onEmit(logRecord({ eventName, attributes: { seq } }) as ReadWriteLogRecord),
  };
}

const seqs = (records: ReadableLogRecord[]) => records.map((r) => r.attributes.seq).filter((seq) => seq !== undefined);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

async function until(check: () => boolean, what: string, timeoutMillis = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(2);
  }
}

describe("emit/delivery", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "delivery-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("exports in order, in batches of at most maxExportBatchSize, one at a time", async () => {
    const h = harness(new MemoryBacklog(100));
    let inFlight = 0;
    h.backend.answer = async () => {
      assert.equal(++inFlight, 1, "one export at a time");
      await sleep(1);
      inFlight--;
      return { kind: "delivered", rejected: 0 };
    };
    for (let i = 0; i < 95; i++) h.emit(i);
    await h.delivery.forceFlush();
    assert.deepEqual(seqs(h.backend.accepted), range(0, 95));
    assert.ok(h.backend.batches.every((n) => n <= 10));
    assert.deepEqual(h.delivery.stats(), { exported: 95, pending: 0, dropped: 0, rejected: 0 });
  });

  it("a partial batch leaves after scheduledDelayMillis", async () => {
    const h = harness(new MemoryBacklog(100));
    h.emit(1);
    await until(() => h.backend.accepted.length === 1, "the delayed batch");
  });

  for (const kind of ["memory", "spool"] as const) {
    it(`${kind}: an outage loses nothing; records arrive in order once the backend is back, and go to the backlog meanwhile`, async () => {
      const backlog = kind === "memory" ? new MemoryBacklog(1000) : new Spool({ dir, maxBytes: 1 << 20 });
      const h = harness(backlog);
      let down = true;
      h.backend.answer = () => (down ? refused : { kind: "delivered", rejected: 0 });
      for (let i = 0; i < 50; i++) {
        h.emit(i);
        if (i % 10 === 0) await sleep(3);
      }
      await until(() => h.backend.batches.length >= 3, "retries");
      assert.equal(backlog.size, 50, "everything waits in the backlog, nothing only in memory");
      assert.deepEqual(h.delivery.stats(), { exported: 0, pending: 50, dropped: 0, rejected: 0 });
      down = false;
      for (let i = 50; i < 60; i++) h.emit(i);
      await until(() => h.backend.accepted.length === 60, "delivery after the outage");
      assert.deepEqual(seqs(h.backend.accepted), range(0, 60));
      assert.deepEqual(h.delivery.stats(), { exported: 60, pending: 0, dropped: 0, rejected: 0 });
      assert.equal(h.warnings.length, 1, "one warning for the outage");
      assert.match(h.warnings[0]!, /OTLP export failed \(ECONNREFUSED\)/);
      await h.delivery.shutdown();
    });
  }

  it("a backend falling behind: the full memory queue spills, the batch in flight first, and order holds", async () => {
    const h = harness(new Spool({ dir, maxBytes: 1 << 20 }));
    let release: (() => void) | undefined;
    h.backend.answer = (records) =>
      seqs(records)[0] === 0 ? new Promise((resolve) => (release = () => resolve({ kind: "delivered", rejected: 0 }))) : { kind: "delivered", rejected: 0 };
    for (let i = 0; i < 35; i++) h.emit(i); // 10 in flight, 20 queued, then the queue is full
    assert.equal(h.delivery.stats().pending, 35);
    await until(() => release !== undefined, "the first export");
    release!();
    await until(() => h.backend.accepted.length === 35, "all of them");
    assert.deepEqual(seqs(h.backend.accepted), range(0, 35));
    assert.deepEqual(h.delivery.stats(), { exported: 35, pending: 0, dropped: 0, rejected: 0 });
  });

  it("the batch in flight when the queue spilled is retried from the spool when it fails", async () => {
    const h = harness(new Spool({ dir, maxBytes: 1 << 20 }));
    let fail: (() => void) | undefined;
    let first = true;
    h.backend.answer = () => {
      if (!first) return { kind: "delivered", rejected: 0 };
      first = false;
      return new Promise((resolve) => (fail = () => resolve(refused)));
    };
    for (let i = 0; i < 35; i++) h.emit(i);
    await until(() => fail !== undefined, "the first export");
    fail!();
    await until(() => h.backend.accepted.length === 35, "all of them");
    assert.deepEqual(seqs(h.backend.accepted), range(0, 35));
  });

  it("at the spool cap, drops new records only, and reports exactly how many of which kind once the backend answers", async () => {
    const spool = new Spool({ dir, maxBytes: 64 << 10, segmentBytes: 64 << 10 });
    const h = harness(spool);
    let down = true;
    h.backend.answer = () => (down ? refused : { kind: "delivered", rejected: 0 });
    const kinds = ["microenforcer.process.exec", "microenforcer.process.exit", "microenforcer.network.connection"];
    for (let i = 0; i < 1000; i++) h.emit(i, kinds[i % 3]);
    const { dropped, pending } = h.delivery.stats();
    assert.ok(dropped > 0 && pending > 0 && dropped + pending === 1000, JSON.stringify(h.delivery.stats()));
    down = false;
    await h.delivery.forceFlush();
    await until(() => h.delivery.stats().pending === 0, "the drain");

    const delivered = new Set(seqs(h.backend.accepted));
    const lost = range(0, 1000).filter((seq) => !delivered.has(seq));
    assert.equal(lost.length, dropped);
    assert.deepEqual([...delivered], range(0, 1000 - dropped), "the oldest are kept, in order");
    assert.equal(h.reports.length, 1);
    const report = h.reports[0]!;
    assert.equal(report.eventName, "microenforcer.sensor.status");
    assert.equal(report.attributes["microenforcer.loss.reason"], "spool_full");
    assert.equal(report.attributes["microenforcer.loss.count"], dropped);
    for (const kind of kinds) {
      const expected = lost.filter((seq) => kinds[seq % 3] === kind).length;
      assert.equal(report.attributes[`microenforcer.loss.by_event.${kind.replace("microenforcer.", "")}`], expected, kind);
    }
    assert.ok(h.backend.accepted.some((r) => r.attributes["microenforcer.loss.reason"] === "spool_full"), "the report itself was delivered");
  });

  it("never retries what the backend rejects for good, and counts it by kind", async () => {
    const h = harness(new MemoryBacklog(100));
    h.backend.answer = (records) =>
      seqs(records).includes(3) ? { kind: "rejected", reason: "HTTP 400: bad" } : { kind: "delivered", rejected: 0 };
    for (let i = 0; i < 15; i++) h.emit(i);
    await h.delivery.forceFlush();
    await until(() => h.reports.length === 1, "the report");
    assert.equal(h.backend.batches.filter((n) => n === 10).length, 1, "the rejected batch was sent once");
    assert.equal(h.delivery.stats().rejected, 10);
    assert.equal(h.reports[0]!.attributes["microenforcer.loss.reason"], "rejected");
    assert.equal(h.reports[0]!.attributes["microenforcer.loss.by_event.process.exec"], 10);
    assert.equal(h.reports[0]!.attributes["microenforcer.loss.detail"], "HTTP 400: bad");
  });

  it("counts a partial success's rejected records without retrying them", async () => {
    const h = harness(new MemoryBacklog(100));
    h.backend.answer = (records) => (records.length === 10 ? { kind: "delivered", rejected: 2, message: "too old" } : { kind: "delivered", rejected: 0 });
    for (let i = 0; i < 10; i++) h.emit(i);
    await h.delivery.forceFlush();
    await until(() => h.delivery.stats().exported === 9, "the report");
    assert.deepEqual(h.delivery.stats(), { exported: 9, pending: 0, dropped: 0, rejected: 2 });
    assert.equal(h.reports[0]!.attributes["microenforcer.loss.count"], 2);
    assert.match(h.reports[0]!.body, /2 audit record\(s\) lost because the OTLP backend rejected them \(too old\): 2 of unknown kind/);
  });

  it("splits a batch the backend finds too large; a single record too large is rejected", async () => {
    const h = harness(new MemoryBacklog(100));
    h.backend.answer = (records) => (seqs(records).includes(5) ? { kind: "too-large", reason: "HTTP 413" } : { kind: "delivered", rejected: 0 });
    for (let i = 0; i < 10; i++) h.emit(i);
    await h.delivery.forceFlush();
    await until(() => h.delivery.stats().pending === 0, "all dealt with");
    assert.deepEqual(seqs(h.backend.accepted), [0, 1, 2, 3, 4, 6, 7, 8, 9]);
    assert.equal(h.delivery.stats().rejected, 1);
  });

  it("after a restart, a new delivery on the same spool delivers the old records first", async () => {
    const first = harness(new Spool({ dir, maxBytes: 1 << 20 }));
    first.backend.answer = () => refused;
    for (let i = 0; i < 30; i++) first.emit(i);
    await first.delivery.shutdown(); // backend away: everything stays in the spool
    assert.equal(first.delivery.stats().pending, 30);

    const second = harness(new Spool({ dir, maxBytes: 1 << 20 }));
    for (let i = 30; i < 35; i++) second.emit(i);
    await until(() => second.backend.accepted.length === 35, "replay");
    assert.deepEqual(seqs(second.backend.accepted), range(0, 35));
    await second.delivery.shutdown();
  });

  it("forceFlush resolves after a failed attempt instead of waiting for the backend", async () => {
    const h = harness(new MemoryBacklog(100));
    h.backend.answer = () => refused;
    h.emit(1);
    await h.delivery.forceFlush();
    assert.deepEqual(h.delivery.stats(), { exported: 0, pending: 1, dropped: 0, rejected: 0 });
  });

  it("shutdown gives up on a backend that never answers after shutdownTimeoutMillis, keeping the records", async () => {
    const h = harness(new Spool({ dir, maxBytes: 1 << 20 }));
    h.backend.answer = () => new Promise(() => undefined);
    for (let i = 0; i < 5; i++) h.emit(i);
    const started = performance.now();
    await h.delivery.shutdown();
    assert.ok(performance.now() - started < 1000);
    assert.equal(h.delivery.stats().pending, 5);
    const reopened = new Spool({ dir, maxBytes: 1 << 20 });
    assert.equal(reopened.recovered.records, 5);
    await reopened.close();
  });
});
