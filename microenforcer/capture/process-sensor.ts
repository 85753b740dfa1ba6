/** Main-thread handle on the capture worker: start it, receive its event batches, stop it. */
import { Worker } from "node:worker_threads";
import type { CaptureOptions } from "./capture-loop.ts";
import type { CaptureEvent } from "./events.ts";

// Runs from compiled .js and, in tests, straight from .ts source.
const workerUrl = new URL(`./worker-entry${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

export class ProcessSensor {
  private readonly worker: Worker;
  /** [0]: stop; [1]: network sensor on. */
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(8));
  private readonly exited: Promise<void>;

  constructor(options: CaptureOptions, onEvents: (events: CaptureEvent[]) => void, network = false) {
    this.setNetwork(network);
    this.worker = new Worker(workerUrl, { workerData: { options, control: this.stopFlag.buffer } });
    this.worker.on("message", onEvents);
    this.exited = new Promise((resolve) => {
      this.worker.on("error", (err) => onEvents([{ type: "error", message: `capture worker failed: ${err.message}` }]));
      this.worker.on("exit", () => resolve());
    });
  }

  /** The loop picks it up at its next tick. */
  setNetwork(on: boolean): void {
    Atomics.store(this.stopFlag, 1, on ? 1 : 0);
  }

  /** Asks the loop to finish its tick, report its last gap count, and end. */
  async stop(): Promise<void> {
    Atomics.store(this.stopFlag, 0, 1);
    Atomics.notify(this.stopFlag, 0);
    await this.exited;
  }
}
