"""
LAUNDER_PPID=N python3 launder-report.py TEMPLATE: what a process of the pod can send about itself.
It forks; the child, which only a rescan of /proc would find for a while (the poller holds
a fork a moment to see whether it execs), reports itself with parent N at once, the
report otherwise true (TEMPLATE: encodeReport of this very command with pid, ppid and start
time 0), then runs `touch "$WORK/laundered-ran"` through os.system (sh -c) as its own child. The wire offsets
are preload/README.md's.
"""
import os
import socket
import struct
import sys

frame = bytearray(open(sys.argv[1], "rb").read())
child = os.fork()
if child == 0:
    with open("/proc/self/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19])
    struct.pack_into("<ii", frame, 12, os.getpid(), int(os.environ["LAUNDER_PPID"]))
    struct.pack_into("<Q", frame, 24, start)
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ["MICROENFORCER_EXEC_SOCKET"])
    s.sendall(frame)
    s.close()
    os.system('touch "$WORK/laundered-ran"')
    os._exit(0)
os.waitpid(child, 0)
