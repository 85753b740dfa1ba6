/**
 * Just enough ELF to tell how a program gets loaded: whether it names a dynamic loader
 * (PT_INTERP), which is what makes the kernel start ld.so, which is what honours LD_PRELOAD.
 * Pure: the caller reads the bytes (the start of the file; program headers are near it).
 */

export type ElfLinking =
  /** PT_INTERP names the loader that will run first (and load LD_PRELOAD). machine: e_machine. */
  | { kind: "dynamic"; interpreter: string; machine: number; wide: boolean }
  /** No PT_INTERP: the kernel jumps straight to the program (static, static-pie, or ld.so itself). */
  | { kind: "static"; machine: number; wide: boolean }
  /** Not an ELF file, or its program headers lie beyond the bytes given. */
  | { kind: "unknown" };

/** e_machine of the architectures the preload library is built for. */
export const elfMachines = { x86_64: 62, aarch64: 183 } as const;

const PT_INTERP = 3;

/** `bytes`: the first bytes of the file, enough to cover the program headers (4 KiB is typical). */
export function elfLinking(bytes: Uint8Array): ElfLinking {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (u32(ph) !== PT_INTERP) continue;
    const offset = word(ph + (wide ? 8 : 4));
    const size = word(ph + (wide ? 32 : 16));
    if (offset + size > buf.length || size === 0) return { kind: "unknown" };
    return { kind: "dynamic", interpreter: buf.toString("latin1", offset, offset + size).replace(/\0+$/, ""), machine, wide };
  }
  return { kind: "static", machine, wide };
}

/** Whether a path is a dynamic loader run as a program (`/lib64/ld-linux-x86-64.so.2 /bin/ls`). */
export function isDynamicLoader(path: string): boolean {
  return /^ld(-linux[-\w.]*|-musl-[\w.]+)?\.so(\.\d+)*$/.test(path.slice(path.lastIndexOf("/") + 1));
}
