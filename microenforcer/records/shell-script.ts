/**
 * A shell script (`sh -c` text) split into commands and words the way a POSIX shell or bash
 * would, as far as redaction needs: quotes removed with every character traced back to the
 * script text, expansions kept as written and marked as code, redirections and here-documents
 * apart from the arguments. It never fails: an unterminated quote or substitution runs to the
 * end of the text.
 */

export interface Range {
  start: number;
  end: number;
}

/** A quoted part of a word, so that a replacement ending inside it can close and reopen it. */
export interface QuoteSegment {
  open: string;
  close: string;
}

export interface ShellWord {
  /** The word after quote removal; expansions (`$(…)`, `$X`, …) as written. */
  value: string;
  /** Script offset of each character of `value`. */
  at: number[];
  /** Quote segment of each character of `value` (0: unquoted), an index into ParsedScript.quotes. */
  segment: number[];
  /** Parts of `value` that are expansions (code the shell runs or substitutes), not data. */
  code: Range[];
  /** Scripts nested in the word: `$(…)`, backquotes, `<(…)`, `>(…)`. */
  scripts: Script[];
}

export interface Redirect {
  op: string;
  /** The file, fd or here-string word after the operator. */
  target?: ShellWord;
  /** A here-document's body (`<<`, `<<-`). */
  body?: Range;
}

export interface ShellCommand {
  /** Arguments, program first (assignments and wrappers included, as written). */
  words: ShellWord[];
  redirects: Redirect[];
  /** Its output is the next command's input (`|`, `|&`). */
  pipesTo: boolean;
}

/** Commands and comments; every offset is into the text given to parseScript. */
export interface Script {
  commands: ShellCommand[];
  /** Comment texts (after `#`). */
  comments: Range[];
}

export interface ParsedScript extends Script {
  /** Quote segments, by the ids in ShellWord.segment; entry 0 stands for "unquoted". */
  quotes: QuoteSegment[];
}

/** Reserved words that start or end compound commands: separators here, when in command position. */
const KEYWORDS = new Set(["if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "case", "esac", "select", "function", "{", "}", "!", "[[", "]]"]);
/** Control and redirection operators, longest first; an io number (`3<>`) belongs to its redirection. */
const OPERATOR = /\d*(?:<<<|<<-|<<|<>|<&|>&|>>|>\||<|>)|&>>|&>|;;&|;;|;&|;|&&|\|\||\|&|\||&|\(|\)/y;
/** Substitutions nested deeper than this are taken as code to the end of the text, unparsed (bounds the recursion). */
export const MAX_NESTING = 32;
const PARAMETER = /\$(?:[A-Za-z_]\w*|[0-9@*#?$!-])/y;
/** Blanks (only these split words, not every Unicode space) and operator characters. */
const WORD_END = /[ \t\r\n;&|()<>]/;

export function parseScript(text: string): ParsedScript {
  const quotes: QuoteSegment[] = [{ open: "", close: "" }];
  const result = lexCommands(text, 0, { nesting: 0, quotes });
  return { commands: result.commands, comments: result.comments, quotes };
}

interface Lexed extends Script {
  /** Offset after the last character consumed (after the `)` or backquote closing a substitution). */
  end: number;
}

interface Context {
  /** Substitutions the text being lexed is in. */
  nesting: number;
  quotes: QuoteSegment[];
  /** What ends the substitution being lexed: `)` (its unmatched one) or a backquote. */
  closer?: ")" | "`";
}

/** Commands from `from`, to the end of the text or of the substitution being lexed. */
function lexCommands(text: string, from: number, context: Context): Lexed {
  const commands: ShellCommand[] = [];
  const comments: Range[] = [];
  let command: ShellCommand = { words: [], redirects: [], pipesTo: false };
  let redirect: Redirect | undefined;
  let heredocs: Array<{ redirect: Redirect; delimiter: string; stripTabs: boolean }> = [];
  let depth = 0;
  const endCommand = () => {
    if (command.words.length > 0 || command.redirects.length > 0) commands.push(command);
    command = { words: [], redirects: [], pipesTo: false };
  };
  let i = from;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "`" && context.closer === "`") {
      endCommand();
      return { commands, comments, end: i + 1 };
    } else if (c === " " || c === "\t" || c === "\r") {
      i++;
    } else if (c === "\\" && text[i + 1] === "\n") {
      i += 2;
    } else if (c === "\n") {
      endCommand();
      i = readHeredocs(text, i + 1, heredocs);
      heredocs = [];
    } else if (c === "#") {
      const end = lineEnd(text, i);
      comments.push({ start: i + 1, end });
      i = end;
    } else if ((c === "<" || c === ">") && text[i + 1] === "(") {
      i = addWord(readWord(text, i, context));
    } else {
      OPERATOR.lastIndex = i;
      const op = OPERATOR.exec(text)?.[0];
      if (op === undefined) {
        i = addWord(readWord(text, i, context));
        continue;
      }
      i += op.length;
      if (/[<>]/.test(op)) {
        redirect = { op };
        command.redirects.push(redirect);
      } else if (op === ")" && context.closer === ")" && depth === 0) {
        endCommand();
        return { commands, comments, end: i };
      } else {
        if (op === "(") depth++;
        if (op === ")") depth--;
        if (op === "|" || op === "|&") command.pipesTo = true;
        endCommand();
      }
    }
  }
  endCommand();
  return { commands, comments, end: text.length };

  function addWord(word: ShellWord & { end: number }): number {
    if (redirect !== undefined) {
      redirect.target = word;
      if (redirect.op.endsWith("<<") || redirect.op.endsWith("<<-")) {
        heredocs.push({ redirect, delimiter: word.value, stripTabs: redirect.op.endsWith("-") });
      }
      redirect = undefined;
    } else if (command.words.length === 0 && KEYWORDS.has(word.value) && word.segment.every((s) => s === 0)) {
      endCommand();
    } else {
      command.words.push(word);
    }
    return word.end;
  }
}

function lineEnd(text: string, from: number): number {
  const end = text.indexOf("\n", from);
  return end < 0 ? text.length : end;
}

/** Bodies of the here-documents opened on the line just ended; returns the offset after them. */
function readHeredocs(text: string, from: number, pending: ReadonlyArray<{ redirect: Redirect; delimiter: string; stripTabs: boolean }>): number {
  let i = from;
  for (const { redirect, delimiter, stripTabs } of pending) {
    const start = i;
    redirect.body = { start, end: text.length };
    while (i < text.length) {
      const end = lineEnd(text, i);
      const line = text.slice(i, end);
      if ((stripTabs ? line.replace(/^\t+/, "") : line) === delimiter) {
        redirect.body = { start, end: Math.max(start, i - 1) };
        i = Math.min(end + 1, text.length);
        break;
      }
      i = end + 1;
    }
    i = Math.min(i, text.length);
  }
  return i;
}

function readWord(text: string, from: number, context: Context): ShellWord & { end: number } {
  const { quotes } = context;
  const word: ShellWord = { value: "", at: [], segment: [], code: [], scripts: [] };
  const put = (offset: number, segment: number) => {
    word.value += text[offset];
    word.at.push(offset);
    word.segment.push(segment);
  };
  /** Copies an expansion starting at i as written; returns the offset after it, or undefined if none starts there. */
  const expansion = (i: number, segment: number): number | undefined => {
    const end = expansionEnd(text, i, word.scripts, context);
    if (end === undefined) return undefined;
    const start = word.value.length;
    for (let k = i; k < end; k++) put(k, segment);
    word.code.push({ start, end: word.value.length });
    return end;
  };
  let i = from;
  // <(…) and >(…) open a word of their own.
  if (text[i] === "<" || text[i] === ">") {
    const end = expansion(i, 0) ?? i + 1;
    return { ...word, end };
  }
  while (i < text.length && !WORD_END.test(text[i]!) && !(text[i] === "`" && context.closer === "`")) {
    const c = text[i]!;
    if (c === "'" || (c === "$" && text[i + 1] === "'")) {
      const ansi = c === "$";
      const segment = quotes.push({ open: ansi ? "$'" : "'", close: "'" }) - 1;
      i += ansi ? 2 : 1;
      while (i < text.length && text[i] !== "'") {
        if (ansi && text[i] === "\\" && i + 1 < text.length) put(i++, segment);
        put(i++, segment);
      }
      i++;
    } else if (c === '"') {
      const segment = quotes.push({ open: '"', close: '"' }) - 1;
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\" && '$`"\\\n'.includes(text[i + 1] ?? "")) {
          if (text[i + 1] !== "\n") put(i + 1, segment);
          i += 2;
        } else {
          i = expansion(i, segment) ?? (put(i, segment), i + 1);
        }
      }
      i++;
    } else if (c === "\\") {
      if (i + 1 < text.length && text[i + 1] !== "\n") put(i + 1, 0);
      i += 2;
    } else {
      i = expansion(i, 0) ?? (put(i, 0), i + 1);
    }
  }
  return { ...word, end: Math.min(i, text.length) };
}

/** End of the expansion starting at i (`$(…)`, `$((…))`, backquotes, `${…}`, `$NAME`, `<(…)`), recording nested scripts. */
function expansionEnd(text: string, i: number, scripts: Script[], context: Context): number | undefined {
  const c = text[i];
  const next = text[i + 1];
  if (c === "$" && next === "(" && text[i + 2] === "(") return matchingClose(text, i + 3, "(", ")", 2);
  const closer = (c === "$" || c === "<" || c === ">") && next === "(" ? ")" : c === "`" && context.closer !== "`" ? "`" : undefined;
  if (closer !== undefined) {
    if (context.nesting >= MAX_NESTING) return text.length;
    const inner = lexCommands(text, i + (closer === ")" ? 2 : 1), { nesting: context.nesting + 1, quotes: context.quotes, closer });
    scripts.push(inner);
    return inner.end;
  }
  if (c === "$" && next === "{") return matchingClose(text, i + 2, "{", "}", 1);
  if (c === "$") {
    PARAMETER.lastIndex = i;
    return PARAMETER.test(text) ? PARAMETER.lastIndex : undefined;
  }
  return undefined;
}

/** Offset after `count` closing characters that balance the ones already open at `from`. */
function matchingClose(text: string, from: number, open: string, close: string, count: number): number {
  let depth = count;
  for (let k = from; k < text.length; k++) {
    if (text[k] === "\\") k++;
    else if (text[k] === open) depth++;
    else if (text[k] === close && --depth === 0) return k + 1;
  }
  return text.length;
}
