/*
 * probe <lifetime_us> <unique-id>: one ground-truth process for bench/process-capture.ts.
 * Logs its own pid, exec time (CLOCK_REALTIME, as early in main as possible) and argv to
 * $PROBE_LOG with one O_APPEND write (atomic for a short line, so concurrent probes never
 * interleave), then sleeps until exec time + lifetime. Sleeping, not spinning: the sensor
 * under test shares the machine's two cores with the workload.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct timespec start;
  clock_gettime(CLOCK_REALTIME, &start);
  if (argc != 3) {
    fprintf(stderr, "usage: probe <lifetime_us> <unique-id>\n");
    return 2;
  }
  const char *log = getenv("PROBE_LOG");
  if (log == NULL) {
    fprintf(stderr, "probe: PROBE_LOG not set\n");
    return 2;
  }
  char line[512];
  int n = snprintf(line, sizeof line, "%d\t%lld%09ld\t%s\t%s\t%s\n", (int)getpid(), (long long)start.tv_sec,
                   start.tv_nsec, argv[0], argv[1], argv[2]);
  int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0 || n <= 0 || n >= (int)sizeof line || write(fd, line, (size_t)n) != n) {
    perror("probe: log");
    return 1;
  }
  close(fd);

  long long end_ns = (long long)start.tv_nsec + atoll(argv[1]) * 1000LL;
  struct timespec deadline = {start.tv_sec + end_ns / 1000000000LL, end_ns % 1000000000LL};
  while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &deadline, NULL) == EINTR) {
  }
  return 0;
}
