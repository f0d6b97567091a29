#!/usr/bin/env python3
"""Start-to-first-Metadata time and idle RSS of a `strom server`, over several cold starts.

Usage: bench/startup.py [--binary PATH] [--runs 5] [--port 29292]
Each run uses a fresh data directory, spawns the binary, and sends a raw Metadata v4 request
(probe_metadata.metadata_v4 from ../shared/peers) every 2 ms until it answers. Prints each
time, the median, and the RSS one second after the first answer.
"""
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "peers"))
sys.path.insert(0, "/work/shared/peers")
from probe_metadata import metadata_v4  # noqa: E402


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one(binary, port):
    data = tempfile.mkdtemp(prefix="strom-startup-")
    try:
        t0 = time.monotonic()
        proc = subprocess.Popen([binary, "server", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                                 "--set", f"log.dirs={data}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                metadata_v4("127.0.0.1", port, timeout=0.5)
                break
            except OSError:
                if time.monotonic() - t0 > 10:
                    raise SystemExit("no answer in 10 s")
                time.sleep(0.002)
        ready = time.monotonic() - t0
        time.sleep(1.0)
        rss = rss_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        return ready, rss
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="/root/.cache/strom-target/release/strom")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--port", type=int, default=29292)
    args = ap.parse_args()
    results = [one(args.binary, args.port) for _ in range(args.runs)]
    for ready, rss in results:
        print(f"start->metadata {ready * 1000:.1f} ms, idle RSS {rss:.1f} MiB")
    print(f"median start->metadata {statistics.median(r for r, _ in results) * 1000:.1f} ms, "
          f"median idle RSS {statistics.median(m for _, m in results):.1f} MiB")


if __name__ == "__main__":
    main()
