/**
 * A record's id, `log.record.uid` (and, for one release, `microenforcer.record.id`): a ULID (github.com/ulid/spec) — 26 Crockford base32 characters,
 * 48 bits of milliseconds then 80 random bits — made monotonic within the process. Ids of
 * one sidecar sort in emit order, even within a millisecond or when the clock steps back;
 * fresh random bits every millisecond keep sidecars apart. A backend deduplicates
 * at-least-once delivery (a replayed spool) by this id.
 */
import { randomFillSync } from "node:crypto";
import { Attr, type Attributes } from "../records/attributes.ts";

/** The id under the semantic convention's key, and under ours for backends that key on it until it goes. */
export function recordIdAttributes(id: string): Attributes {
  return { [Attr.logRecordUid]: id, [Attr.recordId]: id };
}

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TIME_DIGITS = 10;
const RANDOM_DIGITS = 16;

export class RecordIds {
  readonly #now: () => number;
  readonly #fill: (bytes: Uint8Array) => void;
  /** The random part, one base32 digit (0..31) per element. */
  readonly #digits = new Uint8Array(RANDOM_DIGITS);
  #time = -1;
  #timeText = "";

  constructor(now: () => number = Date.now, fill: (bytes: Uint8Array) => void = randomFillSync) {
    this.#now = now;
    this.#fill = fill;
  }

  next(): string {
    const now = Math.floor(this.#now());
    if (now > this.#time) this.#restart(now);
    else if (!this.#increment()) this.#restart(this.#time + 1); // 2^80 ids in one ms: move on
    let id = this.#timeText;
    for (const digit of this.#digits) id += ALPHABET[digit];
    return id;
  }

  #restart(time: number): void {
    this.#time = time;
    this.#timeText = encodeTime(time);
    this.#fill(this.#digits);
    // 256 is a multiple of 32, so masking keeps the digits uniform.
    for (let i = 0; i < RANDOM_DIGITS; i++) this.#digits[i] = this.#digits[i]! & 31;
  }

  /** +1 on the random part; false on overflow. */
  #increment(): boolean {
    for (let i = RANDOM_DIGITS - 1; i >= 0; i--) {
      if (this.#digits[i]! < 31) {
        this.#digits[i]!++;
        return true;
      }
      this.#digits[i] = 0;
    }
    return false;
  }
}

function encodeTime(time: number): string {
  let text = "";
  for (let i = 0, rest = time; i < TIME_DIGITS; i++, rest = Math.floor(rest / 32)) text = ALPHABET[rest % 32]! + text;
  return text;
}
