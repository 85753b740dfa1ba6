/**
 * Hosts the CaptureLoop on a worker thread: its ticks keep their pace however busy the
 * main thread is with policy decisions and export. Sleeps with Atomics.wait, which gives
 * sub-millisecond timing that timers on an event loop do not.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CaptureLoop, maxEventsPerPost, type CaptureOptions } from "./capture-loop.ts";
import type { CaptureEvent } from "./events.ts";

const { options, control } = workerData as { options: CaptureOptions; control: SharedArrayBuffer };
/** [0]: stop; [1]: network sensor on (see ProcessSensor). */
const stopFlag = new Int32Array(control);
const now = (): number => performance.timeOrigin + performance.now();
/** A network event weighs its observations (at most maxEventsPerPost, see CaptureLoop); any other event one. */
const weight = (event: CaptureEvent): number => (event.type === "network" ? Math.max(1, event.sample.observations.length) : 1);
/** In messages of at most maxEventsPerPost by weight, in order. */
const post = (events: CaptureEvent[]): void => {
  let message: CaptureEvent[] = [];
  let load = 0;
  for (const event of events) {
    if (message.length > 0 && load + weight(event) > maxEventsPerPost) {
      parentPort!.postMessage(message);
      [message, load] = [[], 0];
    }
    message.push(event);
    load += weight(event);
  }
  if (message.length > 0) parentPort!.postMessage(message);
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
