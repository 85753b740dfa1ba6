/**
 * How big one message from the capture worker to the main thread may be. The main thread
 * holds a message, deserialized, until it has handled all of it, so a burst of 20 000 new
 * sockets must not arrive as one: a message carries at most maxEventsPerPost events, a
 * network event weighing its observations (and a sample is cut into events that weigh at
 * most that much).
 */
import type { NetworkSample } from "../net/network-sampler.ts";
import type { CaptureEvent } from "./events.ts";

export const maxEventsPerPost = 256;

/** A network event weighs its observations; any other event one. */
function weight(event: CaptureEvent): number {
  return event.type === "network" ? Math.max(1, event.sample.observations.length) : 1;
}

/** One read of the socket tables as network events of at most maxEventsPerPost observations; the first carries the problems. */
export function networkEvents(sample: NetworkSample, observedAt: number): CaptureEvent[] {
  const events: CaptureEvent[] = [];
  for (let i = 0; i === 0 || i < sample.observations.length; i += maxEventsPerPost) {
    const observations = sample.observations.slice(i, i + maxEventsPerPost);
    events.push({ type: "network", sample: i === 0 ? { ...sample, observations } : { observations, problems: [], malformed: 0 }, observedAt });
  }
  return events;
}

/** Events in messages of at most maxEventsPerPost by weight, in order. */
export function messages(events: readonly CaptureEvent[]): CaptureEvent[][] {
  const out: CaptureEvent[][] = [];
  let message: CaptureEvent[] = [];
  let load = 0;
  for (const event of events) {
    if (message.length > 0 && load + weight(event) > maxEventsPerPost) {
      out.push(message);
      [message, load] = [[], 0];
    }
    message.push(event);
    load += weight(event);
  }
  if (message.length > 0) out.push(message);
  return out;
}
