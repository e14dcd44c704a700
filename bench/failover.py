#!/usr/bin/env python3
"""Failover time of `run --source`: how long a SIGKILLed instance's units
stay without an owner.

Publishes a small users-orders stream to a private JetStream, starts
`--instances` instances on a fresh database with default settings, waits
until every unit is owned, then `--kills` times: SIGKILLs the instance
owning the most units and times until every unit it held is claimed by a
live instance (read from the units' lease rows, polled every 20 ms), then
starts a new instance in its place and waits until the units are shared
again. Prints each take-over time and their distribution.

    python3 bench/failover.py [--kills 20] [--instances 2] [--bin target/release/projector]
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = "postgres://postgres@127.0.0.1:5432"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql, db="postgres"):
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Cluster:
    def __init__(self, args, db, stream, logs):
        self.args, self.db, self.stream, self.logs = args, db, stream, logs
        self.procs = []
        self.schemas = None

    def start(self):
        n = len(self.procs)
        log = open(os.path.join(self.logs, f"instance-{n}.log"), "w")
        p = subprocess.Popen([self.args.bin, "run", "--config", self.args.config,
                              "--source", f"{NATS}/{self.stream}",
                              "--state", f"{PG}/{self.db}"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        self.procs.append(p)
        return p

    def owners(self):
        """The holder of each unit's live claim (None when free)."""
        if self.schemas is None:
            try:
                rows = psql("SELECT schema FROM projector._projector_units u JOIN "
                        "projector._projector_versions v USING (version) "
                            "WHERE v.status = 'serving' ORDER BY position", self.db)
            except subprocess.CalledProcessError:
                return None
            if not rows:
                return None
            self.schemas = rows.split("\n")
        selects = " UNION ALL ".join(
            f"SELECT {i}, CASE WHEN expires > clock_timestamp() THEN holder END "
            f"FROM \"{s}\"._projector_lease" for i, s in enumerate(self.schemas))
        try:
            rows = psql(f"SELECT * FROM ({selects}) o ORDER BY 1", self.db)
        except subprocess.CalledProcessError:
            return None
        owners = [r.split("|", 1)[1] or None for r in rows.split("\n")]
        return owners if len(owners) == len(self.schemas) else None

    def wait_shared(self, live, deadline=60):
        """Until every unit is owned and each live instance owns its share."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            owners = self.owners()
            if owners and all(owners):
                counts = [sum(1 for o in owners if f"pid {p.pid} " in o) for p in live]
                if min(counts) >= len(owners) // len(live):
                    return owners
            time.sleep(0.1)
        sys.exit("the units were not shared within a minute: see " + self.logs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/projector"))
    ap.add_argument("--config", default=os.path.join(ROOT, "bench/users-orders.toml"))
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--instances", type=int, default=2)
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    db = f"projector_failover_{os.getpid()}"
    stream = f"FAILOVER_{os.getpid()}"
    logs = tempfile.mkdtemp(prefix="failover-")
    port = free_port()
    global NATS
    NATS = f"nats://127.0.0.1:{port}"
    broker = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port),
                               "-sd", os.path.join(logs, "nats")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"],
                         capture_output=True).returncode:
        time.sleep(0.05)
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    psql(f"CREATE DATABASE {db}")
    events = subprocess.run([sys.executable, os.path.join(ROOT, "tests/shared/gen_events.py"),
                             "--events", str(args.events), "--seed", "7"],
                            check=True, capture_output=True).stdout
    subprocess.run([args.bin, "publish", "--config", args.config, "--to", f"{NATS}/{stream}"],
                   input=events, check=True, capture_output=True)
    cluster = Cluster(args, db, stream, logs)
    live = [cluster.start() for _ in range(args.instances)]
    times = []
    try:
        owners = cluster.wait_shared(live)
        for k in range(args.kills):
            victim = max(live, key=lambda p: sum(1 for o in owners if f"pid {p.pid} " in o))
            held = [i for i, o in enumerate(owners) if f"pid {victim.pid} " in o]
            start = time.monotonic()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            live.remove(victim)
            while True:
                owners = cluster.owners() or []
                if owners and all(owners[i] and f"pid {victim.pid} " not in owners[i]
                                  for i in held):
                    break
                if time.monotonic() - start > 60:
                    sys.exit(f"kill {k + 1}: units not taken over in 60 s: see {logs}")
                time.sleep(0.02)
            took = time.monotonic() - start
            times.append(took)
            print(f"kill {k + 1:2}: {len(held)} units taken over in {took:.3f} s", flush=True)
            live.append(cluster.start())
            owners = cluster.wait_shared(live)
    finally:
        for p in cluster.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in cluster.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.terminate()
        broker.wait()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    times.sort()
    print(f"{len(times)} kills, {args.instances} instances: take-over median "
          f"{statistics.median(times):.3f} s, min {times[0]:.3f} s, "
          f"p90 {times[int(len(times) * 0.9) - 1]:.3f} s, max {times[-1]:.3f} s")


if __name__ == "__main__":
    main()
