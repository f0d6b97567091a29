#!/usr/bin/env python3
"""Minor page faults and CPU of a broker per million records produced (kcat, acks=1, the
side_by_side.py producer settings), alternating two brokers: NAME=HOST:PORT@PID ..."""
import os, statistics, subprocess, sys, time, uuid
sys.path.insert(0, "/work/shared/peers")
from side_by_side import KCAT, msgfile, mktopic

def stat(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[7]), (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def run(b, pid, n, size):
    t = f"pf-{size}-{uuid.uuid4().hex[:8]}"
    mktopic(b, t)
    f0, c0 = stat(pid); t0 = time.monotonic()
    subprocess.run(KCAT + ["-P", "-b", b, "-t", t, "-l", msgfile(n, size), "-X", "acks=1",
                           "-X", "linger.ms=5", "-X", "batch.size=1048576", "-X", "batch.num.messages=100000",
                           "-X", "enable.idempotence=false", "-X", "queue.buffering.max.messages=1000000",
                           "-X", "queue.buffering.max.kbytes=1048576", "-z", "none"], check=True, timeout=300)
    t1 = time.monotonic(); f1, c1 = stat(pid)
    return (f1 - f0) * 1e6 / n, (c1 - c0) * 1e9 / n, n / (t1 - t0)

targets = [(a.split("=")[0], a.split("=")[1].split("@")[0], a.split("@")[1]) for a in sys.argv[2:]]
reps = int(sys.argv[1])
for n, size in [(1_000_000, 100), (200_000, 1024)]:
    res = {name: [] for name, _, _ in targets}
    for _ in range(reps):
        for name, b, pid in targets:
            res[name].append(run(b, pid, n, size))
    for name, _, _ in targets:
        r = res[name]
        print(f"{n}x{size}B {name}: minor faults per million records {statistics.median(x[0] for x in r):,.0f}, "
              f"CPU ms per million {statistics.median(x[1] for x in r):,.0f}, {statistics.median(x[2] for x in r):,.0f} rec/s "
              f"(runs: {[round(x[0]) for x in r]})")
