#!/usr/bin/env python3
"""What the NATS + PostgreSQL cluster mode costs and how fresh it keeps the
read models (issue 26), in one run.

Catch-up (skipped with --skip-catchup). The users-orders stream
(tests/shared/gen_events.py, --events distinct events, 10% redelivered) is
published to a private JetStream (nats-server with its HTTP monitoring
port). Then:

* for each instance count in --instances (default 1,2,4): that many
  `projector run --source ... --state postgres://...` on a fresh database,
  timed until `status` (asked every 0.1 s, about 20 ms each) reports lag
  0. Reports events/s (stream messages / catch-up time), the CPU time
  PostgreSQL's processes, the instances and nats-server spent (sampled
  every 0.5 s), the p99 batch commit latency from the instances' metrics
  (a histogram bucket bound), and the messages the broker
  delivered: the delta of `out_msgs` in nats-server's /varz over the run
  (which includes the few replies to `status`), per stream message, and
  that per instance (/ instances; the target is <= 1.3). With one consumer
  per unit (4 parts of user_listing plus orders+user_order_stats on
  bench/users-orders.toml) every unit takes the whole stream: about 5 per
  event whatever the instance count, so 5 / instances per instance.
* the same events file through one stdin projector on SQLite
  (`run --state FILE`) and on PostgreSQL (`run --state postgres://.../fresh
  db`), output to /dev/null: lines/s (the file's lines: the events, their
  redeliveries and a subscribe line); each cluster run's events/s is also
  given as a ratio to the PostgreSQL stdin writer's lines/s.

Freshness (skipped with --skip-freshness). A second stream takes a prelude
of --fresh-prelude events; ONE instance follows it on a fresh database and
catches up. Then a plain NATS client (raw socket, text protocol, no
JetStream acknowledgement) publishes new UserCreated events (ids f-N,
documents fu-N, N zero-padded) to STREAM.events at each rate of --rates
(default 200/s for 5 s, 2,000/s for 3 s, 10,000/s for 2 s), noting each
one's publication time; a separate process, on its own PostgreSQL
connection (the wire protocol, trust auth), polls the view
projector."user_listing" every --poll-ms (default 2 ms) for the documents
published and not seen yet (one range query over the keys from the oldest
not seen to the last published), noting when each becomes visible (when
the poll's answer came). Reports p50/p99/max of (visible - published) in
ms and the rate actually achieved (a rate the publisher cannot keep is
reported as achieved). The poll's period and the time one poll takes
(mean and max, reported) bound the precision: latencies are late by up to
that much.

    python3 bench/cluster.py [--events 1000000] [--instances 1,2,4]
        [--bin target/release/projector] [--skip-catchup] [--skip-freshness]
        [--rates 200:5,2000:3,10000:2] [--poll-ms 2] [--fresh-prelude 20000]
"""

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/projector")
CONFIG = os.path.join(ROOT, "bench/users-orders.toml")
PG = "postgres://postgres@127.0.0.1:5432"
SCHEMA = "projector"  # the main schema, `run`'s default --schema
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql, db="postgres"):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAtc", sql],
                   check=True, capture_output=True)


def fresh_db(db):
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    psql(f"CREATE DATABASE {db}")
    return f"{PG}/{db}"


def drop_db(db):
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


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


def out_msgs(monitor):
    """Messages nats-server has delivered to its clients so far."""
    varz = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{monitor}/varz").read())
    return varz["out_msgs"]


def publish_file(source, path):
    """`projector publish` of an events file; the last sequence stored."""
    started = time.monotonic()
    with open(path) as f:
        out = subprocess.run([BIN, "publish", "-c", CONFIG, "--to", source], stdin=f,
                             capture_output=True, text=True, check=True)
    print(f"published in {time.monotonic() - started:.1f} s: {out.stderr.strip().splitlines()[-1]}",
          flush=True)
    return int(re.search(r"sequences 1\.\.(\d+)", out.stderr).group(1))


def gen_events(path, n, seed):
    with open(path, "w") as f:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/shared/gen_events.py"),
                        "--events", str(n), "--seed", str(seed)], stdout=f, check=True)


def stdin_run(events, state, lines):
    """Lines/s of one `run --state STATE` reading the events file on stdin."""
    started = time.monotonic()
    with open(events) as f:
        subprocess.run([BIN, "run", "-c", CONFIG, "--state", state], stdin=f,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return lines / (time.monotonic() - started)


def start_instances(n, source, state, metrics=True):
    ports = [free_port() for _ in range(n)]
    runs = [subprocess.Popen([BIN, "run", "-c", CONFIG, "--source", source, "--state", state]
                             + (["--metrics", f"127.0.0.1:{p}"] if metrics else []),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for p in ports]
    return runs, ports


def stop_instances(runs):
    for r in runs:
        if r.poll() is None:
            r.send_signal(signal.SIGTERM)
    for r in runs:
        try:
            r.wait(timeout=30)
        except subprocess.TimeoutExpired:
            r.kill()
            r.wait()


# --- PostgreSQL: a minimal client of the wire protocol (simple queries,
# trust authentication), so that the freshness poll pays no psql process
# and needs no Python package.

class Pg:
    def __init__(self, db, host="127.0.0.1", port=5432, user="postgres"):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        params = f"user\0{user}\0database\0{db}\0\0".encode()
        body = struct.pack("!i", 196608) + params
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        while True:
            kind, payload = self._message()
            if kind == b"R" and struct.unpack("!i", payload[:4])[0] != 0:
                raise RuntimeError("PostgreSQL asks for a password: trust authentication expected")
            if kind == b"E":
                raise RuntimeError(f"PostgreSQL: {self._error(payload)}")
            if kind == b"Z":
                return

    @staticmethod
    def _error(payload):
        fields = dict((f[:1], f[1:]) for f in bytes(payload).split(b"\0") if f)
        return fields.get(b"M", b"?").decode(errors="replace")

    def _message(self):
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack("!i", self.buf[1:5])[0]:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("PostgreSQL closed the connection")
            self.buf += chunk
        n = struct.unpack("!i", self.buf[1:5])[0]
        kind, payload = bytes(self.buf[:1]), bytes(self.buf[5:1 + n])
        del self.buf[:1 + n]
        return kind, payload

    def query(self, sql):
        """The rows of `sql` (text values), its first column only."""
        q = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", len(q) + 4) + q)
        rows, error = [], None
        while True:
            kind, p = self._message()
            if kind == b"D":
                size = struct.unpack("!i", p[2:6])[0]
                rows.append(None if size < 0 else p[6:6 + size].decode())
            elif kind == b"E":
                error = self._error(p)
            elif kind == b"Z":
                break
        if error:
            raise RuntimeError(f"PostgreSQL: {error}")
        return rows

    def close(self):
        self.sock.close()


def doc_key(n):
    """The key of the freshness document n: zero-padded, so that the
    documents published and not seen yet are a range of keys."""
    return f"fu-{n:09d}"


def poll(db, first, published, stop, period, out):
    """In a process of its own: every `period` s, looks in the view for the
    documents fu-N (N from `first`, below first + published) not seen yet;
    sends back {N: time first seen} and the poll durations. `stop` set: ends
    once every published document is seen (the caller gives up after a
    while by setting it twice: `published` to -1)."""
    pg = Pg(db)
    seen, durations, lo = {}, [], first
    while True:
        began = time.monotonic()
        count = published.value
        if count < 0:
            break
        if lo < first + count:
            rows = pg.query(f"SELECT key FROM {SCHEMA}.user_listing "
                            f"WHERE key >= '{doc_key(lo)}' AND key < '{doc_key(first + count)}'")
            now = time.monotonic()
            durations.append(now - began)
            for key in rows:
                seen.setdefault(int(key[3:]), now)
            while lo in seen:
                lo += 1
        elif stop.is_set():
            break
        pause = began + period - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    pg.close()
    out.put((seen, durations))


class Nats:
    """A plain NATS client over a raw socket: the text protocol, publishing
    only (no JetStream acknowledgement), answering the server's PINGs."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        info = self.sock.recv(65536)
        if not info.startswith(b"INFO"):
            raise RuntimeError(f"nats-server said {info[:80]!r}")
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
        self.incoming = b""
        self.sock.settimeout(5)
        while b"PONG\r\n" not in self.incoming:
            self.incoming += self.sock.recv(65536)
            self.check()
        self.incoming = b""
        self.sock.setblocking(False)

    def check(self):
        if b"-ERR" in self.incoming:
            raise RuntimeError(f"nats-server: {self.incoming.decode(errors='replace').strip()}")

    def serve(self):
        """Answers what the server said since (PING: PONG)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise RuntimeError("nats-server closed the connection")
                self.incoming += chunk
        except BlockingIOError:
            pass
        self.check()
        while b"\r\n" in self.incoming:
            line, self.incoming = self.incoming.split(b"\r\n", 1)
            if line == b"PING":
                self.send(b"PONG\r\n")

    def send(self, data):
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                time.sleep(0.0002)

    def flush(self):
        """Waits for the server to have read everything sent (PING, PONG)."""
        self.send(b"PING\r\n")
        deadline = time.monotonic() + 10
        while b"PONG\r\n" not in self.incoming:
            if time.monotonic() > deadline:
                raise RuntimeError("nats-server: no PONG")
            try:
                self.incoming += self.sock.recv(65536)
            except BlockingIOError:
                time.sleep(0.0005)
            self.check()
        self.incoming = self.incoming.replace(b"PONG\r\n", b"", 1)

    def close(self):
        self.sock.close()


def fresh_event(n):
    event = {"type": "UserCreated", "id": f"f-{n:09d}",
             "payload": {"id": doc_key(n), "name": "x", "email": "x"}}
    return json.dumps({"type": "event", "event": event}, separators=(",", ":")).encode()


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def freshness_phase(nats, subject, db, first, rate, seconds, period):
    """Publishes rate x seconds events from fu-`first` at `rate`/s; returns
    the achieved rate, the latencies (ms) of those seen, how many were not
    seen within 10 s of the end, and the mean poll duration (ms)."""
    total = max(1, int(rate * seconds))
    published = multiprocessing.Value("q", 0, lock=False)
    stop = multiprocessing.Event()
    out = multiprocessing.Queue()
    poller = multiprocessing.Process(target=poll, args=(db, first, published, stop, period, out))
    poller.start()
    time.sleep(0.3)  # the poller's connection is up
    times = []
    head = f"PUB {subject} ".encode()
    started = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        if due > sent:
            chunk = []
            for n in range(first + sent, first + due):
                payload = fresh_event(n)
                chunk.append(head + str(len(payload)).encode() + b"\r\n" + payload + b"\r\n")
            at = time.monotonic()
            nats.send(b"".join(chunk))
            times.extend([at] * (due - sent))
            sent = due
            published.value = sent
        nats.serve()
        pause = started + sent / rate - time.monotonic()
        if pause > 0:
            time.sleep(min(pause, 0.01))
    took = times[-1] - started + 1 / rate
    nats.flush()
    stop.set()
    try:
        seen, durations = out.get(timeout=10)
    except Exception:
        published.value = -1
        seen, durations = out.get(timeout=10)
    poller.join()
    latencies = [(seen[first + i] - t) * 1000 for i, t in enumerate(times) if first + i in seen]
    mean_poll = sum(durations) / len(durations) * 1000 if durations else 0.0
    return total / took, latencies, total - len(latencies), (mean_poll, max(durations, default=0) * 1000)


def freshness(args, work, port, rows):
    prelude = os.path.join(work, "prelude.ndjson")
    gen_events(prelude, args.fresh_prelude, 7)
    source = f"nats://127.0.0.1:{port}/FRESH"
    publish_file(source, prelude)
    db = "projector_cluster_bench_fresh"
    state = fresh_db(db)
    runs, _ = start_instances(1, source, state, metrics=False)
    try:
        started = time.monotonic()
        while lag(source, state) != 0:
            if runs[0].poll() is not None:
                raise RuntimeError(f"the instance ended with status {runs[0].returncode}")
            time.sleep(0.5)
        # The view exists once every unit's state does.
        pg = Pg(db)
        while True:
            try:
                pg.query(f"SELECT key FROM {SCHEMA}.user_listing LIMIT 1")
                break
            except RuntimeError:
                if time.monotonic() - started > 60:
                    raise
                time.sleep(0.2)
        pg.close()
        print(f"freshness: one instance caught up on {args.fresh_prelude} prelude events "
              f"in {time.monotonic() - started:.1f} s", flush=True)
        nats = Nats(port)
        first = 0
        for spec in args.rates.split(","):
            rate, seconds = (float(x) for x in spec.split(":"))
            achieved, latencies, missing, mean_poll = freshness_phase(
                nats, "FRESH.events", db, first, rate, seconds, args.poll_ms / 1000)
            first += max(1, int(rate * seconds))
            if latencies:
                p50, p99_, worst = (percentile(latencies, 0.5), percentile(latencies, 0.99),
                                    max(latencies))
            else:
                p50 = p99_ = worst = float("nan")
            print(f"freshness at {rate:,.0f}/s for {seconds:g} s: achieved {achieved:,.0f}/s, "
                  f"{len(latencies)} seen ({missing} not within 10 s); visible - published: "
                  f"p50 {p50:.1f} ms, p99 {p99_:.1f} ms, max {worst:.1f} ms "
                  f"(poll every {args.poll_ms:g} ms, one poll took {mean_poll[0]:.1f} ms on average, "
                  f"{mean_poll[1]:.1f} ms at most)",
                  flush=True)
            rows.append((rate, achieved, len(latencies), missing, p50, p99_, worst, mean_poll))
            time.sleep(0.5)
        nats.close()
    finally:
        stop_instances(runs)
        drop_db(db)


def catchup(args, work, port, monitor, results):
    events = os.path.join(work, "events.ndjson")
    gen_events(events, args.events, 42)
    with open(events) as f:
        lines = sum(1 for _ in f)
    source = f"nats://127.0.0.1:{port}/BENCH"
    last = publish_file(source, events)

    db = "projector_cluster_bench_stdin"
    state = fresh_db(db)
    results["postgres"] = stdin_run(events, state, lines)
    drop_db(db)
    print(f"stdin projector on PostgreSQL: {lines} lines at {results['postgres']:,.0f} lines/s",
          flush=True)
    results["sqlite"] = stdin_run(events, os.path.join(work, "state.db"), lines)
    print(f"stdin projector on SQLite: {lines} lines at {results['sqlite']:,.0f} lines/s", flush=True)

    results["cluster"] = []
    for n in [int(x) for x in args.instances.split(",")]:
        db = f"projector_cluster_bench_{n}"
        state = fresh_db(db)
        cpu = Cpu()
        before = out_msgs(monitor)
        started = time.monotonic()
        runs, ports = start_instances(n, source, state)
        polls = 0
        while lag(source, state) != 0:
            polls += 1
            if polls % 5 == 0:
                cpu.sample()
            time.sleep(0.1)
        took = time.monotonic() - started
        cpu.sample()
        delivered = out_msgs(monitor) - before
        commit, commits = p99(ports)
        stop_instances(runs)
        drop_db(db)
        rate = last / took
        per = delivered / (last * n)
        ratio = rate / results["postgres"]
        print(f"{n} instance(s): caught up {last} messages in {took:.1f} s ({rate:,.0f} events/s, "
              f"{ratio:.2f}x the stdin PostgreSQL writer); CPU: PostgreSQL "
              f"{cpu.used('postgres'):.1f} s, projector {cpu.used('projector'):.1f} s, "
              f"nats-server {cpu.used('nats-server'):.1f} s; broker delivered {delivered} messages "
              f"= {delivered / last:.2f} per event, {per:.2f} per event per instance; "
              f"{commits} commits, p99 <= {commit:g} ms",
              flush=True)
        results["cluster"].append((n, took, rate, ratio, cpu.used("postgres"), cpu.used("projector"),
                                   cpu.used("nats-server"), delivered / last, per, commit))
    results["messages"] = last


def table(results, fresh, args):
    print("\n== summary ==")
    if results:
        print(f"stdin writers ({args.events} events + redeliveries):  PostgreSQL "
              f"{results['postgres']:,.0f} lines/s   SQLite {results['sqlite']:,.0f} lines/s")
        print(f"{'inst':>4} {'events/s':>10} {'vs pg stdin':>11} {'cpu pg s':>9} {'cpu proj s':>10} "
              f"{'cpu nats s':>10} {'msgs/event':>10} {'msgs/event/inst':>15} {'p99 commit':>10}")
        for n, took, rate, ratio, pg, proj, nats, total, per, commit in results["cluster"]:
            print(f"{n:>4} {rate:>10,.0f} {ratio:>10.2f}x {pg:>9.1f} {proj:>10.1f} {nats:>10.1f} "
                  f"{total:>10.2f} {per:>15.2f} {'<= %g ms' % commit:>10}")
        print("(vs pg stdin: events/s over the stdin PostgreSQL writer's lines/s; msgs/event: "
              "nats-server out_msgs delta / stream messages;\n msgs/event/inst: that / instances, "
              "target <= 1.3 -- it falls as 1/instances when every instance's units together\n "
              "still take the whole stream once per unit: read it beside msgs/event)")
    if fresh:
        print(f"freshness, one instance, visible - published in ms "
              f"(poll every {args.poll_ms:g} ms: each figure late by up to a poll period "
              f"plus one poll's duration):")
        print(f"{'rate/s':>8} {'achieved/s':>10} {'seen':>6} {'unseen':>6} {'p50':>8} {'p99':>8} "
              f"{'max':>8} {'poll ms mean/max':>16}")
        for rate, achieved, seen, missing, p50, p99_, worst, mean_poll in fresh:
            print(f"{rate:>8,.0f} {achieved:>10,.0f} {seen:>6} {missing:>6} {p50:>8.1f} {p99_:>8.1f} "
                  f"{worst:>8.1f} {'%.1f/%.1f' % mean_poll:>16}")


def main():
    global BIN
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=BIN, help="the projector binary (default target/release/projector)")
    ap.add_argument("--events", type=int, default=1_000_000, help="distinct events for the catch-up")
    ap.add_argument("--instances", default="1,2,4", help="instance counts to catch up with")
    ap.add_argument("--skip-catchup", action="store_true", help="no stdin writers, no catch-up")
    ap.add_argument("--skip-freshness", action="store_true", help="no freshness measurement")
    ap.add_argument("--rates", default="200:5,2000:3,10000:2",
                    help="freshness phases, RATE:SECONDS,... (default 200:5,2000:3,10000:2)")
    ap.add_argument("--poll-ms", type=float, default=2.0, help="freshness poll period (default 2)")
    ap.add_argument("--fresh-prelude", type=int, default=20_000,
                    help="events in the freshness stream before the instance starts (default 20000)")
    args = ap.parse_args()
    BIN = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="projector-cluster-bench-")
    nats = None
    results, fresh = {}, []
    try:
        port, monitor = free_port(), free_port()
        nats = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor),
                                 "-js", "-sd", os.path.join(work, "js")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                out_msgs(monitor)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        if not args.skip_catchup:
            catchup(args, work, port, monitor, results)
        if not args.skip_freshness:
            freshness(args, work, port, fresh)
        table(results, fresh, args)
    finally:
        if nats:
            nats.kill()
            nats.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
