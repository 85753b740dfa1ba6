/** Loss counts that survive a crash: the ledger's state on disk, and back. */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { LossLedger } from "../../microenforcer/emit/loss-ledger.ts";
import { LOSS_FILE, LossStore } from "../../microenforcer/emit/loss-store.ts";

describe("LossStore and the ledger's state", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "loss-store-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("carries a ledger's counts, by cause and kind, into the next run's report", () => {
    const before = new LossLedger();
    before.add("spool_full", "microenforcer.process.exec", 3, 1000, "cap 256 KiB");
    before.add("spool_full", "microenforcer.network.connection", 2, 2000, "cap 256 KiB");
    before.add("corrupt", undefined, 1, 1500, "checksum");
    new LossStore(dir, assert.fail).save(() => before.state());

    const after = new LossLedger();
    after.add("spool_full", "microenforcer.process.exec", 1, 5000, "cap 256 KiB");
    assert.equal(after.restore(new LossStore(dir, assert.fail).load()), 6);
    const [full, corrupt] = after.take();
    assert.equal(full!.attributes["microenforcer.loss.count"], 6);
    assert.equal(full!.attributes["microenforcer.loss.by_event.process.exec"], 4);
    assert.equal(full!.attributes["microenforcer.loss.by_event.network.connection"], 2);
    assert.equal(full!.attributes["microenforcer.loss.since"], new Date(1000).toISOString());
    assert.equal(corrupt!.attributes["microenforcer.loss.count"], 1);
    assert.match(corrupt!.body, /counted by a previous run/);
  });

  it("writes at most every 100 ms, the latest state, and removes the file once nothing is owed", async () => {
    const ledger = new LossLedger();
    const store = new LossStore(dir, assert.fail);
    const file = join(dir, LOSS_FILE);
    for (let i = 0; i < 50; i++) {
      ledger.add("spool_full", "microenforcer.process.exec", 1, i, "cap");
      store.save(() => ledger.state());
    }
    assert.equal(JSON.parse(readFileSync(file, "utf8")).spool_full.count, 1, "the first loss at once, the rest batched");
    await sleep(150);
    assert.equal(JSON.parse(readFileSync(file, "utf8")).spool_full.count, 50);
    ledger.take();
    store.save(() => ledger.state());
    store.flush();
    assert.equal(existsSync(file), false);
  });

  it("ignores what does not look like a ledger, saying why when the file is unreadable", () => {
    const warnings: string[] = [];
    writeFileSync(join(dir, LOSS_FILE), "{ torn");
    const store = new LossStore(dir, (m) => warnings.push(m));
    assert.equal(new LossLedger().restore(store.load()), 0);
    assert.match(warnings[0]!, /cannot read .*losses\.json/);
    const ledger = new LossLedger();
    assert.equal(ledger.restore({ spool_full: { count: -1, byEvent: {}, since: 0, until: 0, detail: "" }, bogus: { count: 9 } }), 0);
    assert.equal(ledger.restore({ rejected: { count: 2, byEvent: { x: 5 }, since: 0, until: 0, detail: "" } }), 0, "more by kind than in all");
    assert.equal(ledger.isEmpty, true);
    assert.equal(new LossLedger().restore(new LossStore(join(dir, "none"), assert.fail).load()), 0, "no file: nothing owed");
  });
});
