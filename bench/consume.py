#!/usr/bin/env python3
"""Consume throughput and broker CPU, Strom against Kafka, with several clients (issue 20).

Usage: bench/consume.py STROM=HOST:PORT@PID KAFKA=HOST:PORT@PID [--rounds 3]
                        [--clients kcat,kcat-backoff10,strom,java] [--strom-bin PATH]

For each broker and each case (1,000,000 x 100 B and 200,000 x 1 KiB by default, --cases
N:SIZE,...), one 3-partition topic is filled once with kcat -P (librdkafka 2.16, acks=1, as
../shared/peers/side_by_side.py does); then every client reads the whole topic from the
beginning, alternating the brokers round by round. Printed per case and client: the median
records/s of each broker, the ratio Strom/Kafka, and each broker's CPU milliseconds per
million records read (user+system from /proc/PID/stat, over the client's whole run).

Clients (the same binary against both brokers):
  kcat            kcat -C (librdkafka 2.16), the side_by_side.py command;
  kcat-backoff10  the same with -X fetch.queue.backoff.ms=10 (librdkafka postpones a
                  partition's next fetch by this much, default 1,000 ms, once its local queue
                  holds queued.min.messages);
  strom           `strom perf consume` (strom-client), its own records/s;
  java            Kafka 4.1's kafka-consumer-perf-test.sh (the Java consumer, a group
                  subscription), its fetch.nMsg.sec (excludes JVM start and the group join).
The throughput of kcat and strom is timed around the whole command (a process start is a
few ms); the Java tool's own figure is used because its JVM start takes ~1 s.
"""
import argparse, json, os, statistics, subprocess, sys, time, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.environ.get("PEERS", os.path.join(HERE, "..", "..", "shared", "peers"))
KCAT = [os.path.join(PEERS, "kcat-new.sh")]
KAFKA_BIN = os.path.expanduser(
    os.environ.get("KAFKA_BIN", "~/.cache/strom-peers/kafka/kafka_2.13-4.1.0/bin"))
sys.path.insert(0, PEERS)
from side_by_side import cpu_s, msgfile, mktopic  # noqa: E402


def parse_target(s):
    label, rest = s.split("=", 1)
    addr, pid = rest.split("@", 1)
    return label, addr, pid


def fill(addr, n, size):
    topic = f"consume-{size}-{uuid.uuid4().hex[:8]}"
    mktopic(addr, topic)
    subprocess.run(KCAT + ["-P", "-b", addr, "-t", topic, "-l", msgfile(n, size), "-X", "acks=1",
                           "-X", "linger.ms=5", "-X", "batch.size=1048576",
                           "-X", "batch.num.messages=100000", "-X", "enable.idempotence=false",
                           "-X", "queue.buffering.max.messages=1000000",
                           "-X", "queue.buffering.max.kbytes=1048576", "-z", "none"],
                   check=True, timeout=600)
    return topic


def read(client, addr, topic, n, strom_bin):
    """Runs one client over the whole topic; returns its records/s."""
    if client.startswith("kcat"):
        extra = ["-X", "fetch.queue.backoff.ms=10"] if client == "kcat-backoff10" else []
        t0 = time.monotonic()
        out = subprocess.run(KCAT + ["-C", "-b", addr, "-t", topic, "-o", "beginning", "-c", str(n),
                                     "-q", "-f", "%s\n", "-X", "fetch.wait.max.ms=100"] + extra,
                             check=True, timeout=600, stdout=subprocess.PIPE).stdout
        secs = time.monotonic() - t0
        got = out.count(b"\n")
    elif client == "strom":
        t0 = time.monotonic()
        out = subprocess.run([strom_bin, "perf", "consume", "--bootstrap-server", addr,
                              "--topic", topic, "--messages", str(n), "--output", "json"],
                             check=True, timeout=600, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL).stdout
        secs = time.monotonic() - t0
        got = json.loads(out.decode().strip().splitlines()[-1])["records"]
    elif client == "java":
        out = subprocess.run([os.path.join(KAFKA_BIN, "kafka-consumer-perf-test.sh"),
                              "--bootstrap-server", addr, "--topic", topic, "--messages", str(n),
                              "--group", f"perf-{uuid.uuid4().hex[:8]}", "--timeout", "60000"],
                             check=True, timeout=600, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL).stdout.decode()
        lines = [l for l in out.splitlines() if l.strip()]
        header = [h.strip() for h in lines[-2].split(",")]
        row = dict(zip(header, (v.strip() for v in lines[-1].split(","))))
        got = int(row["data.consumed.in.nMsg"])
        if got < n:
            raise SystemExit(f"{client} on {addr}: consumed {got} of {n}")
        return float(row["fetch.nMsg.sec"])
    else:
        raise SystemExit(f"unknown client {client}")
    if got < n:
        raise SystemExit(f"{client} on {addr}: consumed {got} of {n}")
    return n / secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs=2, help="LABEL=HOST:PORT@PID (Strom first, then Kafka)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", default="kcat,kcat-backoff10,strom,java")
    ap.add_argument("--cases", default="1000000:100,200000:1024")
    ap.add_argument("--strom-bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", ""),
                                                         "release", "strom"))
    args = ap.parse_args()
    targets = [parse_target(t) for t in args.targets]
    clients = args.clients.split(",")
    for case in args.cases.split(","):
        n, size = (int(x) for x in case.split(":"))
        topics = {label: fill(addr, n, size) for label, addr, _ in targets}
        for client in clients:
            rates = {label: [] for label, _, _ in targets}
            cpus = {label: [] for label, _, _ in targets}
            for _ in range(args.rounds):
                for label, addr, pid in targets:
                    c0 = cpu_s(pid)
                    rates[label].append(read(client, addr, topics[label], n, args.strom_bin))
                    cpus[label].append((cpu_s(pid) - c0) * 1e9 / n)
            (a, _, _), (b, _, _) = targets
            ra, rb = statistics.median(rates[a]), statistics.median(rates[b])
            ca, cb = statistics.median(cpus[a]), statistics.median(cpus[b])
            print(f"{n}x{size}B {client:15} {a} {ra:>11,.0f}/s {b} {rb:>11,.0f}/s ratio {ra / rb:5.2f}"
                  f" | broker CPU ms/M {a} {ca:,.0f} {b} {cb:,.0f} ratio {ca / cb:.2f}"
                  f" | rounds {a} {[round(r) for r in rates[a]]} {b} {[round(r) for r in rates[b]]}",
                  flush=True)


if __name__ == "__main__":
    main()
