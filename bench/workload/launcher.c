/*
 * launcher <probe> <class>:<lifetime_us>:<count>:<spacing_us>...: starts the probes of each
 * class on a fixed schedule (start + i * spacing), one class after another. A C launcher
 * rather than a shell loop: a shell's fork and bookkeeping would cost about as much as
 * the 1 ms probes live. SIGCHLD is ignored so the kernel reaps each probe the moment it
 * exits: no zombie outlives the probe's lifetime waiting for our wait().
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void add_ns(struct timespec *t, long long ns) {
  long long total = (long long)t->tv_nsec + ns;
  t->tv_sec += total / 1000000000LL;
  t->tv_nsec = total % 1000000000LL;
}

static void sleep_until(const struct timespec *t) {
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR) {
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: launcher <probe> <class>:<lifetime_us>:<count>:<spacing_us>...\n");
    return 2;
  }
  signal(SIGCHLD, SIG_IGN);
  for (int c = 2; c < argc; c++) {
    char name[64];
    long long lifetime_us, count, spacing_us;
    if (sscanf(argv[c], "%63[^:]:%lld:%lld:%lld", name, &lifetime_us, &count, &spacing_us) != 4) {
      fprintf(stderr, "launcher: bad class spec '%s'\n", argv[c]);
      return 2;
    }
    char lifetime[32];
    snprintf(lifetime, sizeof lifetime, "%lld", lifetime_us);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long long i = 0; i < count; i++) {
      char id[96];
      snprintf(id, sizeof id, "bench-%s-%05lld", name, i);
      pid_t pid = fork();
      if (pid < 0) {
        perror("launcher: fork");
        return 1;
      }
      if (pid == 0) {
        signal(SIGCHLD, SIG_DFL); /* an ignored SIGCHLD would survive exec */
        execl(argv[1], "probe", lifetime, id, (char *)NULL);
        perror("launcher: exec");
        _exit(127);
      }
      add_ns(&next, spacing_us * 1000LL);
      sleep_until(&next);
    }
    /* With SIGCHLD ignored, wait() returns ECHILD once every child of the class is gone. */
    while (wait(NULL) > 0 || errno == EINTR) {
    }
    struct timespec pause = {0, 200 * 1000000L}; /* classes must not overlap */
    nanosleep(&pause, NULL);
  }
  return 0;
}
