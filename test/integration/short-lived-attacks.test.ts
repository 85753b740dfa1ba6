/**
 * Issue 17's attacks against the real CLI in fresh PID namespaces: a binary dropped into a
 * system directory, run for a few ms and deleted at once; scripts under /dev/shm run each
 * way an attacker runs them; a script written after the start. Each is decided from what
 * the capture worker read at first sight, so the finding holds when the file is gone a
 * millisecond later. The system directory and /dev/shm are tmpfs mounts of the namespace's
 * own: nothing is written to the host's.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execs, runInPidNamespace, type JsonRecord, type NamespaceRun } from "./pid-namespace.ts";

const attr = (r: JsonRecord, key: string): unknown => r.attributes[key];
const violations = (run: NamespaceRun, control: string): JsonRecord[] =>
  run.records.filter((r) => r.eventName === "microenforcer.policy.violation" && attr(r, "microenforcer.control") === control);
const bodies = (records: JsonRecord[]): string => records.map((r) => r.body).join("\n");

/** Private tmpfs over a system directory and /dev/shm, in the namespace's own mounts. */
const privateDirs = "mount -t tmpfs none /usr/local/sbin && mount -t tmpfs none /dev/shm || exit 95";

describe("short-lived attacks, decided from what was seen at first sight", function () {
  this.timeout(60_000);
  let dir: string;
  let policyDir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "short-lived-"));
    chmodSync(dir, 0o755);
    policyDir = mkdtempSync(join(dir, "policy-"));
    // A script from before the container started: no drift.
    writeFileSync(join(dir, "old.sh"), "#!/bin/sh\nsleep 0.05\necho old script ran\n", { mode: 0o755 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function policy(mode: "audit" | "enforce", controls: string): string {
    const file = join(policyDir, `${mode}-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: short-lived}\nspec:\n  enforcementMode: ${mode}\n  controls:\n${controls}`);
    return file;
  }

  const run = (workload: string, policyFile: string): Promise<NamespaceRun> =>
    runInPidNamespace(workload, { beforeSensor: privateDirs, watchArgs: ["--policy", policyFile] });

  it("a binary dropped into a system directory, run for a few ms and deleted at once, is drift whenever its process was recorded", async () => {
    const result = await run(
      `sleep 1.1; for i in 1 2 3 4 5 6; do cp /bin/sleep /usr/local/sbin/kworker$i && /usr/local/sbin/kworker$i 0.003; rm /usr/local/sbin/kworker$i; done`,
      policy("audit", "    drift: {block: true}\n"),
    );
    const dropped = execs(result).filter((r) => /^\/usr\/local\/sbin\/kworker\d/.test(String(attr(r, "process.executable.path"))));
    assert.ok(dropped.length >= 3, `most runs recorded: ${dropped.length} of 6`);
    const drift = violations(result, "drift");
    for (const exec of dropped) {
      const finding = drift.find((v) => attr(v, "process.pid") === attr(exec, "process.pid"));
      assert.ok(finding, `no drift for ${exec.body}:\n${bodies(drift)}`);
      assert.match(finding.body, /\/usr\/local\/sbin\/kworker\d .*was created or changed \d+\.\d s after its container started/);
      assert.ok(attr(exec, "microenforcer.process.executable.changed"), "the record carries the identity seen");
    }
  });

  it("enforce: kills the dropped binary while it still runs", async () => {
    const result = await run(
      `sleep 1.1; cp /bin/sleep /usr/local/sbin/kworker && /usr/local/sbin/kworker 2; echo "status=$?"; rm /usr/local/sbin/kworker`,
      policy("enforce", "    drift: {block: true}\n"),
    );
    assert.match(result.workloadLog, /status=137/);
    const [finding] = violations(result, "drift");
    assert.ok(finding, bodies(result.records));
    assert.equal(attr(finding, "microenforcer.action"), "killed");
  });

  /** Each way of running a script, and the record of the process it shows as. */
  const ways: Array<[how: string, command: string]> = [
    ["sh FILE", "sh /dev/shm/x.sh"],
    ["sh -c FILE (the kernel runs its shebang)", "sh -c /dev/shm/x.sh"],
    ["bash -c FILE, no shebang (the shell reads it)", "bash -c /dev/shm/plain.sh"],
    ["a shebang exec", "/dev/shm/x.sh"],
    ["busybox sh FILE", "busybox sh /dev/shm/x.sh"],
    ["python3 FILE", "/usr/bin/python3 /dev/shm/x.py"],
    ["perl FILE", "perl /dev/shm/x.pl"],
    ["a relative path from its working directory", "cd /dev/shm && sh ./x.sh"],
  ];

  it("enforce: a script under /dev/shm matches a /dev/shm/** executables rule, run each way, and is killed", async () => {
    const scripts = [
      `printf '#!/bin/sh\\nsleep 2\\necho survived\\n' > /dev/shm/x.sh && chmod +x /dev/shm/x.sh`,
      `printf 'sleep 2\\necho survived\\n' > /dev/shm/plain.sh && chmod +x /dev/shm/plain.sh`,
      `printf 'import time\\ntime.sleep(2)\\nprint("survived")\\n' > /dev/shm/x.py`,
      `printf 'sleep 2;\\nprint "survived\\\\n";\\n' > /dev/shm/x.pl`,
    ].join("\n");
    const workload = `${scripts}\n${ways.map(([, command], i) => `(${command}); echo "way${i}=$?"`).join("\n")}`;
    const result = await run(workload, policy("enforce", "    executables: {blocked: ['/dev/shm/**']}\n"));
    assert.doesNotMatch(result.workloadLog, /survived/, result.workloadLog);
    const found = violations(result, "executables");
    ways.forEach(([how], i) => assert.match(result.workloadLog, new RegExp(`way${i}=137`), `${how}: ${result.workloadLog}`));
    assert.ok(found.length >= ways.length, bodies(found));
    for (const v of found) {
      assert.equal(attr(v, "microenforcer.rule"), "/dev/shm/**");
      assert.equal(attr(v, "microenforcer.action"), "killed");
      assert.match(String(attr(v, "microenforcer.process.script.path")), /^\/dev\/shm\/(x|plain)\.(sh|py|pl)$/);
    }
  });

  it("a script written after the start is drift, one from before is not; enforce kills it", async () => {
    const audit = await run(
      `sleep 1.1; printf 'sleep 0.01\\n' > /dev/shm/d.sh; sh /dev/shm/d.sh; rm /dev/shm/d.sh; sh ${dir}/old.sh`,
      policy("audit", "    drift: {block: true}\n"),
    );
    const recorded = execs(audit).filter((r) => attr(r, "microenforcer.process.script.path") === "/dev/shm/d.sh");
    const drift = violations(audit, "drift");
    assert.equal(recorded.length, 1, bodies(execs(audit)));
    for (const exec of recorded) {
      const finding = drift.find((v) => attr(v, "process.pid") === attr(exec, "process.pid"));
      assert.ok(finding, `no drift for ${exec.body}:\n${bodies(drift)}`);
      assert.equal(attr(finding, "microenforcer.rule"), "script changed after container start");
      assert.match(finding.body, /\/dev\/shm\/d\.sh \(a script run by \/usr\/bin\/dash\) was created or changed/);
    }
    assert.match(audit.workloadLog, /old script ran/);
    assert.ok(
      execs(audit).some((r) => attr(r, "microenforcer.process.script.path") === `${dir}/old.sh` && attr(r, "microenforcer.process.script.changed") !== undefined),
      "the old script was recorded with its identity",
    );
    assert.deepEqual(
      drift.filter((v) => attr(v, "microenforcer.process.script.path") === `${dir}/old.sh`).map((v) => v.body),
      [],
      "a script from before the start is no drift",
    );

    const enforce = await run(`sleep 1.1; printf 'sleep 2\\necho survived\\n' > /dev/shm/d.sh; sh /dev/shm/d.sh; echo "status=$?"`, policy("enforce", "    drift: {block: true}\n"));
    assert.match(enforce.workloadLog, /status=137/, enforce.workloadLog);
    assert.doesNotMatch(enforce.workloadLog, /survived/);
    const [killed] = violations(enforce, "drift");
    assert.equal(attr(killed!, "microenforcer.action"), "killed");
    assert.equal(attr(killed!, "microenforcer.rule"), "script changed after container start");
  });
});
