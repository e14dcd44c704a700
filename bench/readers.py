#!/usr/bin/env python3
"""Readers and the projector: does a reader's long transaction hold up the
units, or the other readers?

Publishes a small users-orders stream to a private JetStream, starts one
instance on a fresh database and waits until its views answer. Then a
reader opens a transaction on a view and holds it for `--hold` seconds.
Meanwhile:
  1. a second instance joins (units move between the instances);
  2. a changed configuration is deployed (`--deploy` when the build knows
     it), built beside the live one and switched to when it can;
  3. the first instance is stopped with SIGTERM;
and every 0.25 s a fresh reader runs `SELECT count(*)` on a view with a
2 s statement timeout, on each view in turn. Reports the fresh readers' latencies and timeouts,
how long the joining instance took to own its units, and how long SIGTERM
took.

    python3 bench/readers.py [--bin target/release/projector] [--hold 25]
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = "postgres://postgres@127.0.0.1:5432"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql, db="postgres", check=True):
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", sql],
                         capture_output=True, text=True)
    if check and out.returncode:
        raise RuntimeError(out.stderr)
    return out


def owned_by(db, pid):
    rows = psql("SELECT schema FROM projector._projector_units u JOIN projector._projector_versions v "
                "USING (version) WHERE status = 'serving'", db, check=False).stdout.split()
    if not rows:
        return 0
    selects = " UNION ALL ".join(
        f"SELECT holder FROM \"{s}\"._projector_lease WHERE expires > clock_timestamp()" for s in rows)
    out = psql(selects, db, check=False).stdout
    return sum(1 for line in out.split("\n") if f"pid {pid} " in line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/projector"))
    ap.add_argument("--hold", type=float, default=25)
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    config = os.path.join(ROOT, "bench/users-orders.toml")
    work = tempfile.mkdtemp(prefix="readers-")
    changed = os.path.join(work, "v2.toml")
    with open(config) as f, open(changed, "w") as g:
        g.write(f.read().replace('merge = { last_order_id = "$.payload.order_id" }',
                                 'merge = { last_order_id = "$.payload.order_id" }\n'
                                 'when = { path = "$.payload.amount", ge = 100 }'))
    deploy = ["--deploy"] if "--deploy" in subprocess.run(
        [args.bin, "run", "--help"], capture_output=True, text=True).stdout else []
    db = f"projector_readers_{os.getpid()}"
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    psql(f"CREATE DATABASE {db}")
    port = free_port()
    broker = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port),
                               "-sd", os.path.join(work, "nats")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"],
                         capture_output=True).returncode:
        time.sleep(0.05)
    source = f"nats://127.0.0.1:{port}/EVENTS"
    events = subprocess.run([sys.executable, os.path.join(ROOT, "tests/shared/gen_events.py"),
                             "--events", str(args.events), "--seed", "7"],
                            check=True, capture_output=True).stdout
    subprocess.run([args.bin, "publish", "--config", config, "--to", source],
                   input=events, check=True, capture_output=True)
    procs = []

    def start(cfg, name, extra=()):
        log = open(os.path.join(work, f"{name}.log"), "w")
        p = subprocess.Popen([args.bin, "run", "--config", cfg, "--source", source,
                              "--state", f"{PG}/{db}", *extra],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        procs.append(p)
        return p

    try:
        a = start(config, "a")
        deadline = time.monotonic() + 60
        while psql("SELECT count(*) FROM projector.user_listing", db, check=False).returncode:
            if time.monotonic() > deadline:
                sys.exit(f"the views did not appear in a minute: see {work}")
            time.sleep(0.2)
        time.sleep(2)
        # The long reader.
        holder = subprocess.Popen(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc",
                                   f"BEGIN; SELECT count(*) FROM projector.user_listing; "
                                   f"SELECT count(*) FROM projector.user_order_stats; "
                                   f"SELECT pg_sleep({args.hold}); COMMIT;"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        held = psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE a.query LIKE '%pg_sleep%' AND l.relation IS NOT NULL", db).stdout.strip()
        if holder.poll() is not None or held == "0":
            sys.exit(f"the long reader holds nothing: {holder.stderr.read()}")
        results = []
        stop = threading.Event()

        def fresh_readers():
            views = ["user_listing", "orders", "user_order_stats"]
            while not stop.is_set():
                view = views[len(results) % len(views)]
                t = time.monotonic()
                out = psql(f"SET statement_timeout = '2s'; SELECT count(*) FROM projector.{view}",
                           db, check=False)
                results.append((time.monotonic() - t, out.returncode == 0))
                time.sleep(0.25)

        reader = threading.Thread(target=fresh_readers)
        reader.start()
        t0 = time.monotonic()
        b = start(config, "b")
        joined = None
        while time.monotonic() - t0 < args.hold / 3:
            if joined is None and owned_by(db, b.pid) >= 2:
                joined = time.monotonic() - t0
            time.sleep(0.1)
        waiting = psql("SELECT count(*) FROM pg_locks WHERE NOT granted", db).stdout.strip()
        print(f"lock requests waiting {args.hold / 3:.0f} s after the second instance started: {waiting}")
        start(changed, "deploy", deploy)
        time.sleep(args.hold / 3)
        t1 = time.monotonic()
        a.send_signal(signal.SIGTERM)
        try:
            a.wait(timeout=60)
            term = time.monotonic() - t1
        except subprocess.TimeoutExpired:
            term = None
        holder.wait()
        time.sleep(3)
        stop.set()
        reader.join()
        switched = psql("SELECT version FROM projector._projector_versions WHERE status = 'serving'",
                        db, check=False).stdout.strip()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.terminate()
        broker.wait()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", check=False)
    ok = sorted(t for t, good in results if good)
    failed = sum(1 for _, good in results if not good)
    print(f"binary: {args.bin}; a reader held a transaction on two views for {args.hold:.0f} s")
    print(f"fresh readers: {len(results)} queries, {failed} failed (2 s statement timeout); "
          f"latency median {statistics.median(ok) if ok else float('nan'):.3f} s, "
          f"max {ok[-1] if ok else float('nan'):.3f} s")
    print(f"second instance owned its share: {'never' if joined is None else f'{joined:.2f} s'} "
          f"after it started")
    print(f"SIGTERM of the first instance: {'over 60 s' if term is None else f'{term:.2f} s'}")
    print(f"serving version at the end: {switched} (logs in {work})")


if __name__ == "__main__":
    main()
