"""
python3 flood-report-socket.py N SECONDS: what a process of the pod can do to the report socket.
Keeps N connections to $MICROENFORCER_EXEC_SOCKET open that never send a report, opening a new
one for each the sidecar closes, for SECONDS; prints "flooding N" once they are open.
"""
import os
import resource
import selectors
import socket
import sys
import time

resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
path = os.environ["MICROENFORCER_EXEC_SOCKET"]
want, end = int(sys.argv[1]), time.time() + float(sys.argv[2])
sel = selectors.DefaultSelector()


def connect():
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(path)
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        return False
    sel.register(s, selectors.EVENT_READ)
    return True


while len(sel.get_map()) < want and connect():
    pass
print("flooding", len(sel.get_map()), flush=True)
while time.time() < end:
    for key, _ in sel.select(0.01):
        sel.unregister(key.fileobj)
        key.fileobj.close()
    while len(sel.get_map()) < want and connect():
        pass
