/**
 * `node forge-report.ts PID SOCKET wait|nowait EXE`: what a process of the pod can send in
 * another live process's name. It reads the victim's PID and start time from /proc (anyone
 * may) and claims the victim runs EXE. Prints the verdict, if one comes.
 */
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { encodeReport } from "../../microenforcer/capture/exec-report.ts";
import { parseStat } from "../../microenforcer/proc/parse.ts";

const [pidText, socket, how, exe] = process.argv.slice(2);
const pid = Number(pidText);
const stat = parseStat(readFileSync(`/proc/${pid}/stat`, "latin1"));
if (stat === undefined || socket === undefined || exe === undefined) throw new Error("usage: forge-report.ts PID SOCKET wait|nowait EXE");
const wait = how === "wait";
const ids = { real: 0, effective: 0, saved: 0 };
const frame = encodeReport({
  wait, standing: false, loader: false, pid, ppid: stat.ppid, startTicks: stat.startTicks, comm: exe.slice(exe.lastIndexOf("/") + 1, exe.lastIndexOf("/") + 16),
  uid: ids, gid: ids, exeLink: exe, rawArgs: Buffer.from(`${exe}\0`), truncated: { exe: false, cmdline: false },
});
const c = connect(socket, () => (wait ? c.write(frame) : c.end(frame)));
c.on("data", (d: Buffer) => {
  process.stdout.write(`verdict ${d.toString("latin1", 0, 1)}\n`);
  c.destroy();
});
c.on("error", () => c.destroy());
