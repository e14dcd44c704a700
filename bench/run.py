#!/usr/bin/env python3
"""Benchmark projector against its peers on the users-orders workload.

Generates a stream with ../shared/bench/gen_events.py, checks that projector's
replies and read models equal the Python reference's (as parsed JSON), then
times, alternating on the same input file: projector in memory, projector
--state (durable, group commit), the plain Python reference, the hand-written
Rust projector and its floor (parse and reply only). The Rust peers are built
in a temporary copy outside the repository.

Prints, for each: the median wall time over the runs, messages/s, peak RSS,
and the ratios of projector to the hand-written projector and to the floor.
With --ids N it also measures the memory that N distinct processed ids cost.

With --baseline BIN it also times another projector binary (an earlier build,
say) in memory and with --state, alternating with the others, so that a change
is measured against its baseline in one run on a noisy machine.

With --subscriptions N it also times N subscribe messages of 10 new types each.

With --state-postgres URL it also checks and times projector on a PostgreSQL
state (a fresh schema each run, dropped after), and measures the ceiling: the
same writes (a claim check, the ids, each model's upserts, the metadata) in
transactions of the same size as the projector's, driven by pgbench with one
client; the projector's events/s is reported as a ratio of it.

Usage: bench/run.sh [--events N] [--runs R] [--ids N] [--no-python] [--baseline BIN]
                    [--subscriptions N] [--state-postgres URL]
Not part of the tests or CI: it takes minutes and needs a quiet machine.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "bench"
CONFIG = HERE / "users-orders.toml"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build(tmp: pathlib.Path) -> dict:
    """Builds projector and the Rust peers; returns the binaries."""
    sh(["cargo", "build", "--release", "--quiet"], cwd=REPO)
    peers = tmp / "handwritten-rs"
    shutil.copytree(SHARED / "peers" / "handwritten-rs", peers, ignore=shutil.ignore_patterns("target"))
    sh(["cargo", "build", "--release", "--quiet"], cwd=peers)
    return {
        "projector": REPO / "target" / "release" / "projector",
        "handwritten": peers / "target" / "release" / "handwritten-projector",
        "floor": peers / "target" / "release" / "floor",
    }


def timed(cmd, stdin_path, stdout=subprocess.DEVNULL, stderr=None):
    """Runs cmd under GNU time; returns (wall seconds, peak RSS in KiB)."""
    with open(stdin_path, "rb") as stdin, tempfile.NamedTemporaryFile("r") as report:
        sh(["/usr/bin/time", "-f", "%e %M", "-o", report.name] + [str(c) for c in cmd],
           stdin=stdin, stdout=stdout, stderr=stderr)
        wall, rss = report.read().split()
    return float(wall), int(rss)


PG_SCHEMA = "projector_bench"


def psql(url, sql, **kw):
    """Runs `sql` with psql against `url`; returns its unaligned output."""
    return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                          check=True, capture_output=True, text=True, **kw).stdout.strip()


def drop_schema(url, schema=PG_SCHEMA):
    psql(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check_correctness(bins, events, tmp, postgres=None) -> None:
    """projector (in memory and durable) must answer and build what the reference does."""
    ref_out, ref_dump = tmp / "ref.out", tmp / "ref.json"
    with open(events) as stdin, open(ref_out, "w") as out:
        sh([sys.executable, SHARED / "peers" / "reference_projector.py", "--dump", ref_dump], stdin=stdin, stdout=out)
    reference = lines(ref_out)
    ref_models = json.loads(ref_dump.read_text())
    modes = ("memory", "state") + (("postgres",) if postgres else ())
    for mode in modes:
        out, dump = tmp / f"{mode}.out", tmp / f"{mode}.json"
        cmd = [bins["projector"], "--config", CONFIG, "--envelope", "--dump", dump]
        if mode == "state":
            cmd += ["--state", tmp / "check.db"]
        if mode == "postgres":
            drop_schema(postgres)
            cmd += ["--state", postgres, "--schema", PG_SCHEMA]
        with open(events) as stdin, open(out, "w") as stdout:
            # What a state says on stderr (the state it created) is not a reply.
            sh([str(c) for c in cmd], stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL)
        replies = lines(out)
        if len(replies) != len(reference):
            sys.exit(f"refusing to time: {mode}: {len(replies)} replies, the reference gave {len(reference)}")
        for i, (got, want) in enumerate(zip(replies, reference)):
            if got != want:
                sys.exit(f"refusing to time: {mode}: reply {i + 1} differs:\n  projector {got}\n  reference {want}")
        if json.loads(dump.read_text()) != ref_models:
            sys.exit(f"refusing to time: {mode}: the read models differ from the reference's")
    print(f"correct: {len(reference)} replies and {sum(map(len, ref_models.values()))} documents "
          f"equal the reference's: {', '.join(modes)}")


def measure_ids(bins, count: int, tmp) -> None:
    """Peak RSS of a run holding `count` distinct processed ids, less that of a run of as many
    messages that all redeliver one id (the same reading and reply buffers, one id)."""
    def stream(n, path, distinct):
        with open(path, "w") as f:
            for i in range(n):
                f.write('{"type":"event","msg_id":%d,"event":{"type":"Ping","id":"evt-%d","payload":{}}}\n' % (i, i if distinct else 0))
    empty, full = tmp / "ids0.ndjson", tmp / "ids.ndjson"
    stream(count, empty, False)
    stream(count, full, True)
    _, base = timed([bins["projector"], "--config", CONFIG], empty)
    _, peak = timed([bins["projector"], "--config", CONFIG], full)
    per_id = (peak - base) * 1024 / count
    print(f"processed ids: {count} held in {(peak - base) / 1024:.1f} MiB over the baseline: {per_id:.1f} bytes per id")


def measure_subscriptions(bins, count: int, tmp) -> None:
    """Wall time of `count` subscribe messages of 10 new types each, in memory and with --state:
    the cost of a subscription must not grow with those before it."""
    path = tmp / "subscribe.ndjson"
    with open(path, "w") as f:
        for i in range(count):
            types = ",".join('"T%d_%d"' % (i, j) for j in range(10))
            f.write('{"type":"subscribe","msg_id":%d,"event_types":[%s]}\n' % (i, types))
    state = tmp / "subscribe.db"
    for mode, extra in (("in memory", []), ("with --state", ["--state", state])):
        wall, _ = timed([bins["projector"], "--config", CONFIG] + extra, path, stderr=subprocess.DEVNULL)
        print(f"subscriptions: {count} subscribe messages of 10 new types each, {mode}: {wall:.2f} s")


def pg_writes(url):
    """What the projector's run wrote into the bench schema: batches committed, ids, and per
    model table its rows at the end and its inserts and updates (PostgreSQL's statistics)."""
    psql(url, "SELECT pg_sleep(1)")  # the projector's backend reports its statistics as it exits
    commits = int(psql(url, f"SELECT value FROM {PG_SCHEMA}._projector_meta WHERE name = 'commits'"))
    ids = int(psql(url, f"SELECT count(*) FROM {PG_SCHEMA}._projector_processed"))
    tables = []
    for row in psql(url, f"""SELECT relname, n_live_tup, n_tup_ins + n_tup_upd FROM pg_stat_user_tables
                             WHERE schemaname = '{PG_SCHEMA}' AND relname LIKE '\\_projector\\_doc\\_%'""").splitlines():
        name, live, written = row.split("|")
        tables.append((name, int(live), int(written)))
    return commits, ids, tables


def pg_ceiling(url, writes, tmp):
    """Transactions per second of pgbench (one client) running the projector's writes, as many
    transactions as it committed, each as large as its average batch."""
    commits, ids, tables = writes
    schema = "projector_ceiling"
    drop_schema(url, schema)
    setup = [f'CREATE SCHEMA "{schema}"',
             f"CREATE TABLE {schema}.lease (id int PRIMARY KEY, token bigint, expires timestamptz)",
             f"INSERT INTO {schema}.lease VALUES (1, 1, now())",
             f"CREATE TABLE {schema}.meta (name text PRIMARY KEY, value text NOT NULL)",
             f"INSERT INTO {schema}.meta VALUES ('commits', '0'), ('rows', '')",
             f"CREATE TABLE {schema}.processed (id text NOT NULL, type text NOT NULL)"]
    script = ["\\set start random(1, 1000000000)", "BEGIN;",
              f"UPDATE {schema}.lease SET expires = clock_timestamp() + make_interval(secs => 10) WHERE id = 1 AND token = 1;",
              f"INSERT INTO {schema}.processed (id, type) SELECT 'evt-' || g, 'OrderPlaced' "
              f"FROM generate_series(:start, :start + {max(1, ids // commits) - 1}) g;"]
    for i, (_, live, written) in enumerate(tables):
        setup.append(f"CREATE TABLE {schema}.docs{i} (key text PRIMARY KEY, body text NOT NULL, doc jsonb NOT NULL)")
        # Keys over the table's final size: inserts at first, then updates, as the projector's.
        script += [f"\\set k{i} random(0, {max(1, live) - 1})",
                   f"INSERT INTO {schema}.docs{i} (key, body, doc) SELECT k, b, b::jsonb FROM ("
                   f"SELECT 'key-' || (g % {max(1, live)}) AS k, "
                   f"'{{\"order_id\":\"order-' || g || '\",\"user_id\":\"user-1\",\"amount\":12.5}}' AS b "
                   f"FROM generate_series(:k{i}, :k{i} + {max(1, min(live, written // commits)) - 1}) g) s "
                   f"ON CONFLICT (key) DO UPDATE SET body = excluded.body, doc = excluded.doc;"]
    script += [f"INSERT INTO {schema}.meta (name, value) SELECT * FROM unnest(ARRAY['rows', 'commits'], ARRAY['x', 'y']) "
               f"ON CONFLICT (name) DO UPDATE SET value = excluded.value;", "COMMIT;"]
    for sql in setup:
        psql(url, sql)
    path = tmp / "ceiling.sql"
    path.write_text("\n".join(script) + "\n")
    out = subprocess.run(["pgbench", "-n", "-c", "1", "-t", str(commits), "-f", str(path), url],
                         check=True, capture_output=True, text=True).stdout
    drop_schema(url, schema)
    tps = next(float(l.split("=")[1].split()[0]) for l in out.splitlines() if l.startswith("tps"))
    return tps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="distinct events (10%% are redelivered on top)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ids", type=int, default=0, help="also measure the memory of this many processed ids")
    ap.add_argument("--no-python", action="store_true", help="skip timing the (slow) Python reference")
    ap.add_argument("--baseline", type=pathlib.Path, help="also time this projector binary, in memory and with --state")
    ap.add_argument("--subscriptions", type=int, default=0, help="also time this many subscribe messages of 10 new types each")
    ap.add_argument("--state-postgres", metavar="URL", help="also time projector on a PostgreSQL state in this database, and its pgbench ceiling")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="projector-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        bins = build(tmp)
        events = tmp / "events.ndjson"
        with open(events, "w") as out:
            sh([sys.executable, SHARED / "gen_events.py", "--events", str(args.events)], stdout=out)
        messages = sum(1 for _ in open(events))
        print(f"workload: users-orders, {args.events} events, {messages} messages ({events.stat().st_size >> 20} MiB)")
        check_correctness(bins, events, tmp, args.state_postgres)

        state = tmp / "bench.db"
        contenders = {
            "projector": [bins["projector"], "--config", CONFIG, "--envelope"],
            "projector --state": [bins["projector"], "--config", CONFIG, "--envelope", "--state", state],
            "handwritten-rs": [bins["handwritten"]],
            "floor": [bins["floor"]],
        }
        if args.baseline:
            base = args.baseline.resolve()
            contenders["baseline"] = [base, "--config", CONFIG, "--envelope"]
            contenders["baseline --state"] = [base, "--config", CONFIG, "--envelope", "--state", state]
        if args.state_postgres:
            contenders["projector postgres"] = [bins["projector"], "--config", CONFIG, "--envelope",
                                                "--state", args.state_postgres, "--schema", PG_SCHEMA]
        if not args.no_python:
            contenders["python reference"] = [sys.executable, SHARED / "peers" / "reference_projector.py"]
        results = {name: [] for name in contenders}
        for run in range(args.runs):
            for name, cmd in contenders.items():
                for f in tmp.glob("bench.db*"):
                    f.unlink()
                if name == "projector postgres":
                    drop_schema(args.state_postgres)
                results[name].append(timed(cmd, events, stderr=subprocess.DEVNULL))
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)

        median = {name: statistics.median(w for w, _ in r) for name, r in results.items()}
        print(f"\n{'':<20}{'median s':>10}{'messages/s':>14}{'peak RSS MiB':>14}")
        for name, r in results.items():
            rss = max(m for _, m in r) / 1024
            rate = f"{messages / median[name]:,.0f}" if median[name] else "-"
            print(f"{name:<20}{median[name]:>10.3f}{rate:>14}{rss:>14.1f}")
        if min(median.values()) == 0:
            # /usr/bin/time counts in hundredths of a second.
            print("\nsome runs took under 10 ms: no ratios; use more --events")
        else:
            p = median["projector"]
            print(f"\nprojector / handwritten-rs: {p / median['handwritten-rs']:.2f}x wall time")
            print(f"projector / floor:          {p / median['floor']:.2f}x wall time")
            if "python reference" in median:
                print(f"python reference / projector: {median['python reference'] / p:.1f}x wall time")
            print(f"durable / in-memory throughput: {p / median['projector --state']:.0%}")
            if "baseline" in median:
                b = median["baseline"]
                print(f"baseline durable / in-memory:   {b / median['baseline --state']:.0%}")
                print(f"projector / baseline:           {p / b:.2f}x in memory, "
                      f"{median['projector --state'] / median['baseline --state']:.2f}x with --state")
        if args.state_postgres:
            writes = pg_writes(args.state_postgres)
            drop_schema(args.state_postgres)
            commits, ids, tables = writes
            events_per_s = args.events / median["projector postgres"]
            tps = pg_ceiling(args.state_postgres, writes, tmp)
            ceiling = tps * ids / commits
            print(f"\npostgres: the last run committed {commits} batches ({ids / commits:,.0f} ids, "
                  f"{sum(w for _, _, w in tables) / commits:,.0f} document writes each): "
                  f"{events_per_s:,.0f} events/s")
            print(f"pgbench ceiling, the same writes in {commits} transactions of that size, one client: "
                  f"{tps:.2f} tps = {ceiling:,.0f} events/s")
            print(f"projector postgres / ceiling: {events_per_s / ceiling:.2f}x")
        if args.ids:
            measure_ids(bins, args.ids, tmp)
        if args.subscriptions:
            measure_subscriptions(bins, args.subscriptions, tmp)


if __name__ == "__main__":
    main()
