/**
 * The disk spool: an append-only, size-capped queue of records in segment files on the
 * sidecar's emptyDir, that survives the sidecar's restarts (layout: segments.ts, lines:
 * line-codec.ts, what a crash left: recovery.ts).
 *
 * Durability: appends are plain write(2)s, so a record is in the kernel's page cache before
 * `append` returns and survives the sidecar being killed (SIGKILL, OOM kill) — the case a
 * sidecar meets. Only a kernel crash or power loss can lose page-cache data, and those
 * usually take the pod's emptyDir with them; so the hot path never fsyncs. The active
 * segment is fdatasync'ed in the background at most once a second and when it is sealed,
 * bounding such a loss to about a second of spooled records. A line torn by a crash is
 * cut off at the next start (recovery.ts) and counted.
 *
 * All file I/O here is synchronous except those syncs: writes and reads hit the page cache
 * and cost microseconds, and ordering stays trivial.
 */
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  close,
  closeSync,
  constants,
  fdatasync,
  fsync,
  ftruncateSync,
  mkdirSync,
  open,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { Backlog, BacklogRead, Position, Refusal } from "./backlog.ts";
import { decodeHeader, decodeRecord, encodeHeader, encodeRecord, type SegmentHeader } from "./line-codec.ts";
import { recover } from "./recovery.ts";
import { CURSOR_FILE, decodeCursor, encodeCursor, NEWLINE, READ_CHUNK, segmentName } from "./segments.ts";

export interface SpoolOptions {
  dir: string;
  /** Bytes of segment files the spool may hold; new records beyond are refused (and counted). */
  maxBytes: number;
  /** Default: segmentBytesFor(maxBytes). */
  segmentBytes?: number;
}

/** Leaves room under the injector's 64 MiB emptyDir for what may exceed the cap (see Backlog.append). */
export const DEFAULT_SPOOL_MAX_BYTES = 48 * 1024 * 1024;

/** An eighth of the cap, within 64 KiB..4 MiB: acknowledging a segment frees its space at once. */
export function segmentBytesFor(maxBytes: number): number {
  return Math.min(4 << 20, Math.max(64 << 10, Math.floor(maxBytes / 8)));
}

const SYNC_INTERVAL_MILLIS = 1000;

interface Segment {
  readonly number: number;
  size: number;
  /** Bytes of the header line; known once read or written. */
  headerBytes?: number;
  header?: SegmentHeader;
}

interface Writer {
  segment: Segment;
  fd: number;
  record: Pick<ReadableLogRecord, "resource" | "instrumentationScope">;
}

export class Spool implements Backlog {
  /** What the previous run left: records still to deliver, and torn or damaged lines cut off. */
  readonly recovered: { records: number; torn: number };
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  readonly #segments: Segment[] = [];
  readonly #cursorFd: number;
  readonly #syncTimer: NodeJS.Timeout;
  #writer: Writer | undefined;
  #cursor: Position;
  #tailIndex: number;
  #bytes = 0;
  #nextSegment: number;
  #dirty = false;
  /** fdatasync and close of writer fds, one at a time, so no fd is closed under a sync. */
  #syncs: Promise<void> = Promise.resolve();

  /** Recovers what a previous run left in `dir`; throws when the directory is unusable. */
  constructor(options: SpoolOptions) {
    this.#dir = options.dir;
    this.#maxBytes = options.maxBytes;
    this.#segmentBytes = options.segmentBytes ?? segmentBytesFor(options.maxBytes);
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    this.#cursorFd = openSync(join(this.#dir, CURSOR_FILE), constants.O_RDWR | constants.O_CREAT, 0o600);
    const cursorBytes = Buffer.alloc(64);
    const recovery = recover(this.#dir, decodeCursor(cursorBytes.subarray(0, readSync(this.#cursorFd, cursorBytes, 0, 64, 0))));
    this.#segments.push(...recovery.segments);
    this.#nextSegment = recovery.nextSegment;
    this.#cursor = { ...recovery.start, index: 0 };
    this.#tailIndex = recovery.records;
    this.#bytes = this.#segments.reduce((sum, segment) => sum + segment.size, 0);
    this.recovered = { records: recovery.records, torn: recovery.torn };
    this.#writeCursor();
    this.#syncTimer = setInterval(() => this.#syncWriter(), SYNC_INTERVAL_MILLIS).unref();
  }

  get size(): number {
    return this.#tailIndex - this.#cursor.index;
  }

  /** Bytes of segment files on disk. */
  get bytes(): number {
    return this.#bytes;
  }

  isEmpty(): boolean {
    const last = this.#segments.at(-1);
    return last === undefined || (this.#cursor.segment === last.number && this.#cursor.offset >= last.size);
  }

  append(record: ReadableLogRecord, force: boolean): Refusal | undefined {
    const line = encodeRecord(record);
    if (!force && this.#bytes + line.length > this.#maxBytes) return { reason: "spool_full", detail: `cap ${this.#maxBytes} bytes` };
    try {
      const writer = this.#writerFor(record);
      this.#write(writer, line);
      this.#tailIndex++;
      if (writer.segment.size >= this.#segmentBytes) this.#seal();
      return undefined;
    } catch (error) {
      return { reason: "spool_error", detail: (error as NodeJS.ErrnoException).code ?? (error as Error).message };
    }
  }

  tail(): Position {
    const last = this.#segments.at(-1);
    return last === undefined ? this.#cursor : { segment: last.number, offset: last.size, index: this.#tailIndex };
  }

  read(max: number): BacklogRead {
    const records: ReadableLogRecord[] = [];
    let corrupt = 0;
    let { segment: number, offset } = this.#cursor;
    let i = this.#segments.findIndex((s) => s.number >= number);
    if (i >= 0 && this.#segments[i]!.number !== number) offset = 0;
    while (i >= 0 && i < this.#segments.length && records.length + corrupt < max) {
      const segment = this.#segments[i]!;
      number = segment.number;
      const header = this.#header(segment);
      offset = Math.max(offset, segment.headerBytes ?? 0);
      if (offset >= segment.size) {
        if (i + 1 === this.#segments.length) break;
        i++;
        offset = 0;
        continue;
      }
      const { lines, next } = this.#readLines(segment, offset, max - records.length - corrupt);
      for (const line of lines) {
        const record = decodeRecord(line, header);
        if (record === undefined) corrupt++;
        else records.push(record);
      }
      offset = next;
    }
    return { records, end: { segment: number, offset, index: this.#cursor.index + records.length + corrupt }, corrupt };
  }

  ack(end: Position): void {
    this.#cursor = end;
    this.#writeCursor();
    // Cursor first, unlink after: a segment below the cursor is consumed even after a crash here.
    const drained = this.isEmpty();
    for (const segment of [...this.#segments]) {
      if (segment.number < end.segment || drained) this.#remove(segment);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#syncTimer);
    if (this.#writer !== undefined) this.#seal();
    await this.#syncs;
    closeSync(this.#cursorFd);
  }

  #path(number: number): string {
    return join(this.#dir, segmentName(number));
  }

  #writerFor(record: ReadableLogRecord): Writer {
    const writer = this.#writer;
    if (writer !== undefined && writer.record.resource === record.resource && writer.record.instrumentationScope === record.instrumentationScope) return writer;
    if (writer !== undefined) this.#seal();
    const number = this.#nextSegment++;
    const fd = openSync(this.#path(number), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL, 0o600);
    const header = encodeHeader(record);
    const segment: Segment = { number, size: 0, headerBytes: header.length, header: { resource: record.resource, scope: record.instrumentationScope } };
    this.#segments.push(segment);
    const created: Writer = { segment, fd, record };
    this.#writer = created;
    this.#write(created, header);
    this.#syncDirectory();
    return created;
  }

  /** All of `bytes` or nothing: a failed write is cut off again so the segment keeps whole lines. */
  #write(writer: Writer, bytes: Buffer): void {
    let written = 0;
    try {
      while (written < bytes.length) written += writeSync(writer.fd, bytes, written, bytes.length - written);
    } catch (error) {
      if (written > 0) ftruncateSync(writer.fd, writer.segment.size);
      throw error;
    }
    writer.segment.size += bytes.length;
    this.#bytes += bytes.length;
    this.#dirty = true;
  }

  #seal(): void {
    const writer = this.#writer;
    if (writer === undefined) return;
    this.#writer = undefined;
    this.#dirty = false;
    this.#serially((done) => fdatasync(writer.fd, () => close(writer.fd, () => done())));
  }

  #syncWriter(): void {
    const writer = this.#writer;
    if (writer === undefined || !this.#dirty) return;
    this.#dirty = false;
    this.#serially((done) => fdatasync(writer.fd, () => done()));
  }

  /** A new segment's name must reach the disk too, or a power loss could forget the whole file. */
  #syncDirectory(): void {
    this.#serially((done) =>
      open(this.#dir, constants.O_RDONLY, (error, fd) => (error ? done() : fsync(fd, () => close(fd, () => done())))),
    );
  }

  #serially(operation: (done: () => void) => void): void {
    this.#syncs = this.#syncs.then(() => new Promise<void>((resolve) => operation(resolve)));
  }

  #remove(segment: Segment): void {
    if (this.#writer?.segment === segment) {
      const { fd } = this.#writer;
      this.#writer = undefined;
      this.#dirty = false;
      this.#serially((done) => close(fd, () => done()));
    }
    unlinkSync(this.#path(segment.number));
    this.#segments.splice(this.#segments.indexOf(segment), 1);
    this.#bytes -= segment.size;
  }

  #writeCursor(): void {
    const bytes = encodeCursor(this.#cursor);
    writeSync(this.#cursorFd, bytes, 0, bytes.length, 0);
  }

  #header(segment: Segment): SegmentHeader {
    if (segment.header === undefined) {
      const { lines, next } = this.#readLines(segment, 0, 1);
      segment.headerBytes = next;
      // A damaged header loses only the resource attributes, not the records.
      segment.header = decodeHeader(lines[0] ?? "") ?? { resource: resourceFromAttributes({}), scope: { name: "microenforcer" } };
    }
    return segment.header;
  }

  /** Whole lines from `from`, at most `max`, and the offset after the last one. */
  #readLines(segment: Segment, from: number, max: number): { lines: string[]; next: number } {
    const fd = openSync(this.#path(segment.number), constants.O_RDONLY);
    try {
      let length = Math.min(READ_CHUNK, segment.size - from);
      for (;;) {
        const buffer = Buffer.allocUnsafe(length);
        const got = readSync(fd, buffer, 0, length, from);
        const lines: string[] = [];
        let start = 0;
        while (lines.length < max) {
          const end = buffer.indexOf(NEWLINE, start);
          if (end < 0 || end >= got) break;
          lines.push(buffer.toString("utf8", start, end));
          start = end + 1;
        }
        // A line longer than the chunk: read more of it (segments end with a whole line).
        if (lines.length > 0 || got < length || from + length >= segment.size) return { lines, next: from + start };
        length = Math.min(length * 2, segment.size - from);
      }
    } finally {
      closeSync(fd);
    }
  }
}
