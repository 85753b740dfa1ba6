/**
 * Hosts the CaptureLoop on a worker thread: its ticks keep their pace however busy the
 * main thread is with policy decisions and export. Sleeps with Atomics.wait, which gives
 * sub-millisecond timing that timers on an event loop do not.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CaptureLoop, type CaptureOptions } from "./capture-loop.ts";
import { Control, type CaptureEvent } from "./events.ts";
import { messages } from "./messages.ts";

const { options, control: buffer } = workerData as { options: CaptureOptions; control: SharedArrayBuffer };
const control = new Int32Array(buffer);
const now = (): number => performance.timeOrigin + performance.now();
const post = (events: CaptureEvent[]): void => {
  for (const message of messages(events)) parentPort!.postMessage(message);
};

const loop = new CaptureLoop(options);
loop.setNetwork(Atomics.load(control, Control.network) === 1);
post(loop.start(now()));
while (Atomics.load(control, Control.stop) === 0) {
  Atomics.wait(control, Control.stop, 0, loop.nextDelayMs(now()));
  loop.setNetwork(Atomics.load(control, Control.network) === 1);
  post(loop.tick(now()));
}
post(loop.finish(now()));
loop.close();
