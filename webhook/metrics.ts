/**
 * The injector's Prometheus metrics, in the text exposition format. A handful of counters
 * and one histogram do not justify a metrics library.
 */
type Labels = Record<string, string>;

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const labelText = (labels: Labels) => {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "" : `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
};

class Counter {
  readonly name: string;
  readonly help: string;
  readonly values = new Map<string, number>();

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels)) ?? 0;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.values);
  }

  absorb(snapshot: Record<string, number>): void {
    for (const [key, value] of Object.entries(snapshot)) this.values.set(key, (this.values.get(key) ?? 0) + value);
  }

  render(): string {
    const lines = [...this.values].map(([labels, value]) => `${this.name}${labels} ${value}`);
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n${lines.join("\n")}${lines.length > 0 ? "\n" : ""}`;
  }
}

class Histogram {
  readonly name: string;
  readonly help: string;
  readonly buckets: readonly number[];
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(name: string, help: string, buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.buckets = buckets;
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.buckets.forEach((bound, i) => {
      if (value <= bound) this.counts[i]! += 1;
    });
    this.sum += value;
    this.count += 1;
  }

  snapshot(): { counts: number[]; sum: number; count: number } {
    return { counts: [...this.counts], sum: this.sum, count: this.count };
  }

  absorb(snapshot: { counts: number[]; sum: number; count: number }): void {
    snapshot.counts.forEach((n, i) => {
      if (i < this.counts.length) this.counts[i]! += n;
    });
    this.sum += snapshot.sum;
    this.count += snapshot.count;
  }

  render(): string {
    const lines = this.buckets.map((bound, i) => `${this.name}_bucket{le="${bound}"} ${this.counts[i]}`);
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n${lines.join("\n")}\n`;
  }
}

export type InjectorMetrics = ReturnType<typeof createMetrics>;
/** What one set of metrics counted, to add to another (the review worker's, after each review). */
export type MetricsSnapshot = Record<string, ReturnType<Counter["snapshot"]> | ReturnType<Histogram["snapshot"]>>;

export function createMetrics() {
  const metrics = {
    requests: new Counter("microenforcer_injector_admission_requests_total", "AdmissionReviews answered, by outcome (injected, touched-up, skipped, refused, error, invalid)."),
    injections: new Counter("microenforcer_injector_injections_total", "Pods injected, by sidecar form (native or classic)."),
    skips: new Counter("microenforcer_injector_skips_total", "Pods not injected, by reason."),
    refusals: new Counter("microenforcer_injector_refusals_total", "Pods refused in namespaces that require the MicroEnforcer, by reason."),
    overruled: new Counter("microenforcer_injector_overruled_total", "Pod labels or annotations ignored because the namespace requires the MicroEnforcer, by key."),
    rejectedReviews: new Counter("microenforcer_injector_rejected_reviews_total", "Reviews turned away before being read (too large, too many at once), by reason."),
    policyUpdates: new Counter("microenforcer_injector_policy_updates_total", "Running pods whose policy annotation was updated, by result (updated, failed, skipped: a pod the refresh could not read)."),
    execReviews: new Counter("microenforcer_injector_exec_reviews_total", "kubectl exec, attach and debug sessions seen at admission, by outcome (allowed, denied, error)."),
    duration: new Histogram(
      "microenforcer_injector_admission_duration_seconds",
      "Time to answer one AdmissionReview.",
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    ),
  };
  return {
    ...metrics,
    render: () => Object.values(metrics).map((m) => m.render()).join(""),
    snapshot: (): MetricsSnapshot => Object.fromEntries(Object.entries(metrics).map(([name, m]) => [name, m.snapshot()])),
    absorb(snapshot: MetricsSnapshot): void {
      for (const [name, m] of Object.entries(metrics)) {
        const part = snapshot[name];
        if (part === undefined) continue;
        if (m instanceof Histogram) m.absorb(part as ReturnType<Histogram["snapshot"]>);
        else m.absorb(part as ReturnType<Counter["snapshot"]>);
      }
    },
  };
}
