#!/usr/bin/env python3
"""The fleet history's cost, for BENCHMARKS.md.

1. The share path: `scripts/bench.py`'s throughput scenario (1,000 miners
   submitting 50,000/s against the stand-in node's 3,500-tx template), run
   65 s so that every run crosses a minute's end and writes a batch, with
   and without `[history] database_url` (a PostgreSQL cluster of its own),
   interleaved, same build, same hour: server CPU per 1,000 answers.
2. The write side: `cargo bench --bench fleet_write` (10,000 and 100,000
   workers: collect, queue bytes, write time, rows, table and WAL bytes).

   With `--before PATH` (an `ndas` built from the commit before the
   fleet history), the same scenario on that binary too, interleaved: the
   share path's cost before and after the change.

Usage: scripts/bench_fleet.py [--repeats N] [--before PATH] [--skip-load] [--skip-write]
"""

import argparse
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

SHOWN = ["answers_per_second", "latency_ms.p50", "latency_ms.p99", "server_cpu_ms_per_1000_answers"]


def pg_bin():
    versions = sorted(int(v) for v in os.listdir("/usr/lib/postgresql") if v.isdigit())
    return f"/usr/lib/postgresql/{versions[-1]}/bin"


class Postgres:
    """A cluster of its own on a free port, trust on 127.0.0.1, stopped by
    PID; as the postgres user when run as root (PostgreSQL refuses root)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ndas-bench-pg-")
        self.port = bench.free_port()
        data = os.path.join(self.dir, "data")
        os.mkdir(data)
        user = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chmod(self.dir, 0o755)
            os.chown(data, entry.pw_uid, entry.pw_gid)
            user = entry.pw_uid, entry.pw_gid

        def as_owner():
            if user:
                os.setgid(user[1])
                os.setuid(user[0])

        subprocess.run([f"{pg_bin()}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, preexec_fn=as_owner, cwd=self.dir)
        log = open(os.path.join(self.dir, "log"), "w")
        self.process = subprocess.Popen(
            [f"{pg_bin()}/postgres", "-D", data, "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", "unix_socket_directories="], stdout=log, stderr=log, preexec_fn=as_owner, cwd=self.dir)
        deadline = time.time() + 30
        while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                             capture_output=True).returncode != 0:
            if time.time() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {self.dir}/log")
            time.sleep(0.2)

    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def load(pg, repeats, before):
    name, bits, tip, difficulty, load_args, *_ = bench.SCENARIOS[0]
    load_args = [a if a != "15" else "65" for a in load_args]
    after = bench.NDAS
    variants = [("database off", after, False), ("database on", after, True)]
    if before:
        variants.insert(0, ("before, no database", before, False))
    runs = {label: [] for label, _, _ in variants}
    for _ in range(repeats):
        for label, binary, on in variants:
            bench.NDAS = binary
            if on:
                os.environ["NDAS_HISTORY__DATABASE_URL"] = pg.url()
            else:
                os.environ.pop("NDAS_HISTORY__DATABASE_URL", None)
            report = bench.load_scenario(bits, tip, difficulty, load_args)
            figures = {k: bench.pick(report, k) for k in SHOWN}
            runs[label].append(figures)
            print(f"{name}, {label}: {json.dumps(figures)}", file=sys.stderr)
    bench.NDAS = after
    os.environ.pop("NDAS_HISTORY__DATABASE_URL", None)
    rows = pg_rows(pg)
    labels = [label for label, _, _ in variants]
    print("\n| figure | " + " | ".join(labels) + " |\n| --- |" + " --- |" * len(labels))
    for key in SHOWN:
        cells = [", ".join(bench.fmt(r[key]) for r in runs[label]) for label in labels]
        print(f"| {key} | " + " | ".join(cells) + " |")
    print(f"\nworker minutes written by the 'on' runs (rows, shares): {rows}")


def pg_rows(pg):
    out = subprocess.run(["psql", pg.url(), "-At", "-c", "SELECT count(*), sum(accepted) FROM worker_minutes"],
                         capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before", help="an ndas binary from before the change, run interleaved")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-write", action="store_true")
    args = parser.parse_args()
    if not args.skip_load:
        bench.run(["cargo", "build", "--release", "--bin", "ndas"])
        pg = Postgres()
        try:
            load(pg, args.repeats, args.before)
        finally:
            pg.stop()
    if not args.skip_write:
        out = subprocess.run(["cargo", "bench", "--bench", "fleet_write"], cwd=bench.ROOT, check=True,
                             capture_output=True, text=True)
        print("\n" + "\n".join(l for l in out.stdout.splitlines() if l.startswith("|")))


if __name__ == "__main__":
    main()
