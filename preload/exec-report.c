/*
 * libmicroenforcer-exec.so: loaded into every dynamically linked program of an injected pod
 * through LD_PRELOAD, it tells the microenforcer sidecar about the exec from inside the new
 * process, before main, and in enforce mode waits for the sidecar's verdict.
 *
 * No libc (raw system calls, no DT_NEEDED), so one file serves glibc and musl programs; no
 * argc/argv from the loader (musl passes none to constructors), so everything comes from
 * /proc/self. It must never break the program it is loaded into: every failure ends in
 * "carry on" (audit) or the policy's failure choice (enforce), never a crash or a hang.
 *
 * Wire format (version 1, little-endian: both supported ABIs are) is documented in
 * preload/README.md and parsed by microenforcer/capture/exec-report.ts.
 */
#include "syscalls.h"

#define HEADER_BYTES 96
#define MAX_EXE 4095
#define MAX_CWD 4095
#define MAX_CMDLINE 8192
#define MAX_CONTAINER 253
#define MAX_COMM 64
#define MAX_COMM_NAME 15 /* the kernel keeps 15 bytes of a program's name as its comm */
#define MAX_MESSAGE (HEADER_BYTES + MAX_EXE + MAX_CWD + MAX_CMDLINE + MAX_CONTAINER + MAX_COMM)
#define DEFAULT_TIMEOUT_MS 250
#define MAX_TIMEOUT_MS 10000
#define EXIT_BLOCKED 126

enum {
  FLAG_WAIT = 1,              /* the sender waits for a verdict (enforce mode) */
  FLAG_EXE_STAT = 2,          /* exe device, inode, ctime and mode are filled in */
  FLAG_EXE_TRUNCATED = 4,
  FLAG_CWD_UNKNOWN = 8,
  FLAG_CMDLINE_TRUNCATED = 16,
  FLAG_STANDING = 32,         /* sent without waiting: the sidecar's table allows this file at this path */
  FLAG_LOADER = 64,           /* the executable is a dynamic loader run as a program: its argv names what runs */
};

static const char socket_var[] = "MICROENFORCER_EXEC_SOCKET=";
static const char container_var[] = "MICROENFORCER_CONTAINER=";

/* GCC may emit calls to these even in freestanding code; hidden, so never exported. */
__attribute__((visibility("hidden"))) void *memset(void *dst, int c, ulong n) {
  unsigned char *d = dst;
  while (n--) *d++ = (unsigned char)c;
  return dst;
}
__attribute__((visibility("hidden"))) void *memcpy(void *dst, const void *src, ulong n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

static ulong str_len(const char *s) {
  ulong n = 0;
  while (s[n]) n++;
  return n;
}

static int starts_with(const char *s, ulong len, const char *prefix, ulong prefix_len) {
  if (len < prefix_len) return 0;
  for (ulong i = 0; i < prefix_len; i++)
    if (s[i] != prefix[i]) return 0;
  return 1;
}

static void put16(unsigned char *p, ulong v) { p[0] = v; p[1] = v >> 8; }
static void put32(unsigned char *p, ulong v) { put16(p, v); put16(p + 2, v >> 16); }
static void put64(unsigned char *p, unsigned long long v) { put32(p, (ulong)v); put32(p + 4, (ulong)(v >> 32)); }
static ulong get16(const unsigned char *p) { return (ulong)p[0] | (ulong)p[1] << 8; }
static ulong get32(const unsigned char *p) { return get16(p) | get16(p + 2) << 16; }
static unsigned long long get64(const unsigned char *p) { return get32(p) | (unsigned long long)get32(p + 4) << 32; }

static int open_read(const char *path) { return (int)sys4(SYS_openat, AT_FDCWD_, path, O_RDONLY_ | O_CLOEXEC_, 0); }

static slong read_retry(int fd, void *buf, ulong len) {
  slong n;
  do n = sys3(SYS_read, fd, buf, len); while (n == -E_INTR);
  return n;
}

/* Reads up to len bytes of a small file; -1 when it cannot be opened or read. */
static slong read_file(const char *path, char *buf, ulong len, int *truncated) {
  int fd = open_read(path);
  if (fd < 0) return -1;
  ulong got = 0;
  slong n = 0;
  while (got < len && (n = read_retry(fd, buf + got, len - got)) > 0) got += (ulong)n;
  if (truncated != 0) {
    char extra;
    *truncated = got == len && read_retry(fd, &extra, 1) > 0;
  }
  sys1(SYS_close, fd);
  return n < 0 && got == 0 ? -1 : (slong)got;
}

/*
 * What /proc/self/stat says of this process: its start time and comm, and where the kernel
 * put the strings of argv and of the environment (fields 48-51, shown to the process itself
 * since Linux 3.5). Reading those strings from memory saves two reads of /proc (environ,
 * cmdline); they are what /proc would show, since nothing in the process has run yet but
 * the loader and constructors. 0 when not shown (gVisor prints 0): then the files are read.
 */
struct self {
  unsigned long long start_ticks;
  char comm[MAX_COMM];
  ulong comm_len;
  ulong arg_start, arg_end, env_start, env_end;
};

/*
 * The areas are read from memory only where they can be what the kernel put on the initial
 * stack, above the frames of the loader and of this constructor (which run on that stack),
 * within MAX_SPAN of here: anything else (a /proc that is not the kernel's) reads the files.
 */
#define MAX_SPAN (256UL << 20)

/* comm lies between the first '(' and the last ')' (it may hold either); fields are counted after that last ')'. */
static int read_self(struct self *out) {
  out->arg_start = out->arg_end = out->env_start = out->env_end = 0;
  char text[1024];
  slong n = read_file("/proc/self/stat", text, sizeof text, 0);
  if (n <= 0) return -1;
  slong open = -1, close = -1;
  for (slong i = 0; i < n; i++) {
    if (text[i] == '(' && open < 0) open = i;
    if (text[i] == ')') close = i;
  }
  if (open < 0 || close < open) return -1;
  out->comm_len = (ulong)(close - open - 1) < MAX_COMM ? (ulong)(close - open - 1) : MAX_COMM;
  memcpy(out->comm, text + open + 1, out->comm_len);
  unsigned long long areas[4] = {0, 0, 0, 0};
  int field = 3, digits = 0, have_start = 0;
  unsigned long long v = 0;
  for (slong i = close + 2; i <= n && field <= 51; i++) {
    char c = i < n ? text[i] : '\n';
    if (c >= '0' && c <= '9') {
      v = v * 10 + (unsigned long long)(c - '0');
      digits++;
      continue;
    }
    if (c != ' ' && c != '\n') {
      digits = -1; /* not a number (the state letter) */
      continue;
    }
    if (digits > 0 && field == 22) {
      out->start_ticks = v;
      have_start = 1;
    }
    if (digits > 0 && field >= 48) areas[field - 48] = v;
    field++;
    v = 0;
    digits = 0;
    if (c == '\n') break;
  }
  if (!have_start) return -1;
  ulong here = (ulong)&areas;
  int plausible = here < areas[0] && areas[0] < areas[1] && areas[1] - here <= MAX_SPAN && here < areas[2] && areas[2] < areas[3] && areas[3] - here <= MAX_SPAN;
#ifdef MICROENFORCER_AREAS_HIDDEN
  plausible = 0; /* a test build: behave as under gVisor */
#endif
  out->arg_start = plausible ? (ulong)areas[0] : 0;
  out->arg_end = plausible ? (ulong)areas[1] : 0;
  out->env_start = plausible ? (ulong)areas[2] : 0;
  out->env_end = plausible ? (ulong)areas[3] : 0;
  return 0;
}

struct environment {
  char socket_path[108];
  char container[MAX_CONTAINER + 1];
};

/* Copies the value of an environ entry if it names `var` (first occurrence wins, as getenv). */
static void take(const char *entry, ulong len, const char *var, ulong var_len, char *out, ulong cap) {
  if (out[0] != 0 || !starts_with(entry, len, var, var_len)) return;
  ulong n = len - var_len;
  if (n >= cap) return; /* too long to be ours (a socket path must fit sun_path) */
  memcpy(out, entry + var_len, n);
  out[n] = 0;
}

/* Takes the two variables from the NUL-terminated entries in buf; returns where an unfinished last entry begins. */
static ulong take_entries(const char *buf, ulong len, struct environment *env) {
  ulong start = 0;
  for (ulong i = 0; i < len; i++) {
    if (buf[i] != 0) continue;
    take(buf + start, i - start, socket_var, sizeof socket_var - 1, env->socket_path, sizeof env->socket_path);
    take(buf + start, i - start, container_var, sizeof container_var - 1, env->container, sizeof env->container);
    start = i + 1;
  }
  return start;
}

/*
 * The two variables from the environment this exec started with: in this process's memory
 * where the kernel put it (see struct self), else from /proc/self/environ, read in chunks:
 * an environment can be megabytes, and only two short entries matter.
 */
static void read_environment(const struct self *self, struct environment *env) {
  env->socket_path[0] = 0;
  env->container[0] = 0;
  if (self->env_end > self->env_start) {
    take_entries((const char *)self->env_start, self->env_end - self->env_start, env);
    return;
  }
  int fd = open_read("/proc/self/environ");
  if (fd < 0) return;
  char scratch[8192];
  ulong kept = 0;   /* bytes of an unfinished entry carried to the front of scratch */
  int skipping = 0; /* inside an entry too long to be one of ours */
  for (;;) {
    slong n = read_retry(fd, scratch + kept, sizeof scratch - kept);
    if (n <= 0) break;
    ulong end = kept + (ulong)n, start = 0;
    if (skipping) {
      while (start < end && scratch[start] != 0) start++;
      if (start == end) continue;
      skipping = 0;
      start++;
    }
    start += take_entries(scratch + start, end - start, env);
    kept = end - start;
    if (kept > 512) {
      skipping = 1;
      kept = 0;
    } else {
      for (ulong i = 0; i < kept; i++) scratch[i] = scratch[start + i];
    }
  }
  sys1(SYS_close, fd);
}

struct mode {
  int enforce;
  int deny_on_failure;
  long timeout_ms;
  /* Which allow table goes with this mode (0: none). */
  unsigned long long generation;
};

/* `name` in the directory of the socket, the volume the sidecar writes and the app mounts read-only. */
static int beside(const char *socket_path, const char *name, char *path, ulong cap) {
  ulong slash = 0, len = str_len(socket_path), name_len = str_len(name);
  for (ulong i = 0; i < len; i++)
    if (socket_path[i] == '/') slash = i + 1;
  if (slash + name_len + 1 > cap) return -1;
  memcpy(path, socket_path, slash);
  memcpy(path + slash, name, name_len + 1);
  return 0;
}

/* Up to `max` digits at *p as a number (p moves past them); -1 when there are none. */
static long long take_number(const char **p, int max) {
  long long v = 0;
  int digits = 0;
  for (; **p >= '0' && **p <= '9' && digits < max; (*p)++, digits++) v = v * 10 + (**p - '0');
  return digits > 0 ? v : -1;
}

/*
 * `<dir of the socket>/mode`, written by the sidecar into a volume the app mounts read-only:
 * `audit|enforce allow|deny TIMEOUT_MS [GENERATION]`. Missing or unreadable: audit (send, do not wait).
 */
static void read_mode(const char *socket_path, struct mode *mode) {
  mode->enforce = 0;
  mode->deny_on_failure = 0;
  mode->timeout_ms = DEFAULT_TIMEOUT_MS;
  mode->generation = 0;
  char path[128];
  if (beside(socket_path, "mode", path, sizeof path) < 0) return;
  char text[64];
  slong n = read_file(path, text, sizeof text - 1, 0);
  if (n <= 0) return;
  text[n] = 0;
  if (!starts_with(text, (ulong)n, "enforce ", 8)) return;
  mode->enforce = 1;
  const char *p = text + 8;
  if (starts_with(p, str_len(p), "deny ", 5)) mode->deny_on_failure = 1;
  while (*p && *p != ' ') p++;
  if (*p == ' ') p++;
  long long ms = take_number(&p, 6);
  if (ms >= 0) mode->timeout_ms = ms < 1 ? 1 : ms > MAX_TIMEOUT_MS ? MAX_TIMEOUT_MS : ms;
  if (*p == ' ') p++;
  long long generation = take_number(&p, 10);
  if (generation > 0 && generation <= 0xffffffffLL) mode->generation = (unsigned long long)generation;
}

/*
 * The allow table (`allowed` beside the socket, format in preload/README.md): executables the
 * sidecar found allowed whatever their arguments, stdio or container, each by its identity
 * (device, inode, ctime: only the kernel sets ctime, and any write, chmod, link or unlink
 * moves it) and the path it was run by. A program it holds sends its report and goes on
 * without waiting for the verdict. Read with two preads, a third for a candidate's path.
 */
#define TABLE_HEADER 24
#define TABLE_SLOT 40
#define TABLE_PROBES 8

static ulong table_hash(const unsigned char *identity) { /* FNV-1a over ino, major, minor (16 bytes) */
  unsigned int h = 2166136261u;
  for (int i = 0; i < 16; i++) h = (h ^ identity[i]) * 16777619u;
  return h;
}

static slong pread_full(int fd, void *buf, ulong len, ulong offset) {
  slong n;
  do n = sys4(SYS_pread64, fd, buf, len, offset); while (n == -E_INTR);
  return n;
}

/* How an entry lets a program go on (the slot's kind): however it runs, a shell only as runs_plain_command says, an interpreter only as runs_inline_code says. */
enum { RUNS_ANY = 1, RUNS_COMMAND = 2, RUNS_INLINE = 3 };
#define MAX_OPTION 4 /* an inline-code option, NUL-padded after the slot's kind */

/* Any shell syntax in a -c command (microenforcer/proc/script-argv.ts commandScript): a program of its own, naming no file. */
static int shell_syntax(char c) {
  const char *syntax = ";&|<>()$`'\"\\*?[]{}~\n";
  for (const char *s = syntax; *s; s++)
    if (c == *s) return 1;
  return 0;
}

/* Whether fd is a socket other than a unix one (a reverse shell's stdio); unsure counts as one. */
static int network_socket(int fd) {
  int domain = 0;
  unsigned int len = sizeof domain;
  slong r = sys5(SYS_getsockopt, fd, SOL_SOCKET_, SO_DOMAIN_, &domain, &len);
  if (r == -E_NOTSOCK || r == -E_BADF) return 0;
  return r != 0 || domain != AF_UNIX_;
}

/* A network socket on stdin, stdout or stderr: a reverse shell's (a unix socket is none, as for the reverse shell control). */
static int network_stdio(void) {
  return network_socket(0) || network_socket(1) || network_socket(2);
}

/*
 * Where argv[2] begins when argv[1] of the report `m` is exactly the `n` bytes of `option`
 * (`-c`); 0 otherwise. `end`: where the report's argv ends.
 */
static const char *after_option(const unsigned char *m, const unsigned char *option, ulong n, const char **end) {
  const char *a = (const char *)m + HEADER_BYTES + get16(m + 88) + get16(m + 90);
  *end = a + get16(m + 92);
  while (a < *end && *a) a++; /* argv[0] */
  if (n == 0 || *end - a < (slong)n + 2) return 0; /* its NUL, the option, the option's NUL */
  for (ulong i = 0; i < n; i++)
    if (a[1 + i] != (char)option[i]) return 0;
  return a[1 + n] == 0 ? a + 2 + n : 0;
}

/*
 * A shell run as `SHELL -c COMMAND ...` whose command names no file it runs (shell syntax,
 * or no `/` at all: a word without one is looked up in PATH and reports itself), with no
 * network socket on its stdio: then only the shell's own file decides its verdict. The
 * report `m` holds the argv; a cut one tells nothing.
 */
static int runs_plain_command(const unsigned char *m) {
  if (get16(m + 6) & FLAG_CMDLINE_TRUNCATED) return 0;
  const char *end;
  const char *command = after_option(m, (const unsigned char *)"-c", 2, &end);
  if (command == 0) return 0;
  int slash = 0, syntax = 0, terminated = 0;
  for (const char *c = command; c < end; c++) {
    if (*c == 0) {
      terminated = 1;
      break;
    }
    slash |= *c == '/';
    syntax |= shell_syntax(*c);
  }
  if (!terminated || (slash && !syntax)) return 0;
  return !network_stdio();
}

/*
 * An interpreter run as `INTERPRETER OPTION ...` with `option` (its inline-code option, up to
 * MAX_OPTION bytes, NUL-padded: `-c` for python, `-e` for perl) as its first argument: it runs
 * the next argument as code, and no file its argv names. With no network socket on its stdio,
 * as for a shell's plain command.
 */
static int runs_inline_code(const unsigned char *m, const unsigned char *option) {
  ulong n = 0;
  while (n < MAX_OPTION && option[n]) n++;
  const char *end;
  return after_option(m, option, n, &end) != 0 && !network_stdio();
}

/* Whether the table of `generation` holds the executable the report `m` describes, run by this path and comm, and lets this run go on. */
static int standing_allow(const char *socket_path, unsigned long long generation, const unsigned char *m, const struct self *self) {
  ulong exe_len = get16(m + 88);
  const char *exe = (const char *)m + HEADER_BYTES;
  /*
   * A loader's verdict depends on the program its argv names: never standing. Nor does a
   * process whose parent is outside the PID namespace (a container's first, an exec
   * session's, a probe's) stand: the container-exec control judges those, and no entry speaks for them.
   */
  if (generation == 0 || get32(m + 16) == 0 || !(get16(m + 6) & FLAG_EXE_STAT) || (get16(m + 6) & (FLAG_EXE_TRUNCATED | FLAG_LOADER)) || exe_len == 0) return 0;
  /*
   * comm is what a control may take for an interpreter's name: a program stands only under
   * the name its path gives (not a symlink's). A shell's or an interpreter's entry holds
   * under any (Debian's `sh` is a link to dash, `python3` to python3.11): it is one whatever its name.
   */
  ulong base = exe_len;
  while (base > 0 && exe[base - 1] != '/') base--;
  ulong name_len = exe_len - base < MAX_COMM_NAME ? exe_len - base : MAX_COMM_NAME;
  int named_so = self->comm_len == name_len;
  for (ulong i = 0; named_so && i < name_len; i++)
    if (self->comm[i] != exe[base + i]) named_so = 0;
  char path[128];
  if (beside(socket_path, "allowed", path, sizeof path) < 0) return 0;
  int fd = open_read(path);
  if (fd < 0) return 0;
  int allowed = 0;
  unsigned char header[TABLE_HEADER], slots[TABLE_SLOT * TABLE_PROBES];
  unsigned char identity[16];
  memcpy(identity, m + 64, 8);     /* inode */
  memcpy(identity + 8, m + 56, 8); /* major, minor */
  ulong capacity = 0;
  if (pread_full(fd, header, sizeof header, 0) == (slong)sizeof header && header[0] == 'M' && header[1] == 'E' && header[2] == 'X' &&
      header[3] == 'A' && get16(header + 4) == 1 && get32(header + 8) == generation) {
    capacity = get32(header + 12);
  }
  if (capacity > 0 && capacity <= (1UL << 20) && (capacity & (capacity - 1)) == 0) {
    ulong home = table_hash(identity) & (capacity - 1);
    slong n = pread_full(fd, slots, sizeof slots, TABLE_HEADER + home * TABLE_SLOT);
    for (slong at = 0; !allowed && at + TABLE_SLOT <= n; at += TABLE_SLOT) {
      const unsigned char *s = slots + at;
      ulong kind = get16(s + 34);
      if ((kind != RUNS_ANY && kind != RUNS_COMMAND && kind != RUNS_INLINE) || get64(s) != get64(m + 64) || get64(s + 8) != get64(m + 72) || get32(s + 16) != get32(m + 56) ||
          get32(s + 20) != get32(m + 60) || get32(s + 24) != get32(m + 80) || get16(s + 32) != exe_len) {
        continue;
      }
      char stored[MAX_EXE];
      if (pread_full(fd, stored, exe_len, get32(s + 28)) != (slong)exe_len) break;
      allowed = 1;
      for (ulong i = 0; i < exe_len; i++)
        if (stored[i] != exe[i]) allowed = 0;
      if (allowed && (kind == RUNS_ANY ? !named_so : kind == RUNS_COMMAND ? !runs_plain_command(m) : !runs_inline_code(m, s + 36))) allowed = 0;
    }
  }
  sys1(SYS_close, fd);
  return allowed;
}

#define PR_GET_AUXV_ 0x41555856
#define AT_BASE_ 7
#define AUXV_WORDS 128

/*
 * Whether the kernel started this program with no loader of its own (AT_BASE 0) — yet a
 * loader loaded this library: then the executable is that loader, run as a program
 * (`ld.so FILE`), under whatever name it was copied or linked to. The kernel's auxv, from
 * prctl (Linux 6.4) or /proc/self/auxv, is what it set at exec, whatever the loader did since.
 */
static int exe_is_loader(void) {
  ulong auxv[AUXV_WORDS];
  slong n = sys5(SYS_prctl, PR_GET_AUXV_, (ulong)auxv, sizeof auxv, 0, 0);
  if (n < 0) n = read_file("/proc/self/auxv", (char *)auxv, sizeof auxv, 0);
  if (n <= 0) return 0; /* unknown: the sidecar still knows the loader by its name */
  ulong words = (ulong)n < sizeof auxv ? (ulong)n / sizeof(ulong) : AUXV_WORDS;
  for (ulong i = 0; i + 1 < words && auxv[i] != 0; i += 2)
    if (auxv[i] == AT_BASE_) return auxv[i + 1] == 0;
  return 0;
}

static long now_ms(void) {
  struct kernel_timespec ts;
  if (sys2(SYS_clock_gettime, CLOCK_MONOTONIC_, &ts) < 0) return 0;
  return ts.sec * 1000 + ts.nsec / 1000000;
}

/* Waits for `events` on fd until the deadline; 1 when ready, 0 on timeout or error. */
static int wait_fd(int fd, short events, long deadline) {
  for (;;) {
    long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct kernel_pollfd p = {fd, events, 0};
    struct kernel_timespec ts = {left / 1000, (left % 1000) * 1000000};
    slong r = sys5(SYS_ppoll, &p, 1, &ts, 0, 8);
    if (r == -E_INTR) continue;
    return r > 0;
  }
}

/* Builds the report in `m` (MAX_MESSAGE bytes); returns its length. */
static ulong build_report(const struct self *self, const struct environment *env, int wait, unsigned char *m, char *exe_out) {
  memset(m, 0, HEADER_BYTES);
  ulong flags = wait ? FLAG_WAIT : 0;
  if (exe_is_loader()) flags |= FLAG_LOADER;
  put32(m + 12, (ulong)sys0(SYS_getpid));
  put32(m + 16, (ulong)sys0(SYS_getppid));
  put64(m + 24, self->start_ticks);
  unsigned int r[3] = {0, 0, 0}, g[3] = {0, 0, 0};
  sys3(SYS_getresuid, &r[0], &r[1], &r[2]);
  sys3(SYS_getresgid, &g[0], &g[1], &g[2]);
  for (int i = 0; i < 3; i++) {
    put32(m + 32 + 4 * i, r[i]);
    put32(m + 44 + 4 * i, g[i]);
  }
  /* The executable's identity through the process's own link: holds even once unlinked. */
  struct kernel_statx sx;
  if (sys5(SYS_statx, AT_FDCWD_, "/proc/self/exe", 0, STATX_BASIC_STATS_, &sx) == 0) {
    flags |= FLAG_EXE_STAT;
    put32(m + 56, sx.dev_major);
    put32(m + 60, sx.dev_minor);
    put64(m + 64, sx.ino);
    put64(m + 72, (unsigned long long)sx.ctime.sec);
    put32(m + 80, sx.ctime.nsec);
    put32(m + 84, sx.mode);
  }
  unsigned char *p = m + HEADER_BYTES;
  slong exe = sys4(SYS_readlinkat, AT_FDCWD_, "/proc/self/exe", p, MAX_EXE);
  if (exe < 0) exe = 0;
  if (exe == MAX_EXE) flags |= FLAG_EXE_TRUNCATED;
  memcpy(exe_out, p, (ulong)exe < 255 ? (ulong)exe : 255);
  exe_out[(ulong)exe < 255 ? (ulong)exe : 255] = 0;
  p += exe;
  slong cwd = sys2(SYS_getcwd, p, MAX_CWD + 1);
  if (cwd > 0 && p[0] == '/') {
    cwd -= 1; /* getcwd counts the terminating NUL */
  } else {
    cwd = 0;
    flags |= FLAG_CWD_UNKNOWN;
  }
  p += cwd;
  int truncated = 0;
  slong cmdline;
  if (self->arg_end > self->arg_start) {
    ulong area = self->arg_end - self->arg_start;
    truncated = area > MAX_CMDLINE;
    cmdline = (slong)(truncated ? MAX_CMDLINE : area);
    memcpy(p, (const void *)self->arg_start, (ulong)cmdline);
  } else {
    cmdline = read_file("/proc/self/cmdline", (char *)p, MAX_CMDLINE, &truncated);
    if (cmdline < 0) cmdline = 0;
  }
  if (truncated) flags |= FLAG_CMDLINE_TRUNCATED;
  p += cmdline;
  ulong container = str_len(env->container);
  memcpy(p, env->container, container);
  p += container;
  memcpy(p, self->comm, self->comm_len);
  p += self->comm_len;
  ulong total = (ulong)(p - m);
  m[0] = 'M'; m[1] = 'E'; m[2] = 'X'; m[3] = 'R';
  put16(m + 4, 1);
  put16(m + 6, flags);
  put32(m + 8, total);
  put16(m + 20, self->comm_len);
  put16(m + 88, (ulong)exe);
  put16(m + 90, (ulong)cwd);
  put16(m + 92, (ulong)cmdline);
  put16(m + 94, container);
  return total;
}

/* Connects without blocking; in enforce mode a full backlog is retried until the deadline. */
static int connect_sidecar(const char *path, int retry, long deadline) {
  int fd = (int)sys3(SYS_socket, AF_UNIX_, SOCK_STREAM_ | SOCK_NONBLOCK_ | SOCK_CLOEXEC_, 0);
  if (fd < 0) return -1;
  struct kernel_sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.family = AF_UNIX_;
  memcpy(addr.path, path, str_len(path));
  for (;;) {
    slong r = sys3(SYS_connect, fd, &addr, sizeof addr);
    if (r == 0) return fd;
    if (r == -E_INTR) continue;
    if (r != -E_AGAIN || !retry || now_ms() >= deadline) break;
    struct kernel_timespec pause = {0, 1000000};
    sys2(SYS_nanosleep, &pause, 0);
  }
  sys1(SYS_close, fd);
  return -1;
}

static int send_all(int fd, const unsigned char *buf, ulong len, int wait, long deadline) {
  ulong sent = 0;
  while (sent < len) {
    slong n = sys6(SYS_sendto, fd, buf + sent, len - sent, MSG_DONTWAIT_ | MSG_NOSIGNAL_, 0, 0);
    if (n > 0) sent += (ulong)n;
    else if (n == -E_INTR) continue;
    else if (n == -E_AGAIN && wait && wait_fd(fd, POLLOUT_, deadline)) continue;
    else return -1;
  }
  return 0;
}

enum verdict { NO_VERDICT, ALLOW, DENY };

/* The answer: 'A' or 'D', a length byte, then that many bytes of reason. */
static enum verdict read_verdict(int fd, long deadline, char *reason, ulong cap) {
  unsigned char answer[2 + 255];
  ulong got = 0;
  while (got < 2 || got < 2 + (ulong)answer[1]) {
    if (!wait_fd(fd, POLLIN_, deadline)) break;
    slong n = sys6(SYS_recvfrom, fd, answer + got, sizeof answer - got, MSG_DONTWAIT_, 0, 0);
    if (n == -E_INTR || n == -E_AGAIN) continue;
    if (n <= 0) break;
    got += (ulong)n;
  }
  if (got == 0) return NO_VERDICT;
  if (answer[0] != 'D') return answer[0] == 'A' ? ALLOW : NO_VERDICT;
  ulong n = got >= 2 ? got - 2 : 0;
  if (n > answer[1]) n = answer[1];
  if (n >= cap) n = cap - 1;
  memcpy(reason, answer + 2, n);
  reason[n] = 0;
  return DENY;
}

static void write_err(const char *s) {
  ulong len = str_len(s);
  while (len > 0) {
    slong n = sys3(SYS_write, 2, s, len);
    if (n == -E_INTR) continue;
    if (n <= 0) return;
    s += n;
    len -= (ulong)n;
  }
}

static void block(const char *exe, const char *why) {
  write_err("microenforcer: ");
  write_err(exe[0] ? exe : "program");
  write_err(" blocked before it ran: ");
  write_err(why);
  write_err("\n");
  sys1(SYS_exit_group, EXIT_BLOCKED);
}

__attribute__((constructor)) static void microenforcer_report_exec(void) {
  struct self self;
  int identified = read_self(&self) == 0;
  struct environment env;
  read_environment(&self, &env);
  if (env.socket_path[0] != '/') return; /* not injected, or a path that cannot be ours */
  struct mode mode;
  read_mode(env.socket_path, &mode);
  long deadline = now_ms() + mode.timeout_ms;
  char exe[256];
  exe[0] = 0;
  unsigned char message[MAX_MESSAGE];
  ulong len = identified ? build_report(&self, &env, mode.enforce, message, exe) : 0;
  int standing = len > 0 && mode.enforce && standing_allow(env.socket_path, mode.generation, message, &self);
  if (standing) put16(message + 6, (get16(message + 6) & ~(ulong)FLAG_WAIT) | FLAG_STANDING);
  enum verdict verdict = NO_VERDICT;
  char reason[256];
  if (len > 0) {
    int fd = connect_sidecar(env.socket_path, mode.enforce, deadline);
    if (fd >= 0) {
      int sent = send_all(fd, message, len, mode.enforce, deadline) == 0;
      /* A standing allow still needs a sidecar to take the report: without one, the failure choice. */
      if (sent && standing) verdict = ALLOW;
      else if (sent && mode.enforce) verdict = read_verdict(fd, deadline, reason, sizeof reason);
      /*
       * Denied: the exit closes the connection. Closing it first would tell the sidecar the
       * program hung up while it still lives, and the sidecar kills a denied program that
       * hangs up (one whose wait timed out), which could come before our own exit.
       */
      if (verdict != DENY) sys1(SYS_close, fd);
    }
  }
  if (!mode.enforce || verdict == ALLOW) return;
  if (verdict == DENY) block(exe, reason[0] ? reason : "denied by policy");
  else if (mode.deny_on_failure) block(exe, "no verdict from the microenforcer sidecar (policy failure choice: deny)");
}
