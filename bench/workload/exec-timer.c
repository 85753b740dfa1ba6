/*
 * exec-timer <rounds> <program> [args...]: what the preload library costs a program. Each
 * round runs the program twice, without and with the library (LD_PRELOAD and
 * MICROENFORCER_EXEC_SOCKET from $TIMER_PRELOAD and $TIMER_SOCKET), in alternating order so
 * that a busy moment of the machine weighs on both alike. Each run: posix_spawn (a vfork, as
 * shells and runtimes start programs) to exit, on CLOCK_MONOTONIC. Prints one line per run:
 * "without|with <ns> <exit status>".
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int run(char **argv, char **envp, long long *ns) {
  long long start = now_ns();
  pid_t pid;
  if (posix_spawn(&pid, argv[0], NULL, NULL, argv, envp) != 0) return -1;
  int status;
  if (waitpid(pid, &status, 0) != pid) return -1;
  *ns = now_ns() - start;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv) {
  const char *preload = getenv("TIMER_PRELOAD"), *socket = getenv("TIMER_SOCKET");
  if (argc < 3 || preload == NULL || socket == NULL) {
    fprintf(stderr, "usage: TIMER_PRELOAD=LIB TIMER_SOCKET=PATH exec-timer <rounds> <program> [args...]\n");
    return 2;
  }
  int n = 0;
  while (environ[n] != NULL) n++;
  char **without = calloc(n + 1, sizeof *without), **with = calloc(n + 3, sizeof *with);
  int a = 0, b = 0;
  for (int i = 0; i < n; i++) {
    if (strncmp(environ[i], "LD_PRELOAD=", 11) == 0 || strncmp(environ[i], "MICROENFORCER_EXEC_SOCKET=", 26) == 0) continue;
    without[a++] = environ[i];
    with[b++] = environ[i];
  }
  char p[4096], s[4096];
  snprintf(p, sizeof p, "LD_PRELOAD=%s", preload);
  snprintf(s, sizeof s, "MICROENFORCER_EXEC_SOCKET=%s", socket);
  with[b++] = p;
  with[b++] = s;
  long rounds = atol(argv[1]);
  for (long r = 0; r < rounds; r++) {
    for (int k = 0; k < 2; k++) {
      int preloaded = (r + k) % 2;
      long long ns = 0;
      int status = run(argv + 2, preloaded ? with : without, &ns);
      printf("%s %lld %d\n", preloaded ? "with" : "without", ns, status);
    }
  }
  return 0;
}
