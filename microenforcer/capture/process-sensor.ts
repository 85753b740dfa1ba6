/** Main-thread handle on the capture worker: start it, receive its event batches, stop it. */
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import type { CaptureOptions } from "./capture-loop.ts";
import { Control, controlSlots, type CaptureEvent } from "./events.ts";
import { PidHistory } from "./pid-history.ts";

// Runs from compiled .js and, in tests, straight from .ts source.
const workerUrl = new URL(`./worker-entry${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

export class ProcessSensor {
  private readonly worker: Worker;
  private readonly control = new Int32Array(new SharedArrayBuffer(controlSlots * Int32Array.BYTES_PER_ELEMENT));
  private readonly exited: Promise<void>;
  /** Reported processes for the loop to adopt, read synchronously between its ticks. */
  private readonly reports: MessagePort;
  /** When the namespace handed out which PIDs, as the loop saw it (written by the loop, read here). */
  readonly history = new PidHistory();

  constructor(options: CaptureOptions, onEvents: (events: CaptureEvent[]) => void, needs: { network: boolean; stdio: boolean }) {
    this.setNetwork(needs.network);
    this.setStdio(needs.stdio);
    const channel = new MessageChannel();
    this.reports = channel.port1;
    this.worker = new Worker(workerUrl, { workerData: { options, control: this.control.buffer, reports: channel.port2, history: this.history.buffer }, transferList: [channel.port2] });
    this.worker.on("message", onEvents);
    this.exited = new Promise((resolve) => {
      this.worker.on("error", (err) => onEvents([{ type: "error", message: `capture worker failed: ${err.message}` }]));
      this.worker.on("exit", () => resolve());
    });
  }

  /** The loop picks it up at its next tick. */
  setNetwork(on: boolean): void {
    Atomics.store(this.control, Control.network, on ? 1 : 0);
  }

  /** The loop picks it up at its next tick. */
  setPreload(on: boolean): void {
    Atomics.store(this.control, Control.preload, on ? 1 : 0);
  }

  /**
   * A process the preload library reported: the loop looks after it from its next tick
   * (not sooner: waking it per report would cost a tick per exec for nothing).
   */
  adopt(pid: number, startTicks: number, fingerprint: string): void {
    this.reports.postMessage([pid, startTicks, fingerprint]);
    Atomics.add(this.control, Control.adopted, 1);
  }

  /** Whether interpreters' stdio is read at first sight; the loop picks it up at its next tick. */
  setStdio(on: boolean): void {
    Atomics.store(this.control, Control.stdio, on ? 1 : 0);
  }

  /** Asks the loop to finish its tick, report its last gap count, and end. */
  async stop(): Promise<void> {
    Atomics.store(this.control, Control.stop, 1);
    Atomics.notify(this.control, Control.stop);
    await this.exited;
    this.reports.close();
  }
}
