#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
# connect_flood.py SOCK SECONDS: a hostile client of scx_goro's attach
# socket. For SECONDS it opens connections as fast as it can and never sends
# a hello, keeping as many open as its file limit allows (raised to the hard
# limit); when it runs out of fds it drops the oldest hundred and goes on.
# Prints "flood: N connections made, M open at the end".
import resource
import socket
import sys
import time

path, secs = sys.argv[1], float(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
except ValueError:
    pass
conns, made, end = [], 0, time.monotonic() + secs
while time.monotonic() < end:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(0.05)
        s.connect(path)
        conns.append(s)
        made += 1
    except OSError:
        try:
            s.close()
        except NameError:
            pass
        if len(conns) > 100:
            for c in conns[:100]:
                c.close()
            del conns[:100]
        else:
            time.sleep(0.001)
print("flood: %d connections made, %d open at the end" % (made, len(conns)), flush=True)
