/**
 * Hosts the CaptureLoop on a worker thread: its ticks keep their pace however busy the
 * main thread is with policy decisions and export. Sleeps with Atomics.wait, which gives
 * sub-millisecond timing that timers on an event loop do not.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CaptureLoop, maxEventsPerPost, type CaptureEvent, type CaptureOptions } from "./capture-loop.ts";

const { options, control } = workerData as { options: CaptureOptions; control: SharedArrayBuffer };
/** [0]: stop; [1]: network sensor on (see ProcessSensor). */
const stopFlag = new Int32Array(control);
const now = (): number => performance.timeOrigin + performance.now();
const post = (events: CaptureEvent[]): void => {
  for (let i = 0; i < events.length; i += maxEventsPerPost) parentPort!.postMessage(events.slice(i, i + maxEventsPerPost));
};

const loop = new CaptureLoop(options);
loop.setNetwork(Atomics.load(stopFlag, 1) === 1);
post(loop.start(now()));
while (Atomics.load(stopFlag, 0) === 0) {
  Atomics.wait(stopFlag, 0, 0, loop.nextDelayMs(now()));
  loop.setNetwork(Atomics.load(stopFlag, 1) === 1);
  post(loop.tick(now()));
}
post(loop.finish(now()));
loop.close();
