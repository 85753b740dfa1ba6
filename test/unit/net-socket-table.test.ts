/**
 * The /proc/net/{tcp,udp}[6] parser on tables recorded from a real kernel (x86-64, little
 * endian: the fixtures' hex words are in that byte order) and on broken lines.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { endianness } from "node:os";
import { decodeAddress, parseSocketTable, socketInode, type SocketEntry } from "../../microenforcer/proc/socket-table.ts";

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/net/${name}`, import.meta.url), "latin1");
const brief = (s: SocketEntry): string => `${s.transport}/${s.family} ${s.localAddress}:${s.localPort} ${s.remoteAddress}:${s.remotePort} ${s.state} ${s.inode}`;

describe("socket tables", function () {
  before(function () {
    if (endianness() !== "LE") this.skip();
  });

  it("reads every TCP state the fixture holds: listen, established, time-wait, not yet accepted", () => {
    const { entries, malformed } = parseSocketTable(fixture("tcp.txt"), "tcp");
    assert.equal(malformed, 0);
    assert.deepEqual(entries.map(brief), [
      "tcp/ipv4 127.0.0.1:8080 0.0.0.0:0 LISTEN 515739",
      "tcp/ipv4 127.0.0.1:51716 127.0.0.1:8080 ESTABLISHED 515740",
      "tcp/ipv4 127.0.0.1:51720 127.0.0.1:8080 TIME_WAIT 0",
      "tcp/ipv4 127.0.0.1:51736 127.0.0.1:8080 ESTABLISHED 515744",
      "tcp/ipv4 127.0.0.1:8080 127.0.0.1:51716 ESTABLISHED 515741",
      "tcp/ipv4 127.0.0.1:46272 127.0.0.1:8443 ESTABLISHED 515748",
      "tcp/ipv4 127.0.0.1:8080 127.0.0.1:51736 ESTABLISHED 0",
    ]);
    assert.equal(entries[0]!.uid, 0);
    assert.equal(entries[0]!.row, "0100007F:1F90 00000000:0000 0A");
  });

  it("reads IPv6 as four host-order words, compresses zeros, and shows IPv4-mapped peers as IPv4", () => {
    const { entries } = parseSocketTable(fixture("tcp6.txt"), "tcp");
    assert.deepEqual(entries.map(brief), [
      "tcp/ipv6 :::8443 :::0 LISTEN 515745",
      "tcp/ipv6 ::1:8443 ::1:42738 ESTABLISHED 515747",
      "tcp/ipv6 ::1:42738 ::1:8443 ESTABLISHED 515746",
      "tcp/ipv6 127.0.0.1:8443 127.0.0.1:46272 ESTABLISHED 515749",
    ]);
  });

  it("reads UDP tables, whose slot numbers are wider, connected and not", () => {
    assert.deepEqual(parseSocketTable(fixture("udp.txt"), "udp").entries.map(brief), [
      "udp/ipv4 0.0.0.0:5353 0.0.0.0:0 CLOSE 515750",
      "udp/ipv4 127.0.0.1:46510 127.0.0.53:53 ESTABLISHED 515751",
    ]);
    assert.deepEqual(parseSocketTable(fixture("udp6.txt"), "udp").entries.map(brief), ["udp/ipv6 fd00::10:58792 fd00::10:53 ESTABLISHED 515752"]);
  });

  it("counts malformed lines and keeps the good ones", () => {
    const { entries, malformed } = parseSocketTable(fixture("tcp-malformed.txt"), "tcp");
    // truncated, bad hex digit, non-numeric inode, no colon at all, bad port and state
    assert.equal(malformed, 5);
    assert.deepEqual(entries.map((s) => s.inode), [515739, 515740, 0]);
    assert.equal(entries[2]!.uid, 1000123);
    assert.deepEqual(parseSocketTable("", "tcp"), { entries: [], malformed: 0, rows: new Map() });
    assert.equal(parseSocketTable("header only\n", "udp").entries.length, 0);
  });

  it("reuses the previous read's entry for a row printed the same, and decodes a changed one", () => {
    const text = fixture("tcp.txt");
    const first = parseSocketTable(text, "tcp");
    const again = parseSocketTable(text, "tcp", first.rows);
    assert.ok(again.entries.every((s, i) => s === first.entries[i]));
    // The same inode in another state is a new entry; queue counters changing is not.
    const changed = text.replace("0100007F:CA04 0100007F:1F90 01 00000000:00000000", "0100007F:CA04 0100007F:1F90 08 00000010:00000000");
    const third = parseSocketTable(changed, "tcp", first.rows);
    assert.notEqual(third.entries[1], first.entries[1]);
    assert.equal(third.entries[1]!.state, "CLOSE_WAIT");
    assert.equal(third.entries[0], first.entries[0]);
  });

  it("decodes addresses and socket links, and rejects what is not one", () => {
    assert.equal(decodeAddress("0100007F"), "127.0.0.1");
    assert.equal(decodeAddress("000080FE00000000FF005452E7A5F9FE"), "fe80::5254:ff:fef9:a5e7");
    assert.equal(decodeAddress("0100007"), undefined);
    assert.equal(decodeAddress("XYZ0007F"), undefined);
    assert.equal(socketInode("socket:[515739]"), 515739);
    assert.equal(socketInode("pipe:[515739]"), undefined);
    assert.equal(socketInode("/dev/null"), undefined);
  });
});
