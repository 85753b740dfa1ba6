/**
 * Hosts the CaptureLoop on a worker thread: its ticks keep their pace however busy the
 * main thread is with policy decisions and export. Sleeps with Atomics.wait, which gives
 * sub-millisecond timing that timers on an event loop do not.
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from "node:worker_threads";
import { monotonicNow as now } from "../proc/boot-clock.ts";
import { CaptureLoop, type CaptureOptions } from "./capture-loop.ts";
import { Control, type CaptureEvent } from "./events.ts";
import { messages } from "./messages.ts";
import { PidHistory } from "./pid-history.ts";

const { options, control: buffer, reports, history } = workerData as { options: CaptureOptions; control: SharedArrayBuffer; reports: MessagePort; history: SharedArrayBuffer };
const control = new Int32Array(buffer);
const post = (events: CaptureEvent[]): void => {
  for (const message of messages(events)) parentPort!.postMessage(message);
};

const loop = new CaptureLoop(options, new PidHistory(history));
const follow = (): void => {
  loop.setNetwork(Atomics.load(control, Control.network) === 1);
  loop.setPreload(Atomics.load(control, Control.preload) === 1);
  loop.setStdio(Atomics.load(control, Control.stdio) === 1);
};
follow();
post(loop.start(now()));
/** Reported processes posted so far, as Control.adopted counted them when last read. */
let adopted = 0;
/**
 * Processes the preload library reported, which the main thread recorded (see
 * ProcessSensor.adopt). The port is read only when the count moved: an idle tick then costs
 * no call into it (~10 µs a tick, cold).
 */
const adoptReported = (): void => {
  const posted = Atomics.load(control, Control.adopted);
  if (posted === adopted) return;
  adopted = posted;
  for (let m = receiveMessageOnPort(reports); m !== undefined; m = receiveMessageOnPort(reports)) {
    const [pid, startTicks, fingerprint] = m.message as [number, number, string];
    loop.adopt(pid, startTicks, fingerprint, now());
  }
};
while (Atomics.load(control, Control.stop) === 0) {
  Atomics.wait(control, Control.stop, 0, loop.nextDelayMs(now()));
  follow();
  adoptReported();
  post(loop.tick(now()));
}
adoptReported();
post(loop.finish(now()));
loop.close();
