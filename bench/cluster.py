#!/usr/bin/env python3
"""Catch-up time of `run --source` with 1, 2 and 4 instances.

Publishes the users-orders stream (tests/shared/gen_events.py, 10%
redelivered) to a private JetStream, then for each instance count starts
that many `projector run --source ... --state postgres://...` on a fresh
database and times until `status` reports lag 0. Reports events/s (stream
messages / catch-up time), the CPU time PostgreSQL's processes spent, and
the p99 batch commit latency from the instances' metrics (a histogram
bucket bound). For comparison: the same stream through one stdin projector
on SQLite (`run --state FILE`).

    python3 bench/cluster.py [--events 1000000] [--instances 1,2,4]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/projector")
CONFIG = os.path.join(ROOT, "bench/users-orders.toml")
PG = "postgres://postgres@127.0.0.1:5432"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql, db="postgres"):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", sql],
                   check=True, capture_output=True)


class Cpu:
    """CPU seconds of processes by name, summed over every process seen:
    each is sampled while it lives, so that those that end (a unit's
    connection closed when it moves) still count up to their last sample."""

    def __init__(self):
        self.start = self.read()
        self.seen = dict(self.start)

    @staticmethod
    def read():
        found = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            found[(int(pid), name)] = (int(fields[11]) + int(fields[12])) / TICK
        return found

    def sample(self):
        self.seen.update(self.read())

    def used(self, prefix):
        return sum(t - self.start.get(k, 0) for k, t in self.seen.items() if k[1].startswith(prefix))


def lag(source, state):
    out = subprocess.run([BIN, "status", "-c", CONFIG, "--source", source, "--state", state,
                          "--format", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)["lag"]


def p99(ports):
    """The p99 commit bound over the instances' histograms, in ms, and the
    number of commits."""
    counts = {}
    for port in ports:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        for le, n in re.findall(r'projector_batch_commit_seconds_bucket\{le="([^"]+)"\} (\d+)', text):
            counts[le] = counts.get(le, 0) + int(n)
    total = counts.get("+Inf", 0)
    if not total:
        return None, 0
    for le, n in sorted(((k, v) for k, v in counts.items() if k != "+Inf"), key=lambda kv: float(kv[0])):
        if n >= 0.99 * total:
            return float(le) * 1000, total
    return float("inf"), total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--instances", default="1,2,4")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="projector-cluster-bench-")
    nats = None
    try:
        events = os.path.join(work, "events.ndjson")
        with open(events, "w") as f:
            subprocess.run([sys.executable, os.path.join(ROOT, "tests/shared/gen_events.py"),
                            "--events", str(args.events), "--seed", "42"], stdout=f, check=True)
        port = free_port()
        nats = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js",
                                 "-sd", os.path.join(work, "js")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        source = f"nats://127.0.0.1:{port}/BENCH"
        started = time.monotonic()
        with open(events) as f:
            out = subprocess.run([BIN, "publish", "-c", CONFIG, "--to", source], stdin=f,
                                 capture_output=True, text=True, check=True)
        print(f"published in {time.monotonic() - started:.1f} s: {out.stderr.strip().splitlines()[-1]}")
        last = int(re.search(r"sequences 1\.\.(\d+)", out.stderr).group(1))

        for n in [int(x) for x in args.instances.split(",")]:
            db = f"projector_cluster_bench_{n}"
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            psql(f"CREATE DATABASE {db}")
            state = f"{PG}/{db}"
            cpu = Cpu()
            ports = [free_port() for _ in range(n)]
            started = time.monotonic()
            runs = [subprocess.Popen([BIN, "run", "-c", CONFIG, "--source", source, "--state", state,
                                      "--metrics", f"127.0.0.1:{p}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for p in ports]
            while lag(source, state) != 0:
                cpu.sample()
                time.sleep(0.5)
            took = time.monotonic() - started
            cpu.sample()
            commit, commits = p99(ports)
            for r in runs:
                r.send_signal(signal.SIGTERM)
            for r in runs:
                r.wait()
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            print(f"{n} instance(s): caught up {last} messages in {took:.1f} s "
                  f"({last / took:,.0f} events/s); CPU: PostgreSQL {cpu.used('postgres'):.1f} s, "
                  f"projector {cpu.used('projector'):.1f} s, nats-server {cpu.used('nats-server'):.1f} s; "
                  f"{commits} commits, p99 <= {commit:g} ms")

        sqlite = os.path.join(work, "state.db")
        started = time.monotonic()
        with open(events) as f:
            subprocess.run([BIN, "run", "-c", CONFIG, "--state", sqlite], stdin=f,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        took = time.monotonic() - started
        print(f"stdin projector on SQLite: {args.events} lines in {took:.1f} s "
              f"({args.events / took:,.0f} lines/s)")
    finally:
        if nats:
            nats.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
