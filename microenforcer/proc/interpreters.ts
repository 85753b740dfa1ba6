/**
 * Which programs are interpreters, by the base name of their executable: what the reverse
 * shell control watches, and (for the capture worker) whose stdio is worth reading at
 * first sight. Pure.
 */

/** Shells and script interpreters: a command loop on their stdio, or the program named in their argv. */
const interpreterNames = /^(?:sh|ash|bash|dash|zsh|ksh|ksh93|mksh|pdksh|yash|posh|hush|csh|tcsh|fish|busybox|python.*|perl.*|ruby.*|php.*|node|nodejs|lua.*|tclsh.*|awk|gawk|mawk|nawk)$/;

/** Network tools that hand their stdio to a peer, the other half of a reverse shell. */
const relayNames = /^(?:socat|nc|ncat|netcat|telnet)$/;

/** Programs that give an attacker a command loop when their stdio is a socket. */
export function givesCommandLoop(name: string): boolean {
  return interpreterNames.test(name) || relayNames.test(name);
}

/**
 * Whether a process gives a command loop: by its executable's name, its task name, or the
 * file its argv has it run (`ld-linux-x86-64.so.2 /bin/sh`: the loader runs a shell).
 */
export function runsCommandLoop(exeName: string, comm: string, namedFile: string | undefined): boolean {
  return givesCommandLoop(exeName) || givesCommandLoop(comm) || (namedFile !== undefined && givesCommandLoop(namedFile.slice(namedFile.lastIndexOf("/") + 1)));
}
