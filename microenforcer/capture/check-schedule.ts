/**
 * When to look at each known process next: a binary min-heap on time, so a tick finds
 * the due looks in O(log n) however many processes the pod holds. Entries of processes
 * that have since gone are dropped lazily by the caller.
 */
export interface Check {
  at: number;
  pid: number;
  startTicks: number;
}

export class CheckSchedule {
  private readonly heap: Check[] = [];

  get size(): number {
    return this.heap.length;
  }

  /** Time of the earliest check, Infinity when none. */
  peek(): number {
    return this.heap[0]?.at ?? Infinity;
  }

  push(check: Check): void {
    const heap = this.heap;
    heap.push(check);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= check.at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = check;
  }

  /** Removes and returns the earliest check if it is due at `now`. */
  popDue(now: number): Check | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined || top.at > now) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && heap[right]!.at < heap[left]!.at ? right : left;
        if (heap[child]!.at >= last.at) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}
