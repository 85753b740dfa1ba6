/**
 * Just enough ELF to tell how a program gets loaded: whether it names a dynamic loader
 * (PT_INTERP), which is what makes the kernel start ld.so, which is what honours LD_PRELOAD;
 * and, for a file that names none, whether it is a loader itself, whatever its name.
 * Pure: the caller reads the bytes (the start of the file; program headers are near it).
 */

export type ElfLinking =
  /** PT_INTERP names the loader that will run first (and load LD_PRELOAD). machine: e_machine. */
  | { kind: "dynamic"; interpreter: string; machine: number; wide: boolean }
  /** No PT_INTERP and no shared object: the kernel jumps straight to the program (static, or static-pie: ET_DYN flagged DF_1_PIE). */
  | { kind: "static"; machine: number; wide: boolean }
  /**
   * No PT_INTERP, yet a shared object (ET_DYN, not flagged DF_1_PIE): a library that runs
   * itself, as ld.so and musl's libc.so do, under any name: run as a program, it is a loader
   * (and loads LD_PRELOAD). A static-pie from a linker before DF_1_PIE (binutils 2.33) looks the same.
   */
  | { kind: "loader"; machine: number; wide: boolean }
  /** Not an ELF file, or its headers lie beyond the bytes that could be read. */
  | { kind: "unknown" };

/** e_machine of the architectures the preload library is built for. */
export const elfMachines = { x86_64: 62, aarch64: 183 } as const;

const PT_INTERP = 3;
const PT_DYNAMIC = 2;
const ET_DYN = 3;
const DT_FLAGS_1 = 0x6ffffffb;
const DF_1_PIE = 0x08000000;
/** Dynamic section bytes looked at: DT_FLAGS_1 comes within the first few dozen entries. */
const maxDynamicBytes = 4096;

/** `length` bytes of the file from `offset`, or fewer where it ends. */
export type ReadAt = (offset: number, length: number) => Uint8Array;

/**
 * `head`: the first bytes of the file, enough to cover the program headers (4 KiB is typical).
 * `readAt`: the rest of the file, for a dynamic section beyond the head (read only for a file
 * with no PT_INTERP that is a shared object or a PIE).
 */
export function elfLinking(head: Uint8Array, readAt: ReadAt = (offset, length) => head.subarray(offset, offset + length)): ElfLinking {
  const buf = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (buf.length < 52 || buf.readUInt32BE(0) !== 0x7f454c46) return { kind: "unknown" };
  const wide = buf[4] === 2;
  const little = buf[5] === 1;
  if ((buf[4] !== 1 && !wide) || (buf[5] !== 1 && buf[5] !== 2) || (wide && buf.length < 64)) return { kind: "unknown" };
  const u16 = (at: number): number => (little ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
  const u32 = (at: number): number => (little ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
  const word = (at: number): number => (wide ? Number(little ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at)) : u32(at));
  const machine = u16(18);
  const phoff = word(wide ? 32 : 28);
  const phentsize = u16(wide ? 54 : 42);
  const phnum = u16(wide ? 56 : 44);
  if (phentsize < (wide ? 56 : 32) || phoff + phnum * phentsize > buf.length) return { kind: "unknown" };
  let dynamic: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    const type = u32(ph);
    const offset = word(ph + (wide ? 8 : 4));
    const size = word(ph + (wide ? 32 : 16));
    if (type === PT_DYNAMIC) dynamic = { offset, size };
    if (type !== PT_INTERP) continue;
    if (offset + size > buf.length || size === 0) return { kind: "unknown" };
    return { kind: "dynamic", interpreter: buf.toString("latin1", offset, offset + size).replace(/\0+$/, ""), machine, wide };
  }
  // ET_EXEC, or a shared object with nothing to relocate: nothing but the program runs.
  if (u16(16) !== ET_DYN || dynamic === undefined) return { kind: "static", machine, wide };
  const entry = wide ? 16 : 8;
  const want = Math.min(dynamic.size, maxDynamicBytes);
  const read = readAt(dynamic.offset, want);
  const section = Buffer.from(read.buffer, read.byteOffset, read.byteLength);
  if (section.length < Math.min(want, entry)) return { kind: "unknown" };
  for (let at = 0; at + entry <= section.length; at += entry) {
    const tag = wide ? Number(little ? section.readBigInt64LE(at) : section.readBigInt64BE(at)) : little ? section.readInt32LE(at) : section.readInt32BE(at);
    if (tag === 0) break; // DT_NULL
    if (tag !== DT_FLAGS_1) continue;
    const flags = wide ? Number((little ? section.readBigUInt64LE(at + 8) : section.readBigUInt64BE(at + 8)) & 0xffffffffn) : little ? section.readUInt32LE(at + 4) : section.readUInt32BE(at + 4);
    if ((flags & DF_1_PIE) !== 0) return { kind: "static", machine, wide };
  }
  return { kind: "loader", machine, wide };
}

/** Whether a path is a dynamic loader run as a program (`/lib64/ld-linux-x86-64.so.2 /bin/ls`). */
export function isDynamicLoader(path: string): boolean {
  return /^ld(-linux[-\w.]*|-musl-[\w.]+)?\.so(\.\d+)*$/.test(path.slice(path.lastIndexOf("/") + 1));
}
