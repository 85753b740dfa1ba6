/**
 * Which script file an interpreter's argv names: a script is a program, so the controls
 * look at it as they look at an executable. Pure: the argv forms each interpreter family
 * accepts (README, "Scripts are programs"), nothing read from the system.
 *
 * Recognised: `sh [options] FILE`, `sh [options] -c 'FILE [args]'` (also `. FILE` and
 * `source FILE` as the command), the same for bash, dash, ash, zsh, ksh and busybox's
 * shells; `python* [options] FILE`; `perl [switches] FILE`; `ruby [switches] FILE`;
 * `node [options] FILE`; `php [options] [-f] FILE`; `lua*`/`tclsh*` FILE; `awk -f FILE`.
 * A shebang exec is the first form: the kernel runs `INTERPRETER [ARG] FILE`. Inline code
 * (`python3 -c`, `perl -e`, `node -e`, a `-c` command that is not a lone path), a module
 * (`python3 -m`), stdin (`-`, `sh -s`) and a `-c` word without `/` (looked up in PATH)
 * name no script. The dynamic loader run as a program (`ld-linux-x86-64.so.2 [options] FILE`,
 * musl's `ld-musl-*.so.1` too) is an interpreter of ELF programs: FILE is what it runs.
 */
import { isDynamicLoader } from "./elf.ts";

interface Syntax {
  /** Options whose value is the next argument (or the rest of a short cluster). */
  valued: ReadonlySet<string>;
  /** Short options whose value, if any, is the rest of their cluster only (`-Mstrict`, `-0777`). */
  attached?: ReadonlySet<string>;
  /** Options after which no script file is run (inline code, a module, stdin). */
  noScript: ReadonlySet<string>;
  /** Options whose value is the script file itself (`php -f`, `awk -f`). */
  scriptOption?: ReadonlySet<string>;
  /** Short options may be clustered (`-ex`, `-uB`); a valued one takes the rest of the cluster. */
  clusters: boolean;
  /** The operand is a script file only after a script option (awk's operand is program text). */
  operandIsProgramText?: boolean;
  /** The option whose value is code to run (`python3 -c CODE`): one of noScript. */
  inline?: string;
}

const set = (...xs: string[]): ReadonlySet<string> => new Set(xs);

const shell: Syntax = {
  valued: set("-o", "+o", "-O", "+O", "--rcfile", "--init-file"),
  noScript: set("-s", "-i", "-"),
  clusters: true,
};
const python: Syntax = {
  valued: set("-W", "-X", "--check-hash-based-pycs"),
  noScript: set("-c", "-m", "-"),
  clusters: true,
  inline: "-c",
};
const perl: Syntax = { valued: set("-I"), attached: set("-M", "-m", "-x", "-i", "-C", "-0", "-l", "-d", "-D", "-V"), noScript: set("-e", "-E", "-"), clusters: true, inline: "-e" };
const ruby: Syntax = { valued: set("-I", "-r", "-C", "-E"), attached: set("-x", "-K", "-T", "-W", "-0", "-F", "-i"), noScript: set("-e", "-"), clusters: true, inline: "-e" };
const node: Syntax = {
  valued: set("-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions", "--input-type", "--title", "--env-file", "--inspect-port", "--stack-size", "--disable-warning", "--watch-path", "--test-reporter", "--test-reporter-destination", "--test-name-pattern"),
  noScript: set("-e", "--eval", "-p", "--print", "-i", "--interactive", "-"),
  clusters: false,
  inline: "-e",
};
const php: Syntax = { valued: set("-d", "-c", "-z", "-t", "-S"), noScript: set("-r", "-B", "-R", "-E", "-F", "-a", "-"), scriptOption: set("-f"), clusters: false, inline: "-r" };
const simple: Syntax = { valued: set("-l", "-e"), noScript: set("-"), clusters: false };
/** glibc's and musl's loader (`ld.so --help`): --list and --verify load the program but run nothing. */
const loaderSyntax: Syntax = {
  valued: set("--library-path", "--preload", "--audit", "--inhibit-rpath", "--argv0", "--glibc-hwcaps-prepend", "--glibc-hwcaps-mask"),
  noScript: set("--list", "--verify", "--help", "--version", "--list-tunables", "--list-diagnostics"),
  clusters: false,
};
const awk: Syntax = { valued: set("-v", "-F"), noScript: set(), scriptOption: set("-f"), clusters: false, operandIsProgramText: true };

const shells = /^(?:sh|ash|bash|dash|zsh|ksh|ksh93|mksh|pdksh|yash|posh|hush)$/;

/** A POSIX-family shell by its executable's name: `-c` runs its operand as a command string. */
export function isShell(name: string): boolean {
  return shells.test(name);
}

/** `loader`: the executable is known to be a dynamic loader, whatever its name (ExeTarget.loader). */
function syntaxOf(name: string, loader = false): Syntax | undefined {
  if (loader) return loaderSyntax;
  if (shells.test(name)) return shell;
  if (/^python[0-9.]*$/.test(name)) return python;
  if (/^perl[0-9.]*$/.test(name)) return perl;
  if (/^ruby[0-9.]*$/.test(name)) return ruby;
  if (/^(?:node|nodejs)$/.test(name)) return node;
  if (/^php[0-9.]*$/.test(name)) return php;
  if (/^(?:lua[0-9.]*|luajit|tclsh[0-9.]*)$/.test(name)) return simple;
  if (/^[gmn]?awk$/.test(name)) return awk;
  if (isDynamicLoader(name)) return loaderSyntax;
  return undefined;
}

/**
 * The option that makes the interpreter `name` run its next argument as code (`python3 -c`,
 * `perl -e`, `ruby -e`, `node -e`, `php -r`): run with it as its first argument, it runs no
 * file its argv names, whatever follows. Undefined for shells (their `-c` command may name
 * one: runsPlainCommand's rule) and for what has no such option.
 */
export function inlineCodeOption(name: string): string | undefined {
  return syntaxOf(name)?.inline;
}

/** Whether a program of this name may run a file its argv names (an interpreter, busybox, the loader). */
export function runsNamedFiles(exeName: string, loader = false): boolean {
  return exeName === "busybox" || syntaxOf(exeName, loader) !== undefined;
}

const baseName = (path: string): string => path.slice(path.lastIndexOf("/") + 1);

/** Shell syntax beyond plain words (pipes, lists, expansions, quotes): a command with any is a program of its own. */
export const shellSyntax = /[;&|<>()$`'"\\*?[\]{}~\n]/;

/** A shell command string that only runs one file: `FILE [args]`, `. FILE`, `source FILE`. Undefined for anything else. */
function commandScript(command: string): string | undefined {
  if (shellSyntax.test(command)) return undefined;
  const words = command.trim().split(/[ \t]+/);
  const file = [".", "source", "exec"].includes(words[0]!) ? words[1] : words[0];
  // A word without `/` is looked up in PATH (a command), not a file named by the argv.
  return file !== undefined && file.includes("/") ? file : undefined;
}

/**
 * The script file argv makes the interpreter `exeName` run, as argv names it (maybe relative
 * to the working directory); undefined when it runs none, or `exeName` is no interpreter.
 */
export function scriptNamedBy(exeName: string, args: readonly string[], loader = false): string | undefined {
  let name = exeName;
  let rest = args.slice(1);
  // busybox is every applet: the applet is argv[0]'s name, or argv[1] after `busybox`.
  if (name === "busybox" && !loader) {
    name = baseName(args[0] ?? "");
    if (name === "busybox") [name = "", ...rest] = rest;
  }
  const syntax = syntaxOf(name, loader);
  if (syntax === undefined) return undefined;
  let command = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === "--") return script(syntax, rest[i + 1], command);
    if (syntax.scriptOption?.has(arg)) return rest[i + 1];
    if (syntax.noScript.has(arg)) return undefined;
    if (syntax.valued.has(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith("--") && arg.includes("=")) continue;
    if (arg.length < 2 || (arg[0] !== "-" && !(syntax === shell && arg[0] === "+"))) return script(syntax, arg, command);
    if (!syntax.clusters || arg.startsWith("--")) continue; // a flag of its own
    // A cluster of short options: `-ex`, `-uB`, `-Wignore` (a valued one takes the rest).
    for (let j = 1; j < arg.length; j++) {
      const option = `${arg[0]}${arg[j]}`;
      if (syntax === shell && option === "-c") {
        command = true;
      } else if (syntax.noScript.has(option)) {
        return undefined;
      } else if (syntax.valued.has(option)) {
        if (j === arg.length - 1) i++;
        break;
      } else if (syntax.attached?.has(option)) {
        break;
      }
    }
  }
  return undefined;
}

/** The operand after the options: the script, or (a shell's `-c`) the command that may name one. */
function script(syntax: Syntax, operand: string | undefined, command: boolean): string | undefined {
  if (operand === undefined || syntax.operandIsProgramText) return undefined;
  return command ? commandScript(operand) : operand;
}

/** `path` as the process names it, made absolute against its working directory (undefined when that is unknown). */
export function absoluteScriptPath(path: string, cwd: string | undefined): string | undefined {
  if (path.startsWith("/")) return normalise(path);
  if (cwd === undefined || !cwd.startsWith("/")) return undefined;
  return normalise(`${cwd}/${path}`);
}

/** `.` and `..` and repeated slashes resolved lexically, as a glob in a policy expects the path. */
function normalise(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}
