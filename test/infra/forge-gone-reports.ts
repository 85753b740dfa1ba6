/**
 * `node forge-gone-reports.ts SOCKET PID:START...`: what a process of the pod can send in the
 * name of processes that are not there (never were, or are gone): one report per claimed
 * (pid, start ticks), each saying it ran /usr/bin/innocent, none waiting for a verdict.
 */
import { connect } from "node:net";
import { encodeReport } from "../../microenforcer/capture/exec-report.ts";

const [socket, ...claims] = process.argv.slice(2);
if (socket === undefined || claims.length === 0) throw new Error("usage: forge-gone-reports.ts SOCKET PID:START...");
const ids = { real: 0, effective: 0, saved: 0 };
for (const claim of claims) {
  const [pid, startTicks] = claim.split(":").map(Number) as [number, number];
  const frame = encodeReport({
    wait: false, standing: false, loader: false, pid, ppid: 1, startTicks, comm: "innocent",
    uid: ids, gid: ids, exeLink: "/usr/bin/innocent", rawArgs: Buffer.from(`innocent\0${claim}\0`), truncated: { exe: false, cmdline: false },
  });
  await new Promise<void>((resolve) => {
    const c = connect(socket, () => c.end(frame));
    c.on("close", () => resolve());
    c.on("error", () => resolve());
  });
}
