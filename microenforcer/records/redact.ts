/**
 * Secrets out of command lines before they become records. A command line is evidence,
 * so only the secret itself is replaced and its name stays: `--password=[REDACTED]`,
 * `https://deploy:[REDACTED]@git.example`, `Authorization: Bearer [REDACTED]`.
 *
 * Built-in rules: options and key=value pairs whose name says secret (password, token,
 * api key, ...), in every argument form (`--name=v`, `--name v`, `NAME=v`, `?name=v&`,
 * `host=h password=v`); passwords in URLs; Authorization-like headers and Bearer tokens;
 * well-known token formats (AWS access key ids, GitHub/GitLab/Slack/npm tokens, JWTs,
 * private key blocks); short options that carry a password only for the program that has
 * them (`mysql -pSECRET`, `sshpass -p`, `redis-cli -a`, `curl -u user:pass`, `docker
 * login -p`, `openssl -passin pass:`, `htpasswd -b`, `keytool -storepass`, `aws configure
 * set`); and, inside `sh -c` scripts, all of these per command. Policy patterns
 * (spec.forensics.redaction.patterns) add to them.
 */

export const REDACTED = "[REDACTED]";

export interface Redaction {
  args: string[];
  /** Something was replaced. */
  redacted: boolean;
}

export interface Redactor {
  redact(args: readonly string[]): Redaction;
}

/** Words that name a secret (in option names, variable names, query keys), split at - _ . */
const SECRET_WORDS = new Set(["pass", "password", "passwd", "passphrase", "pwd", "secret", "token", "apikey", "credential", "credentials", "creds"]);
/** Joined names that are secrets although no single word is (api-key, x_access_key, ...). */
const SECRET_COMPOUNDS = /(?:password|passwd|passphrase|pwd|secret|token|apikey|accesskey|privatekey|secretkey)$/;
/** A last word that makes the value a reference or a setting, not the secret (--password-file, TOKEN_TTL). */
const NOT_THE_SECRET = new Set(["file", "path", "dir", "env", "stdin", "fd", "prompt", "cmd", "command", "length", "len", "min", "max", "type", "id", "name", "policy", "ttl", "expiry", "expires", "url", "header", "mode"]);

export function isSecretName(name: string): boolean {
  const words = name.replace(/^-+/, "").toLowerCase().split(/[-_.]+/).filter(Boolean);
  const last = words.at(-1);
  if (last === undefined || NOT_THE_SECRET.has(last)) return false;
  return words.some((word) => SECRET_WORDS.has(word) || SECRET_COMPOUNDS.test(word)) || SECRET_COMPOUNDS.test(words.join(""));
}

/** Replacements inside any text: the first group is kept, the rest replaced. */
const TEXT_RULES: ReadonlyArray<readonly [RegExp, (match: string, ...groups: string[]) => string]> = [
  // Private key blocks, whole.
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, () => REDACTED],
  // Passwords in URLs: scheme://user:password@host
  [/([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^/\s@]+@/gi, (_m, kept) => `${kept}${REDACTED}@`],
  // Header values, up to a quote in a script: Authorization: Basic xyz → Authorization: Basic [REDACTED]
  [/\b((?:proxy-)?authorization\s*:\s*(?:[A-Za-z][\w-]*\s+(?=\S))?)[^\s'"][^'"\n]*/gi, (_m, kept) => `${kept}${REDACTED}`],
  [/\b((?:x-api-key|api-key|x-auth-token|private-token|x-amz-security-token|cookie|set-cookie)\s*:\s*)[^\s'"][^'"\n]*/gi, (_m, kept) => `${kept}${REDACTED}`],
  [/\b(Bearer\s+)[A-Za-z0-9\-._~+/]+=*/g, (_m, kept) => `${kept}${REDACTED}`],
  // Token formats that identify themselves.
  [/\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b/g, () => REDACTED],
  [/\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}\b|\bglpat-[A-Za-z0-9_-]{20,}\b/g, () => REDACTED],
  [/\bxox[abposr]-[A-Za-z0-9-]{10,}\b|\bnpm_[A-Za-z0-9]{36}\b|\bAIza[0-9A-Za-z_-]{35}\b|\b[sr]k_(?:live|test)_[0-9a-zA-Z]{16,}\b/g, () => REDACTED],
  [/\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, () => REDACTED],
];

/** key=value pairs anywhere (options, variables, query strings, conninfo): the value of a secret key. */
function redactPairs(text: string): string {
  let out = "";
  let from = 0;
  const key = /([\w.-]+)=/g;
  for (let match = key.exec(text); match !== null; match = key.exec(text)) {
    if (!isSecretName(match[1]!)) continue;
    const valueStart = match.index + match[0].length;
    // An argument that is the whole pair (--password=v, PASSWORD=v): the rest is the value.
    // Inside a longer text (?token=v&x, host=h password=v): up to the next separator.
    const whole = match.index === 0;
    const valueEnd = whole ? text.length : valueStart + /^[^\s&;,'"]*/.exec(text.slice(valueStart))![0].length;
    if (valueEnd === valueStart) continue;
    out += text.slice(from, valueStart) + REDACTED;
    from = valueEnd;
    key.lastIndex = valueEnd;
  }
  return out + text.slice(from);
}

export function redactText(text: string): string {
  let out = redactPairs(text);
  for (const [pattern, replace] of TEXT_RULES) out = out.replace(pattern, replace);
  return out;
}

type ValueRule = (value: string) => string;
const whole: ValueRule = () => REDACTED;
/** user:password → user:[REDACTED]; a lone user name is not a secret (the program prompts). */
const afterColon: ValueRule = (value) => (value.includes(":") ? `${value.slice(0, value.indexOf(":") + 1)}${REDACTED}` : value);
/** openssl pass phrases: only `pass:` carries one; env:, file:, fd:, stdin name where it is. */
const opensslPass: ValueRule = (value) => (value.startsWith("pass:") ? `pass:${REDACTED}` : value);

interface ProgramOptions {
  /** Option → rule for the argument after it. */
  next?: Readonly<Record<string, ValueRule>>;
  /** Short options whose secret is attached (-pSECRET) → rule for what follows them. */
  attached?: Readonly<Record<string, ValueRule>>;
  /** Applies only when this subcommand is present (docker login). */
  subcommand?: string;
}

const MYSQL: ProgramOptions = { attached: { "-p": whole } };
const LOGIN: ProgramOptions = { next: { "-p": whole }, subcommand: "login" };
const OPENSSL: ProgramOptions = { next: { "-pass": opensslPass, "-passin": opensslPass, "-passout": opensslPass, "-k": whole } };
const PROGRAMS: Readonly<Record<string, ProgramOptions>> = {
  ...Object.fromEntries(["mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mysqlbinlog", "mysqlpump", "mariadb", "mariadb-dump", "mariadb-admin"].map((p) => [p, MYSQL])),
  ...Object.fromEntries(["docker", "podman", "nerdctl", "buildah", "helm", "oras", "crane", "regctl"].map((p) => [p, LOGIN])),
  sshpass: { next: { "-p": whole }, attached: { "-p": whole } },
  "redis-cli": { next: { "-a": whole } },
  sqlcmd: { next: { "-P": whole } },
  curl: { next: { "-u": afterColon, "--user": afterColon, "-U": afterColon, "--proxy-user": afterColon, "--oauth2-bearer": whole }, attached: { "-u": afterColon, "-U": afterColon } },
  openssl: OPENSSL,
};

const SHELLS = new Set(["sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"]);
const COMMAND_SEPARATORS = /^(?:;|&&|\|\||\||&|\(|\)|then|do|else|exec|sudo|env|nohup|time)$/;

function programName(arg: string | undefined): string {
  return (arg ?? "").split("/").pop() ?? "";
}

/** The rule for the argument after `option`, if it holds a secret. */
function nextRule(program: string, options: ProgramOptions | undefined, option: string, args: readonly string[]): ValueRule | undefined {
  const specific = options?.subcommand === undefined || args.includes(options.subcommand) ? options?.next?.[option] : undefined;
  if (specific !== undefined) return specific;
  if (program === "keytool" && /^-\w*pass$/.test(option)) return whole;
  // --password VALUE and Go-style -password VALUE; never a single letter (-p is a port as often as a password).
  if (/^--?[A-Za-z][\w.-]+$/.test(option) && !option.includes("=") && isSecretName(option)) return whole;
  return undefined;
}

/** argv of one command: per-argument text rules, then the options of the program that runs. */
function redactCommand(args: readonly string[]): string[] {
  const program = programName(args[0]);
  const options = PROGRAMS[program];
  const out = args.map((arg) => redactText(arg));
  for (let i = 1; i < args.length; i++) {
    const arg = args[i]!;
    const rule = nextRule(program, options, args[i - 1]!, args);
    if (rule !== undefined && !/^-[A-Za-z-]/.test(arg)) out[i] = rule(arg);
    for (const [short, attachedRule] of Object.entries(options?.attached ?? {})) {
      if (arg.startsWith(short) && arg.length > short.length && !arg.startsWith("--")) {
        const value = attachedRule(arg.slice(short.length));
        if (value !== arg.slice(short.length)) out[i] = `${short}${value}`;
      }
    }
  }
  if (program === "htpasswd" && args.some((a) => /^-[a-zA-Z]*b/.test(a)) && args.length > 2) out[out.length - 1] = REDACTED;
  if (program === "aws" && args[1] === "configure" && args[2] === "set" && args[4] !== undefined && isSecretName(args[3] ?? "")) out[4] = REDACTED;
  if (SHELLS.has(program)) {
    const script = args.findIndex((a, i) => i > 0 && /^-[a-z]*c[a-z]*$/.test(a));
    if (script > 0 && script + 1 < args.length) out[script + 1] = redactScript(out[script + 1]!);
  }
  return out;
}

/** A shell script: each command's words through the argv rules (rough: quoting is not parsed). */
function redactScript(script: string): string {
  const parts = script.split(/(\s+)/);
  const words = parts.filter((_, i) => i % 2 === 0);
  const redacted: string[] = [];
  let command: string[] = [];
  const flush = () => {
    redacted.push(...(command.length > 0 ? redactCommand(command) : []));
    command = [];
  };
  for (const word of words) {
    if (COMMAND_SEPARATORS.test(word) || word === "") {
      flush();
      redacted.push(word);
    } else if (/[;&|]$/.test(word)) {
      command.push(word);
      flush();
    } else command.push(word);
  }
  flush();
  return parts.map((part, i) => (i % 2 === 0 ? redacted[i / 2]! : part)).join("");
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
        const out = redactCommand(args).map(applyCustom);
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
