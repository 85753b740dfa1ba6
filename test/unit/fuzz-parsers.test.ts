/**
 * Property-based fuzzing of everything that parses input the sensor does not control: the
 * /proc parsers (a process controls its comm, argv and environ), the socket tables and the
 * policy loader. The contracts: no throw where none is promised, output bounded by input.
 */
import assert from "node:assert/strict";
import { readFileSync, realpathSync } from "node:fs";
import fc from "fast-check";
import {
  containerIdFromCgroup,
  decodeBytes,
  environValue,
  joinCommandLine,
  parseBootTime,
  parseExeLink,
  parseStat,
  parseStatus,
  parseUptime,
  pidsFromDirEntries,
  splitCmdline,
} from "../../microenforcer/proc/parse.ts";
import { decodeAddress, parseSocketTable, socketInode, type SocketEntry } from "../../microenforcer/proc/socket-table.ts";
import { elfLinking } from "../../microenforcer/proc/elf.ts";
import { parsePolicies, validatePolicy } from "../../policies/load.ts";
import { InputError } from "../../policies/input-error.ts";

const RUNS = { numRuns: 2000 };
const bytes = fc.uint8Array({ maxLength: 512 });
/** Text from random bytes, read the two ways the sensor reads files. */
const text = fc.oneof(
  bytes.map((b) => Buffer.from(b).toString("latin1")),
  bytes.map((b) => Buffer.from(b).toString("utf8")),
  fc.string({ unit: "grapheme", maxLength: 200 }),
);
const lines = (s: string) => s.split("\n").length;

/** Text shaped like the file, with random damage: reaches deeper than pure noise. */
function mutated(valid: string): fc.Arbitrary<string> {
  return fc
    .array(fc.tuple(fc.nat({ max: valid.length }), fc.nat({ max: 8 }), fc.string({ unit: "binary", maxLength: 6 })), { maxLength: 4 })
    .map((edits) => edits.reduce((s, [at, cut, insert]) => s.slice(0, at) + insert + s.slice(at + cut), valid));
}

const STAT = "1234 (sh (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 3 4 0 0 20 0 1 0 987654 2400000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
const STATUS = "Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1234\nNgid:\t0\nPid:\t1234\nPPid:\t1\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n";
const TCP =
  "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
  "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0\n" +
  "   1: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0000000000000000 20 4 30 10 -1\n";
const TCP6 =
  "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
  "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 22345 1 0000000000000000 100 0 0 10 0\n";

describe("fuzz: /proc parsers", () => {
  it("parseStat: undefined or safe integers, comm within the text", () => {
    fc.assert(
      fc.property(fc.oneof(text, mutated(STAT)), (input) => {
        const stat = parseStat(input);
        if (stat === undefined) return;
        for (const n of [stat.pid, stat.ppid, stat.startTicks, stat.utimeTicks, stat.stimeTicks]) assert.ok(Number.isSafeInteger(n));
        assert.ok(input.includes(`(${stat.comm})`));
      }),
      RUNS,
    );
  });

  it("parseStatus: undefined or safe integers", () => {
    fc.assert(
      fc.property(fc.oneof(text, mutated(STATUS)), (input) => {
        const status = parseStatus(input);
        if (status !== undefined) for (const n of [status.tgid, status.pid, status.ppid, status.uid.real, status.uid.effective]) assert.ok(Number.isSafeInteger(n));
      }),
      RUNS,
    );
  });

  it("decodeBytes: valid UTF-8 unchanged, anything else at most 4 characters per byte", () => {
    fc.assert(
      fc.property(bytes, (input) => {
        const decoded = decodeBytes(input);
        assert.ok(decoded.length <= input.length * 4);
        if (Buffer.from(Buffer.from(input).toString("utf8")).equals(Buffer.from(input))) assert.equal(decoded, Buffer.from(input).toString("utf8"));
        else assert.ok(decoded.includes("\\x"));
      }),
      RUNS,
    );
    fc.assert(fc.property(fc.string({ unit: "grapheme" }), (s) => assert.equal(decodeBytes(Buffer.from(s)), s)), RUNS);
  });

  it("splitCmdline: one argument per NUL-separated field, never more than the bytes allow", () => {
    fc.assert(
      fc.property(bytes, (input) => {
        const args = splitCmdline(input);
        if (input.length === 0) return assert.deepEqual(args, []);
        const fields = input.filter((b) => b === 0).length + (input.at(-1) === 0 ? 0 : 1);
        assert.equal(args.length, fields);
        assert.ok(args.join("").length <= input.length * 4);
      }),
      RUNS,
    );
  });

  it("splitCmdline and joinCommandLine: any argv survives the round trip through NULs, and shell-quoting keeps every argument", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme", maxLength: 20 }).filter((s) => !s.includes("\u0000")), { minLength: 1, maxLength: 8 }), (argv) => {
        assert.deepEqual(splitCmdline(Buffer.from(`${argv.join("\u0000")}\u0000`)), argv);
        const line = joinCommandLine(argv);
        assert.ok(line.length <= argv.reduce((n, a) => n + a.length * 4 + 3, 0));
      }),
      RUNS,
    );
  });

  it("the small parsers never throw", () => {
    fc.assert(
      fc.property(text, bytes, (input, raw) => {
        const exe = parseExeLink(input);
        assert.ok(exe.path.length <= input.length);
        const value = environValue(raw, "MICROENFORCER_CONTAINER");
        assert.ok(value === undefined || value.length <= raw.length * 4);
        const id = containerIdFromCgroup(input);
        assert.ok(id === undefined || id.length <= input.length);
        const boot = parseBootTime(input);
        assert.ok(boot === undefined || Number.isSafeInteger(boot));
        const uptime = parseUptime(input);
        assert.ok(uptime === undefined || Number.isFinite(uptime));
        assert.ok(pidsFromDirEntries(input.split(/[\s/]/)).length <= lines(input.replace(/[\s/]/g, "\n")));
      }),
      RUNS,
    );
  });
});

describe("fuzz: ELF headers (a program file is the pod's to write)", () => {
  const kinds = new Set(["dynamic", "static", "loader", "unknown"]);
  const readerOf = (file: Uint8Array) => (offset: number, length: number) => file.subarray(offset, offset + length);

  it("elfLinking: random bytes and damaged real programs and loaders give a kind, never a throw", () => {
    const originals = ["/bin/sh", realpathSync(process.arch === "arm64" ? "/lib/ld-linux-aarch64.so.1" : "/lib64/ld-linux-x86-64.so.2")].map((path) => {
      const file = readFileSync(path);
      // Where the parser reads past the head: the loader's dynamic section.
      let section = 0;
      elfLinking(file.subarray(0, 4096), (offset, length) => ((section = offset), file.subarray(offset, offset + length)));
      return { file, section };
    });
    // Damage where the parser reads: the ELF and program headers, and the dynamic section.
    const damaged = fc
      .tuple(
        fc.constantFrom(...originals),
        fc.array(fc.tuple(fc.nat({ max: 4095 }), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
        fc.array(fc.tuple(fc.nat({ max: 511 }), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
      )
      .map(([{ file: original, section }, head, dynamic]) => {
        const file = Buffer.from(original);
        for (const [at, value] of head) file[at] = value;
        for (const [at, value] of dynamic) if (section + at < file.length) file[section + at] = value;
        return file;
      });
    fc.assert(
      fc.property(fc.oneof(damaged, fc.uint8Array({ maxLength: 8192 }).map((b) => Buffer.from(b))), (file) => {
        assert.ok(kinds.has(elfLinking(file.subarray(0, 4096), readerOf(file)).kind));
        assert.ok(kinds.has(elfLinking(file.subarray(0, 4096)).kind));
      }),
      { numRuns: 500 },
    );
  });
});

describe("fuzz: socket tables", () => {
  function checkEntry(entry: SocketEntry): void {
    for (const port of [entry.localPort, entry.remotePort]) assert.ok(Number.isInteger(port) && port >= 0 && port <= 0xffff);
    // Integers, not always safe ones: a damaged row may print a 19-digit inode (kernels hand out 32-bit socket inodes).
    assert.ok(Number.isInteger(entry.inode) && Number.isInteger(entry.uid));
    assert.match(entry.localAddress, /^[0-9a-f.:]+$/);
  }

  for (const [name, valid, transport] of [["tcp", TCP, "tcp"], ["tcp6", TCP6, "tcp"], ["udp", TCP, "udp"]] as const) {
    it(`parseSocketTable (${name}): never throws; every line is an entry or counted as malformed`, () => {
      fc.assert(
        fc.property(fc.oneof(text, mutated(valid)), fc.boolean(), (input, reuse) => {
          const previous = reuse ? parseSocketTable(valid, transport).rows : undefined;
          const table = parseSocketTable(input, transport, previous);
          assert.ok(table.entries.length + table.malformed <= Math.max(0, lines(input) - 1));
          table.entries.forEach(checkEntry);
        }),
        RUNS,
      );
    });
  }

  it("rows the kernel could print are all parsed", () => {
    const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9A-F]{${n}}$`));
    const row = fc.tuple(fc.boolean(), hex(32), hex(4), hex(32), hex(4), hex(2), fc.nat({ max: 65535 }), fc.nat({ max: 2 ** 31 })).map(([v6, la, lp, ra, rp, st, uid, inode]) => {
      const width = v6 ? 32 : 8;
      return `   0: ${la.slice(0, width)}:${lp} ${ra.slice(0, width)}:${rp} ${st} 00000000:00000000 00:00000000 00000000 ${String(uid).padStart(5)}        0 ${inode} 1 0000000000000000 100 0 0 10 0`;
    });
    fc.assert(
      fc.property(fc.array(row, { maxLength: 20 }), (rows) => {
        const table = parseSocketTable(`header\n${rows.join("\n")}\n`, "tcp");
        assert.equal(table.malformed, 0);
        assert.equal(table.entries.length, rows.length);
        table.entries.forEach(checkEntry);
      }),
      RUNS,
    );
  });

  it("decodeAddress and socketInode never throw", () => {
    fc.assert(
      fc.property(text, (input) => {
        const address = decodeAddress(input);
        assert.ok(address === undefined || address.length <= 45);
        const inode = socketInode(input);
        assert.ok(inode === undefined || Number.isFinite(inode));
      }),
      RUNS,
    );
  });
});

describe("fuzz: the policy loader", () => {
  const POLICY = "apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n  enforcementMode: enforce\n  forensics: {processActivity: true}\n  controls:\n    executables: {blocked: [/usr/bin/nc]}\n    network: {blockedOutbound: [{cidr: 10.0.0.0/8}, {port: 3333}]}\n";

  /** Its only failure is an InputError listing bounded problems, each naming the file. */
  function loadsOrExplains(load: () => unknown, size: number): void {
    try {
      load();
    } catch (error) {
      assert.ok(error instanceof InputError, String(error));
      assert.ok(error.problems.length > 0);
      assert.ok(error.problems.length <= size + 10, `${error.problems.length} problems for ${size} bytes`);
      for (const problem of error.problems) assert.ok(problem.startsWith("f.yaml") && problem.length < 600, problem);
    }
  }

  it("parsePolicies: random bytes and damaged policies are loaded or refused with an InputError", () => {
    fc.assert(
      fc.property(fc.oneof(text, mutated(POLICY)), (input) => loadsOrExplains(() => parsePolicies(input, "f.yaml"), input.length)),
      RUNS,
    );
  });

  it("validatePolicy: any JSON value is validated or refused with an InputError", () => {
    const document = fc.record({
      apiVersion: fc.oneof(fc.constant("microenforcer.dev/v1alpha1"), fc.jsonValue()),
      kind: fc.oneof(fc.constant("RuntimePolicy"), fc.jsonValue()),
      metadata: fc.oneof(fc.record({ name: fc.string() }), fc.jsonValue()),
      spec: fc.jsonValue(),
    });
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), document), (value) => loadsOrExplains(() => validatePolicy(value, "f.yaml"), JSON.stringify(value).length)),
      RUNS,
    );
  });
});
