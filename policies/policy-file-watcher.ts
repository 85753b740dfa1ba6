/**
 * Follows a policy file for changes. The kubelet updates downward-API and ConfigMap
 * volumes atomically by swapping a `..data` symlink in the directory, so the directory is
 * watched, not the file; a slow poll backs the watch up (inotify can miss a swap, and some
 * filesystems have none). Only a change of content counts. What the content means (a plain
 * policy, or a signed document that must verify) is the `open` function's to say.
 */
import { readFileSync, watch, type FSWatcher } from "node:fs";
import { dirname } from "node:path";
import { InputError } from "./input-error.ts";
import type { RuntimePolicy } from "./schema.ts";
import type { DocumentSource } from "./signed-document.ts";

export interface PolicyFileEvents {
  onPolicy(policy: RuntimePolicy, source: DocumentSource): void;
  /** The new content is unreadable or invalid; the current policy stays in force. */
  onInvalid(problems: string[]): void;
}

export interface PolicyFileWatcher {
  close(): void;
}

export function watchPolicyFile(
  file: string,
  initialText: string,
  open: (text: string) => { policy: RuntimePolicy; source: DocumentSource },
  events: PolicyFileEvents,
  pollMs = 2000,
): PolicyFileWatcher {
  let current = initialText;
  let debounce: NodeJS.Timeout | undefined;
  const check = (): void => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      // Mid-swap the link can dangle for an instant; the next event or poll settles it.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      report([`${file}: cannot read policy file: ${(err as Error).message}`]);
      return;
    }
    if (text === current) return;
    current = text;
    try {
      const { policy, source } = open(text);
      events.onPolicy(policy, source);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      report(err.problems);
    }
  };
  let lastReport = "";
  const report = (problems: string[]): void => {
    const text = problems.join("\n");
    if (text === lastReport) return;
    lastReport = text;
    events.onInvalid(problems);
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), () => {
      clearTimeout(debounce);
      debounce = setTimeout(check, 20);
    });
    watcher.on("error", () => watcher?.close());
  } catch {
    watcher = undefined; // the poll alone keeps it current
  }
  const poll = setInterval(check, pollMs);
  poll.unref();
  return {
    close() {
      clearTimeout(debounce);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
