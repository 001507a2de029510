#!/usr/bin/env python3
"""NDAS mining for an upstream pool (issue 24), measured: its node (the
stand-in) is stopped and `mining.when_no_node = "upstream"` moves the miners
to para's pool (`scripts/install-para.sh`) on Bitcoin Core's private OP_TRUE
signet (`scripts/install-core.sh`).

- failover: N idle miners; the stand-in is killed; from that moment to the
  first and the last miner's first job on the pool's block (the bound,
  `mining.failover_after_seconds`, is 1 s here), and to every connection
  the miners need to the pool (one per 50) being ready.
- throughput: 1,000 miners submitting 50,000/s on the pool's jobs: answers
  per second, server CPU per 1,000 answers, shares sent to the pool.

Run `scripts/bench.py --only "throughput: 1,000 miners submitting 50,000/s"`
in the same hour for the solo figures beside them.

With --sv2, the pool is the Stratum Reference Implementation's pool_sv2
(`scripts/install-pool-sv2.sh`) on bitcoin-node over IPC, spoken to as
`stratum2+tcp://`.

Usage: scripts/bench_upstream.py [--miners N ...] [--throughput] [--sv2]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

POOL_SV2 = os.environ.get("POOL_SV2", os.path.join(
    os.environ.get("POOL_SV2_DIR", os.path.expanduser("~/.cache/ndas/pool_sv2-0.7.0")), "bin", "pool_sv2"))
# The Stratum Reference Implementation's example authority key pair.
SV2_PUBLIC = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
SV2_SECRET = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n"
PARA = os.environ.get("PARA", os.path.join(
    os.environ.get("PARA_DIR", os.path.expanduser("~/.cache/ndas/para-0.6.0")), "bin", "para"))


# para's extranonce2 is 8 bytes at most: 4 for NDAS's slice per miner, 4
# for the miner's own.
STRATUM = "extranonce2_size = 4"


class Upstream:
    """A pool process on a Bitcoin Core node of its own, stopped together."""

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.core.stop()


class Pool(Upstream):
    """Bitcoin Core on the OP_TRUE signet with ZMQ, and para's pool on it."""

    name = "para"

    def __init__(self, start_diff):
        if not os.path.exists(PARA):
            raise RuntimeError(f"para missing at {PARA}: run scripts/install-para.sh")
        zmq = f"tcp://127.0.0.1:{bench.free_port()}"
        self.core = bench.CoreNode("signet", extra=[f"-zmqpubhashblock={zmq}"])
        try:
            self._start_para(zmq, start_diff)
        except BaseException:
            # Never leave the node behind when para does not come up.
            self.core.stop()
            raise

    def _start_para(self, zmq, start_diff):
        self.dir = tempfile.mkdtemp(prefix="ndas-bench-para-")
        self.port, http = bench.free_port(), bench.free_port()
        log = open(os.path.join(self.dir, "para.log"), "w")
        self.process = subprocess.Popen(
            [PARA, "pool", "--chain", "signet", "--address", "127.0.0.1", "--port", str(self.port),
             "--http-port", str(http), "--bitcoin-rpc-port", str(self.core.rpc_port),
             "--bitcoin-rpc-username", "bench", "--bitcoin-rpc-password", "bench",
             "--zmq-block-notifications", zmq, "--data-dir", self.dir, "--start-diff", str(start_diff),
             "--disable-bouncer"],
            stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "info"})
        deadline = time.time() + 30
        import socket
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    if self.process.poll() is None:
                        self.process.kill()
                    raise RuntimeError(f"para did not listen; see {self.dir}/para.log")
                time.sleep(0.1)

    def mining(self):
        """NDAS's [mining] keys and the [[upstream]] table for this pool."""
        return (f'when_no_node = "upstream"\nfailover_after_seconds = 1\n'
                f'[[upstream]]\nname = "para"\nurl = "stratum+tcp://127.0.0.1:{self.port}"\n'
                f'user = "{bench.SIGNET_PAYOUT}.ndas"\n')



class Sv2Pool(Upstream):
    """Bitcoin Core's bitcoin-node on the OP_TRUE signet serving IPC, and
    the Stratum Reference Implementation's pool_sv2 (0.7.0,
    `scripts/install-pool-sv2.sh`) on it: the same figures for an SV2
    upstream."""

    name = "sri"

    def __init__(self, start_diff=None):
        if not os.path.exists(POOL_SV2):
            raise RuntimeError(f"pool_sv2 missing at {POOL_SV2}: run scripts/install-pool-sv2.sh")
        # Genesis (2020) within the tip age: out of initial block download
        # at once, so the node hands out templates.
        self.core = bench.CoreNode("signet", extra=["-ipcbind=unix", "-maxtipage=2000000000"],
                                   binary="bitcoin-node")
        try:
            self._start(start_diff)
        except BaseException:
            self.core.stop()
            raise

    def _start(self, _start_diff):
        self.dir = tempfile.mkdtemp(prefix="ndas-bench-sv2-")
        self.port = bench.free_port()
        config = os.path.join(self.dir, "pool.toml")
        with open(config, "w") as f:
            f.write(f'authority_public_key = "{SV2_PUBLIC}"\nauthority_secret_key = "{SV2_SECRET}"\n'
                    f'cert_validity_sec = 3600\nlisten_address = "127.0.0.1:{self.port}"\n'
                    f'coinbase_reward_script = "raw(51)"\nserver_id = 1\npool_signature = "NDAS bench"\n'
                    f'shares_per_minute = 6.0\nshare_batch_size = 1\n'
                    f'[template_provider_type.BitcoinCoreIpc]\nversion = 31\nnetwork = "signet"\n'
                    f'data_dir = "{self.core.dir}"\nfee_threshold = 100\nmin_interval = 5\n')
        log_path = os.path.join(self.dir, "pool.log")
        log = open(log_path, "w")
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("POOL__")}
        self.process = subprocess.Popen([POOL_SV2, "--config", config], stdout=log, stderr=log,
                                        env={**env, "RUST_LOG": "info"})
        deadline = time.time() + 60
        while "ready to accept connections" not in open(log_path).read():
            if self.process.poll() is not None or time.time() > deadline:
                if self.process.poll() is None:
                    self.process.kill()
                raise RuntimeError(f"pool_sv2 never became ready; see {log_path}")
            time.sleep(0.1)

    def mining(self):
        return (f'when_no_node = "upstream"\nfailover_after_seconds = 1\n'
                f'[[upstream]]\nname = "{self.name}"\n'
                f'url = "stratum2+tcp://127.0.0.1:{self.port}/{SV2_PUBLIC}"\n'
                f'user = "ndas-bench"\n')



def wait_for(stack, series, want, seconds=60):
    deadline = time.time() + seconds
    while True:
        value = stack.metrics().get(series)
        if value == want:
            return
        if time.time() > deadline:
            raise RuntimeError(f"{series} is {value}, not {want}; see {stack.dir}")
        time.sleep(0.1)


def stop_node(stack):
    """Kills the stand-in node: NDAS's only node is gone."""
    stack.standin.send_signal(signal.SIGKILL)
    stack.standin.wait()
    at = time.time()
    stack.standin = None
    return at


def failover(miners, kind):
    pool = kind(start_diff=0.001)
    stack = bench.Stack("17034219", 3600, "2.5e-10", mining=pool.mining(), stratum=STRATUM)
    try:
        wait_for(stack, f'ndas_upstream_up{{upstream="{pool.name}"}}', 1.0)
        seconds = 40
        load = subprocess.Popen(
            [bench.NDAS, "load", "--target", f"127.0.0.1:{stack.stratum_port}", "--json", "--miners", str(miners),
             "--rate", "0", "--seconds", str(seconds), "--sources", "2", "--connect-rate", "5000"],
            cwd=bench.ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while stack.metrics().get("ndas_connections", 0) < miners:
            if time.time() > deadline or load.poll() is not None:
                raise RuntimeError(f"{miners} miners never connected")
            time.sleep(0.2)
        time.sleep(2)
        failed_at = time.time() * 1000
        stop_node(stack)
        # Every connection the miners need to para (50 miners each) ready.
        lanes = -(-miners // 50)
        lanes_ms = None
        while time.time() * 1000 - failed_at < 30000:
            if stack.metrics().get(f'ndas_upstream_connections{{upstream="{pool.name}"}}', 0) >= lanes:
                lanes_ms = time.time() * 1000 - failed_at
                break
            time.sleep(0.1)
        out, err = load.communicate(timeout=seconds + 120)
        if load.returncode != 0:
            raise RuntimeError(err)
        report = json.loads(out)
        tips = [t for t in report["tips"] if t["first_unix_ms"] > failed_at]
        if not tips:
            raise RuntimeError(f"no miner got the pool's job: {report['tips']}")
        tip = tips[0]
        return {
            "miners": miners,
            "connections_held": report["connections_held"],
            "miners_moved": tip["miners"],
            "first_job_ms": tip["first_unix_ms"] - failed_at,
            "last_job_ms": tip["last_unix_ms"] - failed_at,
            "spread_ms": tip["last_unix_ms"] - tip["first_unix_ms"],
            "connections": lanes,
            "connections_ready_ms": lanes_ms,
        }
    finally:
        stack.stop()
        pool.stop()


def throughput(kind, miners=1000, rate=50000, seconds=15):
    pool = kind(start_diff=0.000001)
    stack = bench.Stack("17034219", 3600, "2.5e-10", mining=pool.mining(), stratum=STRATUM)
    try:
        wait_for(stack, f'ndas_upstream_up{{upstream="{pool.name}"}}', 1.0)
        stop_node(stack)
        wait_for(stack, f'ndas_upstream_mining{{upstream="{pool.name}"}}', 1.0)
        time.sleep(1)
        before = stack.metrics()
        cpu_before = bench.cpu_seconds(stack.ndas.pid)
        out = subprocess.run(
            [bench.NDAS, "load", "--target", f"127.0.0.1:{stack.stratum_port}", "--json", "--miners", str(miners),
             "--rate", str(rate), "--seconds", str(seconds)],
            cwd=bench.ROOT, check=True, text=True, capture_output=True)
        time.sleep(2)
        after = stack.metrics()
        cpu = bench.cpu_seconds(stack.ndas.pid) - cpu_before
        report = json.loads(out.stdout)
        served = bench.answers(after) - bench.answers(before)

        def sent(verdict):
            key = f'ndas_upstream_shares_total{{upstream="{pool.name}",verdict="{verdict}"}}'
            return after.get(key, 0) - before.get(key, 0)

        return {
            "answers_per_second": report["answers_per_second"],
            "latency_ms.p50": report["latency_ms"]["p50"],
            "latency_ms.p99": report["latency_ms"]["p99"],
            "rejected": report["rejected"],
            "server_cpu_ms_per_1000_answers": cpu / served * 1e6 if served else None,
            "pool_accepted": sent("accepted"),
            "pool_rejected": sent("rejected"),
            "not_sent": sent("not_sent"),
            "dropped": sent("dropped"),
            "pool_difficulty": after.get(f'ndas_upstream_difficulty{{upstream="{pool.name}"}}'),
        }
    finally:
        stack.stop()
        pool.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--miners", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--sv2", action="store_true", help="the SV2 pool (pool_sv2) instead of para")
    args = parser.parse_args()
    kind = Sv2Pool if args.sv2 else Pool
    for miners in args.miners:
        print(json.dumps({"failover": failover(miners, kind)}), flush=True)
    if args.throughput:
        print(json.dumps({"throughput": throughput(kind)}), flush=True)


if __name__ == "__main__":
    main()
