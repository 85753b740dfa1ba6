#!/bin/sh
# PID 1 of a fresh PID namespace (unshare --pid --fork --mount-proc), so the process
# watcher under test sees the workload and nothing else of the machine.
#
# usage: ns-run.sh OUT_DIR IDLE_SECONDS LAUNCHER PROBE "CLASS..." -- WATCHER_ARGV...
# $WORKLOAD_ENV: NAME=VALUE words added to the workload's environment only (not the watcher's).
#
# Starts the watcher, waits for its "microenforcer.sensor.trigger" status line, samples its
# /proc/PID/stat over an idle period and over the workload, then stops it with SIGINT.
# Leaves raw files in OUT_DIR for bench/process-capture.ts to analyse: records.jsonl,
# watcher.err, probes.log, {idle,load}-{start,end}.stat (see sample), status-{idle,load}.txt.
set -eu
out=$1 idle=$2 launcher=$3 probe=$4 classes=$5
shift 5
[ "$1" = "--" ] && shift

: >"$out/probes.log"
"$@" >"$out/records.jsonl" 2>"$out/watcher.err" &
watcher=$!

tries=0
until grep -q '"microenforcer.sensor.trigger"' "$out/records.jsonl" 2>/dev/null; do
  if ! kill -0 "$watcher" 2>/dev/null; then
    echo "ns-run: watcher exited before it was ready:" >&2
    cat "$out/watcher.err" >&2
    exit 1
  fi
  tries=$((tries + 1))
  if [ "$tries" -gt 600 ]; then
    echo "ns-run: watcher not ready after 30 s" >&2
    exit 1
  fi
  sleep 0.05
done

# Three lines: uptime (s), the watcher's stat (utime/stime cover all its threads), and the
# machine-wide "cpu" line of /proc/stat (how busy the machine was meanwhile). Shell builtins
# only: a sample must not start processes the watcher would then have to look at.
sample() {
  read -r uptime _ </proc/uptime
  read -r stat <"/proc/$watcher/stat"
  read -r cpu </proc/stat
  printf '%s\n%s\n%s\n' "$uptime" "$stat" "$cpu" >"$out/$1.stat"
}

# Both waits start now, before the idle window: a process started inside it would be a
# new PID, which keeps the watcher on its fast tick for a while (activity, not idleness).
# The first 3 s let start-up work (JIT, the first full scan, its active window) finish.
sleep 3 &
settled=$!
sleep $((3 + idle)) &
idled=$!
wait "$settled"
sample idle-start
wait "$idled"
sample idle-end
cat "/proc/$watcher/status" >"$out/status-idle.txt"

sample load-start
# $WORKLOAD_ENV and $classes are space-separated lists: split on purpose.
# shellcheck disable=SC2086
env ${WORKLOAD_ENV:-} PROBE_LOG="$out/probes.log" "$launcher" "$probe" $classes
sleep 0.5 # the watcher's last looks at the workload
sample load-end
cat "/proc/$watcher/status" >"$out/status-load.txt"

kill -INT "$watcher"
# A watcher that ignores SIGINT is a finding, not a reason to hang the bench.
(sleep 15 && kill -KILL "$watcher" 2>/dev/null) &
watchdog=$!
rc=0
wait "$watcher" || rc=$?
kill "$watchdog" 2>/dev/null || true
if [ "$rc" -ne 0 ]; then
  echo "ns-run: watcher exited with status $rc after SIGINT" >&2
  exit 1
fi
