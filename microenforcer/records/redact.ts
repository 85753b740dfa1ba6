/**
 * Secrets out of command lines before they become records. A command line is evidence,
 * so only the secret itself is replaced and its name stays: `--password=[REDACTED]`,
 * `https://deploy:[REDACTED]@git.example`, `Authorization: Bearer [REDACTED]`.
 *
 * Built-in rules: options and key=value pairs whose name says secret (password, token,
 * api key, ...), in every argument form (`--name=v`, `--name v`, `NAME=v`, `?name=v&`,
 * `host=h password=v`); passwords in URLs, URL signatures (presigned, SAS) and webhook
 * URLs; secret-named headers and Bearer tokens; well-known token formats; short options
 * and positional arguments that carry a password only for the program that has them.
 *
 * Scripts (`sh -c`, `su -c`, `env -S`, ...) are parsed as a shell would and redacted per
 * command from the original text, so a fake secret in front of a script hides nothing but
 * itself; expansions (`$(…)`, `$VAR`) are code and are never replaced, and what a
 * substitution runs is redacted as a script of its own. Code given to interpreters
 * (`python -c`, `perl -e`, ...) gets the text rules with values ending at separators.
 * Policy patterns (spec.forensics.redaction.patterns) add to all this.
 */
import { MAX_NESTING, parseScript, type QuoteSegment, type Range, type Script, type ShellWord } from "./shell-script.ts";

export const REDACTED = "[REDACTED]";

export interface Redaction {
  args: string[];
  /** Something was replaced. */
  redacted: boolean;
}

export interface Redactor {
  redact(args: readonly string[]): Redaction;
}

/** A part of a text to replace by REDACTED, followed by `suffix` (quotes that keep a script balanced). */
interface Span extends Range {
  suffix?: string;
}

/** Words that name a secret (in option names, variable names, query keys), split at - _ . */
const SECRET_WORDS = new Set(["pass", "password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "credential", "credentials", "creds"]);
/** Joined names that are secrets although no single word is (api-key, x_access_key, AccountKey, ...). */
const SECRET_COMPOUNDS = /(?:password|passwd|passphrase|pwd|secret|token|apikey|accesskey|accountkey|privatekey|secretkey)$/;
/** A last word that makes the value a reference or a setting, not the secret (--password-file, TOKEN_TTL). */
const NOT_THE_SECRET = new Set(["file", "path", "dir", "env", "stdin", "fd", "prompt", "cmd", "command", "length", "len", "min", "max", "type", "id", "name", "policy", "ttl", "expiry", "expires", "url", "header", "mode"]);

export function isSecretName(name: string): boolean {
  const words = name.replace(/^-+/, "").toLowerCase().split(/[-_.]+/).filter(Boolean);
  const last = words.at(-1);
  if (last === undefined || NOT_THE_SECRET.has(last)) return false;
  return words.some((word) => SECRET_WORDS.has(word) || SECRET_COMPOUNDS.test(word)) || SECRET_COMPOUNDS.test(words.join(""));
}

/** Headers whose value is a credential: secret names, `*-Key` (Ocp-Apim-Subscription-Key), cookies, authorization. */
function isSecretHeader(name: string): boolean {
  return isSecretName(name) || /^(?:(?:proxy-)?authorization|(?:set-)?cookie)$|(?:^|-)(?:key|auth|signature)$/i.test(name);
}

/** Query keys that are bearer credentials only inside a URL: presigned (S3, GCS, CloudFront) and SAS signatures. */
const URL_SIGNATURES = new Set(["sig", "signature", "x-amz-signature", "x-goog-signature"]);

/**
 * How a text is used. `argument`: one argv entry, where a pair at its start (`--password=a b`)
 * holds everything up to a line break or a shell separator; `embedded`: code or a document,
 * where values end at blanks and separators.
 */
type TextMode = "argument" | "embedded";

/** A value in one argument: up to a line break or a shell separator followed by a blank. */
const ARGUMENT_VALUE = /(?:(?![;&|]+[ \t])[^\n])*/y;
/** A value inside a text: up to a blank, a separator or a quote. */
const EMBEDDED_VALUE = /[^\s&;,'"]*/y;

function stickyMatch(pattern: RegExp, text: string, at: number): number {
  pattern.lastIndex = at;
  return pattern.exec(text)![0].length;
}

/** key=value pairs anywhere (options, variables, query strings, conninfo): the value of a secret key. */
function pairSpans(text: string, mode: TextMode): Span[] {
  const spans: Span[] = [];
  // A key starts where a run of key characters starts (also keeps the search linear on long runs).
  const key = /(?<![\w.-])([\w.-]+)=/g;
  for (let match = key.exec(text); match !== null; match = key.exec(text)) {
    const name = match[1]!;
    const inQuery = match.index > 0 && /[?&]/.test(text[match.index - 1]!);
    if (!isSecretName(name) && !(inQuery && URL_SIGNATURES.has(name.toLowerCase()))) continue;
    let start = match.index + match[0].length;
    let end: number;
    const quote = text[start];
    if (mode === "argument" && match.index === 0) {
      end = start + stickyMatch(ARGUMENT_VALUE, text, start);
    } else if (quote === "'" || quote === '"') {
      start++;
      end = text.indexOf(quote, start);
      if (end < 0) end = text.length;
    } else if (mode === "embedded" && (text.startsWith("$(", start) || text.startsWith("${", start) || quote === "`")) {
      continue;
    } else {
      end = start + stickyMatch(EMBEDDED_VALUE, text, start);
    }
    if (end > start) spans.push({ start, end });
    key.lastIndex = Math.max(key.lastIndex, end);
  }
  return spans;
}

const AUTH_SCHEME = /(?:[A-Za-z][\w-]*[ \t]+(?=\S))?/y;
const HEADER_VALUE = /[^'"\n]*/y;

/** `Name: value` headers with a secret name: the value, after an auth scheme word for Authorization. */
function headerSpans(text: string): Span[] {
  const spans: Span[] = [];
  // A header starts the text or follows a blank, a quote or `=` (--header=…), never `//` (user:password@ in a URL).
  const header = /(?<=^|[\s'"=,;{])([A-Za-z][\w-]*)[ \t]*:[ \t]*/g;
  for (let match = header.exec(text); match !== null; match = header.exec(text)) {
    if (!isSecretHeader(match[1]!)) continue;
    let start = match.index + match[0].length;
    if (/authorization$/i.test(match[1]!)) start += stickyMatch(AUTH_SCHEME, text, start);
    const length = /[\s'"]/.test(text[start] ?? " ") ? 0 : stickyMatch(HEADER_VALUE, text, start);
    if (length === 0) continue;
    spans.push({ start, end: start + length });
    header.lastIndex = start + length;
  }
  return spans;
}

/** Secrets that identify themselves wherever they are: the `secret` group is replaced. */
const TOKEN_PATTERNS: readonly RegExp[] = [
  /(?<secret>-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))/dg,
  // scheme://user:password@host
  /(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:(?<secret>[^/\s@]+)@/dgi,
  /\bBearer\s+(?<secret>[A-Za-z0-9\-._~+/]+=*)/dg,
  /\b(?<secret>(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b/dg,
  /\b(?<secret>gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_-]{20,})\b/dg,
  /\b(?<secret>xox[abposr]-[A-Za-z0-9-]{10,}|npm_[A-Za-z0-9]{36}|AIza[0-9A-Za-z_-]{35}|[sr]k_(?:live|test)_[0-9a-zA-Z]{16,})\b/dg,
  /\b(?<secret>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})/dg,
  // Vault tokens (service, batch, recovery).
  /\b(?<secret>hv[sbr]\.[A-Za-z0-9_-]{20,})/dg,
  // Webhook URLs whose last path segment is the credential.
  /\bhooks\.slack\.com\/(?:services|workflows|triggers)\/(?:[A-Za-z0-9_-]+\/)+(?<secret>[A-Za-z0-9_-]{8,})/dg,
  /\bdiscord(?:app)?\.com\/api\/webhooks\/\d+\/(?<secret>[A-Za-z0-9_-]{20,})/dg,
];

/** What every token pattern needs somewhere in the text: most arguments have none, and skip the ten searches. */
const TOKEN_HINT = /-----BEGIN|:\/\/|Bearer|A[KSB]IA|ACCA|gh[pousr]_|github_pat_|glpat-|xox|npm_|AIza|k_(?:live|test)_|eyJ|hv[sbr]\.|hooks\.slack|discord/;

function tokenSpans(text: string): Span[] {
  const spans: Span[] = [];
  if (!TOKEN_HINT.test(text)) return spans;
  for (const pattern of TOKEN_PATTERNS) {
    for (const match of text.matchAll(pattern)) {
      const [start, end] = match.indices!.groups!.secret!;
      if (end > start) spans.push({ start, end });
    }
  }
  return spans;
}

function textSpans(text: string, mode: TextMode): Span[] {
  const spans = tokenSpans(text);
  // Pairs need a `=`, headers a `:`; most arguments have neither.
  if (text.includes("=")) spans.push(...pairSpans(text, mode));
  if (text.includes(":")) spans.push(...headerSpans(text));
  return spans;
}

/** The secret part of an option's value. */
type ValueRule = (value: string) => Range | undefined;
const whole: ValueRule = (value) => (value.length > 0 ? { start: 0, end: value.length } : undefined);
/** user:password → user:[REDACTED]; a lone user name is not a secret (the program prompts). */
const after =
  (separator: string): ValueRule =>
  (value) => {
    const at = value.indexOf(separator);
    return at >= 0 && at + 1 < value.length ? { start: at + 1, end: value.length } : undefined;
  };
const afterColon = after(":");
/** Samba's user%password. */
const afterPercent = after("%");
/** openssl pass phrases: only `pass:` carries one; env:, file:, fd:, stdin name where it is. */
const opensslPass: ValueRule = (value) => (value.startsWith("pass:") && value.length > 5 ? { start: 5, end: value.length } : undefined);

interface ProgramRules {
  /** Option → rule for the argument after it. */
  next?: Readonly<Record<string, ValueRule>>;
  /** Option prefixes whose secret is attached (-pSECRET, --user=u:p) → rule for what follows. */
  attached?: Readonly<Record<string, ValueRule>>;
  /** The rules apply only when this subcommand is present (docker login). */
  subcommand?: string;
  /** Arguments (program at 0) that are secrets as a whole. */
  positional?: (command: readonly string[]) => number[];
}

/** Indices of the arguments after `from` that are neither options nor the values of `valued` options. */
function positionals(command: readonly string[], from: number, valued: ReadonlySet<string> = new Set()): number[] {
  const found: number[] = [];
  for (let i = from; i < command.length; i++) {
    const arg = command[i]!;
    if (valued.has(arg)) i++;
    else if (!arg.startsWith("-")) found.push(i);
  }
  return found;
}

/** The positional after `words` (a subcommand path such as `alias set`), at `index` among them. */
function positionalAfter(words: readonly string[], index: number, valued?: ReadonlySet<string>): (command: readonly string[]) => number[] {
  return (command) => {
    const at = command.findIndex((_, i) => words.every((word, k) => command[i + k] === word));
    const found = at < 0 ? undefined : positionals(command, at + words.length, valued)[index];
    return found === undefined ? [] : [found];
  };
}

const MYSQL: ProgramRules = { attached: { "-p": whole } };
const LOGIN: ProgramRules = { next: { "-p": whole }, subcommand: "login" };
const SAMBA: ProgramRules = { next: { "-U": afterPercent, "--user": afterPercent }, attached: { "-U": afterPercent, "--user=": afterPercent } };
const LDAP: ProgramRules = { next: { "-w": whole }, attached: { "-w": whole } };
const ZIP: ProgramRules = { next: { "-P": whole }, attached: { "-P": whole } };
const KEYSTORE: ProgramRules = { next: Object.fromEntries(["-storepass", "-keypass", "-srcstorepass", "-deststorepass", "-srckeypass", "-destkeypass", "-new"].map((o) => [o, whole])) };
const MC_VALUED = new Set(["--api", "--path", "--config-dir", "-C"]);
const VAULT_VALUED = new Set(["-method", "-path", "-address", "-namespace", "-ns", "-ca-cert", "-ca-path", "-client-cert", "-client-key", "-tls-server-name", "-format", "-field", "-mfa", "-header", "-wrap-ttl"].flatMap((o) => [o, `-${o}`]));
const PROGRAMS: Readonly<Record<string, ProgramRules>> = {
  ...Object.fromEntries(["mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mysqlbinlog", "mysqlpump", "mariadb", "mariadb-dump", "mariadb-admin"].map((p) => [p, MYSQL])),
  ...Object.fromEntries(["docker", "podman", "nerdctl", "buildah", "helm", "oras", "crane", "regctl", "az"].map((p) => [p, LOGIN])),
  ...Object.fromEntries(["smbclient", "rpcclient", "smbcacls", "smbget", "smbtree", "net"].map((p) => [p, SAMBA])),
  ...Object.fromEntries(["ldapsearch", "ldapmodify", "ldapadd", "ldapdelete", "ldapwhoami", "ldapcompare", "ldapmodrdn", "ldapexop"].map((p) => [p, LDAP])),
  ...Object.fromEntries(["zip", "unzip", "zipcloak"].map((p) => [p, ZIP])),
  ...Object.fromEntries(["7z", "7za", "7zr", "7zz"].map((p) => [p, { attached: { "-p": whole } }])),
  ...Object.fromEntries(["keytool", "jarsigner"].map((p) => [p, KEYSTORE])),
  // smbclient //server/share PASSWORD
  smbclient: { ...SAMBA, positional: (command) => {
    const service = command.findIndex((a, i) => i > 0 && /^(?:\/\/|\\\\)/.test(a));
    return service > 0 && command[service + 1] !== undefined && !command[service + 1]!.startsWith("-") ? [service + 1] : [];
  } },
  ldappasswd: { next: { "-w": whole, "-s": whole, "-a": whole }, attached: { "-w": whole, "-s": whole, "-a": whole } },
  sshpass: { next: { "-p": whole }, attached: { "-p": whole } },
  "redis-cli": { next: { "-a": whole } },
  sqlcmd: { next: { "-P": whole } },
  curl: {
    next: { "-u": afterColon, "--user": afterColon, "-U": afterColon, "--proxy-user": afterColon, "--oauth2-bearer": whole },
    attached: { "-u": afterColon, "-U": afterColon, "--user=": afterColon, "--proxy-user=": afterColon },
  },
  openssl: { next: { "-pass": opensslPass, "-passin": opensslPass, "-passout": opensslPass, "-k": whole } },
  htpasswd: { positional: (command) => (command.some((a) => /^-[a-zA-Z]*b/.test(a)) && command.length > 2 ? [command.length - 1] : []) },
  aws: { positional: (command) => (command[1] === "configure" && command[2] === "set" && command[4] !== undefined && isSecretName(command[3] ?? "") ? [4] : []) },
  // vault login TOKEN (a positional without `=`; `-` reads stdin, key=value pairs are auth method fields).
  vault: { subcommand: "login", positional: (command) => positionalAfter(["login"], 0, VAULT_VALUED)(command).filter((i) => !command[i]!.includes("=")) },
  // mc alias set ALIAS URL ACCESS_KEY SECRET_KEY (and the older `config host add`).
  mc: { positional: (command) => [...positionalAfter(["alias", "set"], 3, MC_VALUED)(command), ...positionalAfter(["config", "host", "add"], 3, MC_VALUED)(command)] },
};

/** Programs that run the rest of their arguments as a command: options that take a value, fixed arguments before the command. */
const WRAPPERS: Readonly<Record<string, { valued?: readonly string[]; fixed?: number }>> = {
  env: { valued: ["-u", "--unset", "-C", "--chdir"] },
  sudo: { valued: ["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"] },
  doas: { valued: ["-u", "-C"] },
  nice: { valued: ["-n"] },
  ionice: { valued: ["-c", "-n"] },
  timeout: { valued: ["-s", "-k"], fixed: 1 },
  chroot: { fixed: 1 },
  exec: { valued: ["-a"] },
  time: { valued: ["-f", "-o"] },
  stdbuf: { valued: ["-i", "-o", "-e"] },
  nohup: {},
  setsid: {},
  command: {},
  builtin: {},
  busybox: {},
};
const ASSIGNMENT = /^[A-Za-z_]\w*=/;

/** A table entry by an argument the process chose: never an inherited property (`constructor`, `valueOf`). */
function entry<T>(table: Readonly<Record<string, T>> | undefined, key: string | undefined): T | undefined {
  return table !== undefined && key !== undefined && Object.hasOwn(table, key) ? table[key] : undefined;
}

function programName(arg: string | undefined): string {
  return arg === undefined ? "" : arg.slice(arg.lastIndexOf("/") + 1);
}

/** Index of the program a command runs, past variable assignments and wrappers (`sudo -u x env A=b prog`). */
function programIndex(args: readonly string[], from: number): number {
  let i = from;
  for (;;) {
    while (i < args.length && ASSIGNMENT.test(args[i]!)) i++;
    const wrapper = entry(WRAPPERS, programName(args[i]));
    if (wrapper === undefined) return i;
    for (i++; i < args.length && args[i]!.startsWith("-") && args[i] !== "-"; i++) {
      if (args[i] === "--") {
        i++;
        break;
      }
      if (wrapper.valued?.includes(args[i]!)) i++;
    }
    i += wrapper.fixed ?? 0;
  }
}

const SHELLS = new Set(["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"]);
/** Interpreters and the options whose argument is their code. */
const INTERPRETERS: Readonly<Record<string, readonly string[]>> = {
  python: ["-c"],
  perl: ["-e", "-E"],
  ruby: ["-e"],
  node: ["-e", "--eval", "-p", "--print"],
  nodejs: ["-e", "--eval", "-p", "--print"],
  deno: ["eval"],
  php: ["-r"],
  lua: ["-e"],
};
/** Programs with an option whose argument is a shell script. */
const SCRIPT_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  su: ["-c", "--command"],
  runuser: ["-c", "--command"],
  flock: ["-c", "--command"],
  script: ["-c", "--command"],
  env: ["-S", "--split-string"],
};

interface EmbeddedScript {
  /** Where the script starts in its argument (after `--command=`). */
  offset: number;
  shell: boolean;
}

/** How far after a program its script option is looked for (bounds the work on a million-argument argv). */
const OPTION_REACH = 16;

/** Arguments that are scripts: `sh -c S` (wherever it appears: after `kubectl exec --`, `xargs`, ...), `su -c S`, `python -c CODE`. */
function embeddedScripts(args: readonly string[]): Map<number, EmbeddedScript> {
  const scripts = new Map<number, EmbeddedScript>();
  const near = (i: number, found: (arg: string) => boolean) => {
    for (let k = i + 1; k < Math.min(args.length, i + 1 + OPTION_REACH); k++) if (found(args[k]!)) return k;
    return -1;
  };
  args.forEach((arg, i) => {
    const name = programName(arg);
    // python3.12 → python
    const program = /\d$/.test(name) ? name.replace(/[\d.]+$/, "") : name;
    if (SHELLS.has(program)) {
      // The first non-option ends a shell's options: `sh script.sh -c` runs no -c script.
      const at = near(i, (a) => !a.startsWith("-") || /^-[a-zA-Z]*c[a-zA-Z]*$/.test(a));
      if (at > 0 && args[at]!.startsWith("-") && at + 1 < args.length) scripts.set(at + 1, { offset: 0, shell: true });
    }
    for (const option of entry(SCRIPT_OPTIONS, program) ?? []) {
      const at = near(i, (a) => a === option || a.startsWith(`${option}=`));
      if (at < 0) continue;
      if (args[at] === option && at + 1 < args.length) scripts.set(at + 1, { offset: 0, shell: true });
      else if (args[at] !== option) scripts.set(at, { offset: option.length + 1, shell: true });
    }
    const codeOptions = entry(INTERPRETERS, program);
    const code = codeOptions === undefined ? -1 : near(i, (a) => codeOptions.includes(a));
    if (code > 0 && code + 1 < args.length) scripts.set(code + 1, { offset: 0, shell: false });
  });
  return scripts;
}

/** Where a command is: how many scripts deep, and the parse budget left for its command line. */
interface Walk {
  depth: number;
  budget: Budget;
}

/** Spans per argument of one command (values in argument coordinates). */
function commandSpans(args: readonly string[], context: Walk): Span[][] {
  const scripts = embeddedScripts(args);
  const spans = args.map((arg, i) => {
    const script = scripts.get(i);
    if (script === undefined) return textSpans(arg, "argument");
    const inner = arg.slice(script.offset);
    return shift(script.shell ? scriptSpans(inner, deeper(context)) : textSpans(inner, "embedded"), script.offset);
  });
  const mark = (i: number, range: Range | undefined) => {
    if (range !== undefined && !scripts.has(i)) spans[i]!.push(range);
  };
  // The program itself, and the command after `--` (kubectl exec pod -- mysql -p…).
  const dashes = args.indexOf("--");
  const known = new Set<number>();
  for (const at of new Set([programIndex(args, 0), ...(dashes > 0 ? [programIndex(args, dashes + 1)] : [])])) {
    for (const i of programSpans(args.slice(at), (i, range) => mark(at + i, range))) known.add(at + i);
  }
  // --password VALUE and Go-style -password VALUE, for any program, unless the program says
  // otherwise (openssl -pass env:X); never a single letter (-p is a port as often as a password).
  for (let i = 1; i < args.length; i++) {
    if (!known.has(i) && /^--?[A-Za-z][\w.-]+$/.test(args[i - 1]!) && isSecretName(args[i - 1]!) && !OPTION.test(args[i]!)) mark(i, whole(args[i]!));
  }
  return spans;
}

const OPTION = /^-[A-Za-z-]/;

/** Marks what the program's own rules find; returns the arguments those rules decided on (option values). */
function programSpans(command: readonly string[], mark: (i: number, range: Range | undefined) => void): number[] {
  const rules = entry(PROGRAMS, programName(command[0]));
  if (rules === undefined || (rules.subcommand !== undefined && !command.includes(rules.subcommand))) return [];
  const decided: number[] = [];
  for (let i = 1; i < command.length; i++) {
    const arg = command[i]!;
    const rule = entry(rules.next, command[i - 1]);
    if (rule !== undefined) decided.push(i);
    if (rule !== undefined && !OPTION.test(arg)) mark(i, rule(arg));
    for (const [prefix, attached] of Object.entries(rules.attached ?? {})) {
      if (arg.length > prefix.length && arg.startsWith(prefix) && (prefix.startsWith("--") || !arg.startsWith("--"))) {
        const range = attached(arg.slice(prefix.length));
        if (range !== undefined) mark(i, { start: range.start + prefix.length, end: range.end + prefix.length });
      }
    }
  }
  for (const i of rules.positional?.(command) ?? []) mark(i, whole(command[i]!));
  return decided;
}

/** A command that reads a secret from its stdin: `docker login --password-stdin`, `vault login -`, `chpasswd`. */
function readsSecretFromStdin(args: readonly string[]): boolean {
  const command = args.slice(programIndex(args, 0));
  const program = programName(command[0]);
  return (
    command.some((a) => /^--?[\w-]+-stdin$/.test(a) && isSecretName(a.slice(0, -"-stdin".length))) ||
    program === "chpasswd" ||
    (program === "passwd" && command.includes("--stdin")) ||
    (program === "vault" && command.includes("login") && command.includes("-"))
  );
}

/** Commands that print their arguments: what they pipe into a secret-reading command is the secret. */
const PRINTERS = new Set(["echo", "printf"]);

/**
 * Script characters parsed per command line: parsing costs ~5 µs a command, so an argv built
 * to be expensive (a 2 MB `sh -c sh -c …`) must not hold the sensor for seconds. Scripts past
 * it get the text rules only (values end at separators, so nothing is swallowed).
 */
const PARSE_BUDGET = 16 * 1024;

interface Budget {
  chars: number;
}

/** A shell script: each command through the argv rules, from the original text. Spans in script coordinates. */
function scriptSpans(script: string, context: Walk): Span[] {
  // Past this depth (sh -c in sh -c in ...) or the budget, the text rules alone.
  if (context.depth > MAX_NESTING || script.length > context.budget.chars) return textSpans(script, "embedded");
  context.budget.chars -= Math.max(script.length, 64);
  const parsed = parseScript(script);
  return parsedScriptSpans(script, parsed, parsed.quotes, context);
}

function deeper(context: Walk): Walk {
  return { depth: context.depth + 1, budget: context.budget };
}

function parsedScriptSpans(text: string, { commands, comments }: Script, quotes: readonly QuoteSegment[], context: Walk): Span[] {
  const spans = comments.flatMap((r) => shift(textSpans(text.slice(r.start, r.end), "embedded"), r.start));
  commands.forEach((command, k) => {
    const args = command.words.map((w) => w.value);
    const argSpans = commandSpans(args, context);
    const next = commands[k + 1];
    const feedsSecret = command.pipesTo && next !== undefined && readsSecretFromStdin(next.words.map((w) => w.value));
    const stdinSecret = feedsSecret || readsSecretFromStdin(args);
    const program = programIndex(args, 0);
    if (feedsSecret && PRINTERS.has(programName(args[program]))) {
      const printed = positionals(args, program + 1);
      if (programName(args[program]) === "printf" && args[printed[0] ?? -1]?.includes("%")) printed.shift();
      for (const i of printed) argSpans[i]!.push(whole(args[i]!)!);
    }
    const words = (word: ShellWord, valueSpans: readonly Span[]) => spans.push(...wordSpans(text, word, valueSpans, quotes, context));
    for (const redirect of command.redirects) {
      const body = redirect.body;
      if (body !== undefined) spans.push(...(stdinSecret ? [body] : shift(textSpans(text.slice(body.start, body.end), "embedded"), body.start)));
      const target = redirect.target;
      if (target !== undefined) {
        const secret = stdinSecret && redirect.op.endsWith("<<<") ? whole(target.value) : undefined;
        words(target, secret !== undefined ? [secret] : textSpans(target.value, "embedded"));
      }
    }
    command.words.forEach((word, i) => words(word, argSpans[i]!));
  });
  return spans;
}

/** A word's spans (value coordinates) in script coordinates; expansions are never replaced, scripts nested in them are redacted. */
function wordSpans(text: string, word: ShellWord, valueSpans: readonly Span[], quotes: readonly QuoteSegment[], context: Walk): Span[] {
  const spans = word.scripts.flatMap((nested) => parsedScriptSpans(text, nested, quotes, deeper(context)));
  for (const span of subtract(merge(valueSpans), word.code)) {
    const first = word.segment[span.start]!;
    const last = word.segment[span.end - 1]!;
    // A replacement from inside one quoted part to outside it (or into another) takes quote
    // characters with it: close the first and reopen the last, as the text around expects.
    const requote = first === last ? "" : `${first === 0 ? "" : quotes[first]!.close}${last === 0 ? "" : quotes[last]!.open}`;
    spans.push({ start: word.at[span.start]!, end: word.at[span.end - 1]! + 1, suffix: `${span.suffix ?? ""}${requote}` });
  }
  return spans;
}

function shift(spans: readonly Span[], by: number): Span[] {
  return by === 0 ? [...spans] : spans.map((s) => ({ ...s, start: s.start + by, end: s.end + by }));
}

/** Sorted, overlapping spans joined (the suffix of the one reaching furthest kept). */
function merge(spans: readonly Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: Span[] = [];
  for (const span of sorted) {
    const last = merged.at(-1);
    if (last !== undefined && span.start < last.end) {
      if (span.end > last.end) merged[merged.length - 1] = { ...span, start: last.start };
    } else merged.push({ ...span });
  }
  return merged;
}

/** Spans with the (sorted, disjoint) `holes` cut out. */
function subtract(spans: readonly Span[], holes: readonly Range[]): Span[] {
  let out = [...spans];
  for (const hole of holes) {
    out = out.flatMap((s) => {
      if (hole.end <= s.start || hole.start >= s.end) return [s];
      const parts: Span[] = [];
      if (hole.start > s.start) parts.push({ start: s.start, end: hole.start });
      if (hole.end < s.end) parts.push({ start: hole.end, end: s.end, ...(s.suffix !== undefined ? { suffix: s.suffix } : {}) });
      return parts;
    });
  }
  return out;
}

function apply(text: string, spans: readonly Span[]): string {
  if (spans.length === 0) return text;
  let out = "";
  let from = 0;
  for (const span of merge(spans)) {
    out += text.slice(from, span.start) + REDACTED + (span.suffix ?? "");
    from = span.end;
  }
  return out + text.slice(from);
}

/**
 * `patterns`: regular expressions (JavaScript syntax, matched case-insensitively against
 * each argument); a named group `secret` marks what to replace, else the whole match is.
 */
export function createRedactor(patterns: readonly string[] = []): Redactor {
  const custom = patterns.map((pattern) => new RegExp(pattern, "giu"));
  const cache = new WeakMap<readonly string[], Redaction>();
  const applyCustom = (arg: string) =>
    custom.reduce((text, pattern) => text.replace(pattern, (...match) => replaceSecret(match)), arg);
  return {
    redact(args) {
      let result = cache.get(args);
      if (result === undefined) {
        const spans = commandSpans(args, { depth: 0, budget: { chars: PARSE_BUDGET } });
        const out = args.map((arg, i) => applyCustom(apply(arg, spans[i]!)));
        result = { args: out, redacted: out.some((arg, i) => arg !== args[i]) };
        cache.set(args, result);
      }
      return result;
    },
  };
}

/** String.replace callback arguments → the match with its `secret` group (or all of it) replaced. */
function replaceSecret(match: unknown[]): string {
  const text = match[0] as string;
  const groups = match.at(-1);
  const secret = typeof groups === "object" && groups !== null ? (groups as Record<string, string | undefined>).secret : undefined;
  if (secret === undefined) return REDACTED;
  const at = text.indexOf(secret);
  return at < 0 ? REDACTED : `${text.slice(0, at)}${REDACTED}${text.slice(at + secret.length)}`;
}
