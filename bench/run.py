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

With --hot it also times the hot-document stream: the users-orders stream of
150k and 300k events (--hot-events) where one customer holds ~60% of the
orders, so that orders_per_customer (examples/users-orders.toml) appends most
order ids to one list. In memory, on SQLite and (with --state-postgres) on
PostgreSQL, after checking once per stream that the durable runs reply and
dump byte for byte what the in-memory run does. Linear costs give a 300k/150k
time ratio near 2.

With --restart it also times a restart on a big state: for each of
--restart-sizes documents (100k, 1M and 3M by default) it builds a state of one
model keyed by user id (untimed, reported), then times runs of 1,000 new events
on it, half updating existing documents and half creating new ones (each run
checked to update a model 1,000 times): that run's wall time and peak RSS must
not grow with the state. It also shows how long opening the state took, as
projector reports it on stderr.

With --rebuild it also times a rebuild on a big state: for each of
--rebuild-sizes documents (100k and 1M by default) it builds the --restart
state (untimed), then times `replay --rebuild users` from the same log with a
changed definition of the model (every document rebuilt and swapped in,
checked by its count): its peak RSS must not grow with the state.

--projector BIN times that binary instead of building target/release/projector
(the Rust peers are still built, outside the repository); --cache-mb N passes
--cache-mb N to the state runs of the --hot, --restart and --rebuild tables.

Usage: bench/run.sh [--events N] [--runs R] [--ids N] [--no-python] [--baseline BIN]
                    [--subscriptions N] [--state-postgres URL] [--projector BIN]
                    [--hot] [--hot-events N,N,..] [--restart] [--restart-sizes N,N,..]
                    [--rebuild] [--rebuild-sizes N,N,..] [--cache-mb N]
Not part of the tests or CI: it takes minutes and needs a quiet machine.
"""
import argparse
import json
import os
import pathlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import zlib

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "bench"
CONFIG = HERE / "users-orders.toml"
# The generator of ../shared, else the copy the tests use.
GEN_EVENTS = next(p for p in (SHARED / "gen_events.py", REPO / "tests" / "shared" / "gen_events.py") if p.exists())


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def build(tmp: pathlib.Path, projector=None) -> dict:
    """Builds projector (unless a binary is given) and the Rust peers; returns the binaries."""
    if projector is None:
        sh(["cargo", "build", "--release", "--quiet"], cwd=REPO)
    peers = tmp / "handwritten-rs"
    shutil.copytree(SHARED / "peers" / "handwritten-rs", peers, ignore=shutil.ignore_patterns("target"))
    sh(["cargo", "build", "--release", "--quiet"], cwd=peers)
    return {
        "projector": projector or REPO / "target" / "release" / "projector",
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


def sizes(text: str) -> list:
    """"100000,1000000" -> [100000, 1000000]: the sizes a flag lists."""
    return [int(n) for n in text.split(",")]


def label(n: int) -> str:
    """150000 -> 150k, 1000000 -> 1M: a size as a column heading."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            return f"{n / size:g}{unit}"
    return str(n)


def run_or_exit(cmd, stdin_path, log, stdout=subprocess.DEVNULL):
    """timed(), with cmd's stderr in `log`: shown, with the command, when cmd fails."""
    with open(log, "w") as err:
        try:
            return timed(cmd, stdin_path, stdout=stdout, stderr=err)
        except subprocess.CalledProcessError as e:
            sys.exit(f"failed with status {e.returncode}: {' '.join(map(str, cmd))} < {stdin_path}\n"
                     f"{pathlib.Path(log).read_text()[-2000:]}")


HOT_CONFIG = REPO / "examples" / "users-orders.toml"
HOT_EVENTS = [150_000, 300_000]
HOT_SHARE = 0.60
HOT_USER = "user-0"
HOT_SCHEMA = "projector_bench_hot"


def busiest_customer(path):
    """The customer with the most distinct orders in a stream: (user id, its share, orders)."""
    orders, seen = {}, set()
    with open(path) as f:
        for line in f:
            event = json.loads(line)["body"].get("event")
            if event and event["type"] == "OrderPlaced" and event["id"] not in seen:
                seen.add(event["id"])
                user = event["payload"]["user_id"]
                orders[user] = orders.get(user, 0) + 1
    user = max(orders, key=orders.get)
    return user, orders[user] / len(seen), len(seen)


def hand_orders_to_one(src, dst) -> None:
    """Copies the stream, handing HOT_SHARE of the orders to HOT_USER; which orders is decided
    by the event id, so that a redelivery stays the very same event."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with open(src) as f, open(dst, "w") as out:
        for line in f:
            message = json.loads(line)
            event = message["body"].get("event")
            if event and event["type"] == "OrderPlaced" and zlib.crc32(event["id"].encode()) % 100 < HOT_SHARE * 100:
                event["payload"]["user_id"] = HOT_USER
                line = dumps(message) + "\n"
            out.write(line)


def hot_stream(events: int, path) -> None:
    """Writes the users-orders stream of `events` events with one customer holding ~HOT_SHARE of
    the orders: the generator's busiest, when it has at least half that share already; otherwise
    the bench hands orders to HOT_USER."""
    generated = path.with_suffix(".generated")
    with open(generated, "w") as out:
        sh([sys.executable, GEN_EVENTS, "--events", str(events)], stdout=out)
    user, share, orders = busiest_customer(generated)
    how = "as generated"
    if share < HOT_SHARE / 2:
        how = f"handed to it by the bench: the generator's busiest customer, {user}, has {share:.2%}"
        hand_orders_to_one(generated, path)
        generated.unlink()
        user, share, orders = busiest_customer(path)
    else:
        generated.rename(path)
    messages = sum(1 for _ in open(path))
    print(f"hot: {events} events, {messages} messages ({path.stat().st_size >> 20} MiB): "
          f"{user} holds {share:.0%} of {orders} orders ({how})")


def hot_modes(projector, tmp, args) -> dict:
    """The commands of the hot table, by mode."""
    cache = ["--cache-mb", args.cache_mb] if args.cache_mb is not None else []
    modes = {"memory": [projector, "--config", HOT_CONFIG],
             "sqlite": [projector, "--config", HOT_CONFIG, "--state", tmp / "hot.db"] + cache}
    if args.state_postgres:
        modes["postgres"] = [projector, "--config", HOT_CONFIG, "--state", args.state_postgres,
                             "--schema", HOT_SCHEMA] + cache
    return modes


def hot_reset(tmp, url) -> None:
    """Every mode of the hot table starts from an empty state."""
    for f in tmp.glob("hot.db*"):
        f.unlink()
    if url:
        drop_schema(url, HOT_SCHEMA)


def first_difference(got: bytes, want: bytes) -> str:
    got, want = got.splitlines(), want.splitlines()
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"line {i + 1}:\n  got    {g[:300]!r}\n  memory {w[:300]!r}"
    return f"{len(got)} lines, the in-memory run's {len(want)}"


def check_hot(modes, stream, tmp, url) -> None:
    """The durable modes must reply and dump byte for byte what the in-memory run does; the files
    of a failure are kept for a look."""
    outputs = {}
    for mode, cmd in modes.items():
        hot_reset(tmp, url)
        out, dump = tmp / f"hot-{mode}.out", tmp / f"hot-{mode}.json"
        with open(out, "w") as stdout:
            run_or_exit(cmd + ["--dump", dump], stream, tmp / "hot.log", stdout=stdout)
        outputs[mode] = {"replies": out, "--dump": dump}
    memory = outputs.pop("memory")
    for mode, files in outputs.items():
        for what, path in files.items():
            if path.read_bytes() != memory[what].read_bytes():
                kept = pathlib.Path(tempfile.mkdtemp(prefix="projector-hot-failure-"))
                for f in [stream, *files.values(), *memory.values()]:
                    shutil.copy(f, kept)
                diff = first_difference(path.read_bytes(), memory[what].read_bytes())
                sys.exit(f"hot: {mode}: the {what} differ from the in-memory run's, {diff}\n"
                         f"  {' '.join(map(str, modes[mode]))} --dump {files['--dump'].name} < {stream.name}\n"
                         f"  the stream and the outputs of both runs are kept in {kept}")
    print(f"hot: correct: {', '.join(outputs)} reply and dump byte for byte what memory does")


def hot_table(projector, tmp, args) -> None:
    """Wall time and peak RSS of the hot-document stream at each size, by mode."""
    modes = hot_modes(projector, tmp, args)
    results = {mode: {} for mode in modes}
    for events in args.hot_events:
        stream = tmp / f"hot-{events}.ndjson"
        hot_stream(events, stream)
        check_hot(modes, stream, tmp, args.state_postgres)
        for run in range(args.runs):
            for mode, cmd in modes.items():
                hot_reset(tmp, args.state_postgres)
                results[mode].setdefault(events, []).append(run_or_exit(cmd, stream, tmp / "hot.log"))
            print(f"hot {label(events)}: run {run + 1}/{args.runs} done", file=sys.stderr)
        stream.unlink()
    hot_reset(tmp, args.state_postgres)

    small, large = args.hot_events[0], args.hot_events[-1]
    cache = f", --cache-mb {args.cache_mb}" if args.cache_mb is not None else ""
    print(f"\nhot document (examples/users-orders.toml{cache}): median s over {args.runs} runs, peak RSS MiB")
    print(f"{'':<10}" + "".join(f"{label(n) + ' s':>10}{label(n) + ' MiB':>11}" for n in args.hot_events)
          + f"{label(large) + '/' + label(small):>12}")
    for mode, by_size in results.items():
        median = {n: statistics.median(w for w, _ in r) for n, r in by_size.items()}
        row = "".join(f"{median[n]:>10.2f}{max(m for _, m in by_size[n]) / 1024:>11.1f}" for n in args.hot_events)
        ratio = f"{median[large] / median[small]:.2f}x" if median[small] else "-"
        print(f"{mode:<10}{row}{ratio:>12}")


RESTART_SIZES = [100_000, 1_000_000, 3_000_000]
RESTART_EVENTS = 1_000
RESTART_SCHEMA = "projector_bench_restart"
RESTART_CONFIG = """\
# One read model keyed by user id: the state bench/run.py --restart builds, then restarts on.
[event_id]
path = "$.id"

[[model]]
name = "users"
key = "$.payload.id"
on.UserCreated = { put = { name = "$.payload.name" } }
"""
USER_CREATED = '{"type":"event","msg_id":%d,"event":{"type":"UserCreated","id":"%s","payload":{"id":"%s","name":"%s"}}}\n'


def restart_build_stream(size: int, path) -> None:
    """`size` users created: u-0 .. u-(size-1)."""
    with open(path, "w") as f:
        f.writelines(USER_CREATED % (i, f"e-{i}", f"u-{i}", "n") for i in range(size))


def restart_stream(size: int, run: int, path) -> None:
    """RESTART_EVENTS events never seen before: the even ones overwrite a random existing user,
    the odd ones create a new one."""
    rng = random.Random(run)
    with open(path, "w") as f:
        for j in range(RESTART_EVENTS):
            user = f"u-{rng.randrange(size)}" if j % 2 == 0 else f"u-new-{run}-{j}"
            f.write(USER_CREATED % (j, f"r-{run}-{j}", user, f"m-{run}"))


def restart_backends(tmp, args) -> dict:
    """The --state arguments of each backend of the restart table."""
    backends = {"sqlite": ["--state", tmp / "restart.db"]}
    if args.state_postgres:
        backends["postgres"] = ["--state", args.state_postgres, "--schema", RESTART_SCHEMA]
    return backends


def resumed_in(log):
    """How long opening the state took, as projector reports it on stderr ("resumed the state ...
    in 0.19 s:"), or None."""
    found = re.search(r"resumed the state .* in ([0-9.]+) s:", pathlib.Path(log).read_text())
    return float(found.group(1)) if found else None


def restart_reset(tmp, url) -> None:
    for f in tmp.glob("restart.db*"):
        f.unlink()
    if url:
        drop_schema(url, RESTART_SCHEMA)


def restart_table(projector, tmp, args) -> None:
    """Wall time and peak RSS of a run of RESTART_EVENTS events on a state of each size, by backend."""
    config = tmp / "restart.toml"
    config.write_text(RESTART_CONFIG)
    cache = ["--cache-mb", args.cache_mb] if args.cache_mb is not None else []
    backends = restart_backends(tmp, args)
    results = {backend: {} for backend in backends}
    resumed = {backend: {} for backend in backends}
    for size in args.restart_sizes:
        restart_reset(tmp, args.state_postgres)
        build = tmp / "restart-build.ndjson"
        restart_build_stream(size, build)
        for backend, state in backends.items():
            wall, rss = run_or_exit([projector, "--config", config] + state + cache, build, tmp / "restart.log")
            print(f"restart: built the {backend} state of {size:,} documents in {wall:.1f} s "
                  f"(peak RSS {rss / 1024:.0f} MiB)")
        build.unlink()
        events, replies = tmp / "restart.ndjson", tmp / "restart.out"
        for run in range(args.runs):
            restart_stream(size, run, events)
            for backend, state in backends.items():
                cmd = [projector, "--config", config] + state + cache
                with open(replies, "w") as out:
                    measured = run_or_exit(cmd, events, tmp / "restart.log", stdout=out)
                answers = replies.read_text().splitlines()
                updated = sum('"read_models_updated"' in line for line in answers)
                if updated != RESTART_EVENTS:
                    sys.exit(f"restart: {backend}, {size:,} documents: {updated} of {RESTART_EVENTS} events "
                             f"updated a model:\n  {' '.join(map(str, cmd))} < {events.name}\n  {answers[:1]}")
                results[backend].setdefault(size, []).append(measured)
                resumed[backend].setdefault(size, []).append(resumed_in(tmp / "restart.log"))
            print(f"restart {label(size)}: run {run + 1}/{args.runs} done", file=sys.stderr)
    restart_reset(tmp, args.state_postgres)

    cached = f", --cache-mb {args.cache_mb}" if args.cache_mb is not None else ""
    print(f"\nrestart: a run of {RESTART_EVENTS:,} new events (half updates, half creations) on a state of "
          f"N documents{cached}: median s over {args.runs} runs, peak RSS MiB")
    print(f"{'':<10}" + "".join(f"{label(n) + ' s':>10}{label(n) + ' MiB':>11}" for n in args.restart_sizes))
    for backend, by_size in results.items():
        print(f"{backend:<10}" + "".join(f"{statistics.median(w for w, _ in by_size[n]):>10.2f}"
                                         f"{max(m for _, m in by_size[n]) / 1024:>11.1f}" for n in args.restart_sizes))
    print("of which opening the state, as projector reports it on stderr (median s):")
    for backend, by_size in resumed.items():
        times = [statistics.median(t) if None not in t else None for t in (by_size[n] for n in args.restart_sizes)]
        print((f"{backend:<10}" + "".join(f"{t:>10.2f}{'':>11}" if t is not None else f"{'-':>10}{'':>11}"
                                          for t in times)).rstrip())


REBUILD_SIZES = [100_000, 1_000_000]


def rebuild_table(projector, tmp, args) -> None:
    """Wall time and peak RSS of `replay --rebuild users` on a state of each size, by backend."""
    config, changed = tmp / "restart.toml", tmp / "rebuilt.toml"
    config.write_text(RESTART_CONFIG)
    changed.write_text(RESTART_CONFIG.replace('name = "$.payload.name" }', 'name = "$.payload.name", again = true }'))
    cache = ["--cache-mb", args.cache_mb] if args.cache_mb is not None else []
    backends = restart_backends(tmp, args)
    results = {backend: {} for backend in backends}
    log = tmp / "rebuild.ndjson"
    for size in args.rebuild_sizes:
        restart_build_stream(size, log)
        for run in range(args.runs):
            restart_reset(tmp, args.state_postgres)
            for backend, state in backends.items():
                run_or_exit([projector, "--config", config] + state, log, tmp / "rebuild.log")
                cmd = [projector, "replay", "--config", changed, "--rebuild", "users"] + state + cache + [log]
                measured = run_or_exit(cmd, "/dev/null", tmp / "rebuild.log")
                summary = pathlib.Path(tmp / "rebuild.log").read_text()
                if f"swapped in users: {size:,}".replace(",", "") not in summary.replace(",", ""):
                    sys.exit(f"rebuild: {backend}, {size:,} documents: no swap of {size} events:\n{summary[-600:]}")
                results[backend].setdefault(size, []).append(measured)
            print(f"rebuild {label(size)}: run {run + 1}/{args.runs} done", file=sys.stderr)
    log.unlink()
    restart_reset(tmp, args.state_postgres)
    cached = f", --cache-mb {args.cache_mb}" if args.cache_mb is not None else ""
    print(f"\nrebuild: replay --rebuild of a model of N documents from its log of N events{cached}: "
          f"median s over {args.runs} runs, peak RSS MiB")
    print(f"{'':<10}" + "".join(f"{label(n) + ' s':>10}{label(n) + ' MiB':>11}" for n in args.rebuild_sizes))
    for backend, by_size in results.items():
        print(f"{backend:<10}" + "".join(f"{statistics.median(w for w, _ in by_size[n]):>10.2f}"
                                         f"{max(m for _, m in by_size[n]) / 1024:>11.1f}" for n in args.rebuild_sizes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="distinct events (10%% are redelivered on top)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ids", type=int, default=0, help="also measure the memory of this many processed ids")
    ap.add_argument("--no-python", action="store_true", help="skip timing the (slow) Python reference")
    ap.add_argument("--baseline", type=pathlib.Path, help="also time this projector binary, in memory and with --state")
    ap.add_argument("--subscriptions", type=int, default=0, help="also time this many subscribe messages of 10 new types each")
    ap.add_argument("--state-postgres", metavar="URL", help="also time projector on a PostgreSQL state in this database, and its pgbench ceiling")
    ap.add_argument("--projector", metavar="BIN", type=pathlib.Path,
                    help="time this projector binary instead of building target/release/projector")
    ap.add_argument("--hot", action="store_true",
                    help="also time the hot-document stream (150k and 300k events, ~60%% of orders to one customer) "
                         "in memory, on SQLite and on --state-postgres")
    ap.add_argument("--hot-events", metavar="N,N,..", type=sizes, default=HOT_EVENTS,
                    help="the streams' sizes of --hot, in events; the ratio is the last's time to the first's "
                         "(default: 150000,300000)")
    ap.add_argument("--restart", action="store_true",
                    help="also time a run of 1,000 events on a state of each of --restart-sizes documents")
    ap.add_argument("--restart-sizes", metavar="N,N,..", type=sizes, default=RESTART_SIZES,
                    help="the states' sizes of --restart, in documents (default: 100000,1000000,3000000)")
    ap.add_argument("--rebuild", action="store_true",
                    help="also time replay --rebuild of a model of each of --rebuild-sizes documents")
    ap.add_argument("--rebuild-sizes", metavar="N,N,..", type=sizes, default=REBUILD_SIZES,
                    help="the states' sizes of --rebuild, in documents (default: 100000,1000000)")
    ap.add_argument("--cache-mb", metavar="N", type=int,
                    help="pass --cache-mb N to projector's state runs in the --hot, --restart and --rebuild tables")
    args = ap.parse_args()
    if args.projector:
        args.projector = args.projector.resolve()

    with tempfile.TemporaryDirectory(prefix="projector-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        bins = build(tmp, args.projector)
        events = tmp / "events.ndjson"
        with open(events, "w") as out:
            sh([sys.executable, GEN_EVENTS, "--events", str(args.events)], stdout=out)
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
        if args.hot:
            hot_table(bins["projector"], tmp, args)
        if args.restart:
            restart_table(bins["projector"], tmp, args)
        if args.rebuild:
            rebuild_table(bins["projector"], tmp, args)


if __name__ == "__main__":
    main()
