#!/usr/bin/env python3
"""Runs the standard benchmark set and writes BENCHMARKS.md.

Criterion benches (medians from target/criterion), then load scenarios: NDAS
(release build) against the stand-in node serving Bitcoin Core's 3,500-tx
template, or against Bitcoin Core itself (scripts/install-core.sh) on a
private OP_TRUE signet, driven by `ndas load` on the same machine; and the
found-block path on Bitcoin Core regtest with 3,000-transaction blocks. Each load scenario runs
REPEATS times; the median of each figure is reported beside every run.

Usage: scripts/bench.py [--repeats N] [--quick]
"""

import argparse
import base64
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NDAS = os.path.join(ROOT, "target", "release", "ndas")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "core-regtest-gbt-height226-3500tx.json")
SHA_COMPRESSION = "sha256_compression"


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, check=True, text=True, capture_output=True, **kw)


def criterion_median(name):
    path = os.path.join(ROOT, "target", "criterion", *name.split("/"), "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


_GIVEN_PORTS = set()


def free_port():
    """A port nothing listens on, never one this run handed out before (the
    kernel may offer a just-closed port again before its first user binds it)."""
    import socket

    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def metrics(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values, families = {}, {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
            if "{" in key and "le=" not in key:
                name = key.split("{", 1)[0]
                families[name] = families.get(name, 0.0) + float(value)
    # A labelled family's total under its bare name (every port's connections).
    for name, total in families.items():
        values.setdefault(name, total)
    return values


def histogram_quantile(values, name, q):
    buckets = sorted(
        (float(re.search(r'le="([^"]+)"', k).group(1)), v)
        for k, v in values.items()
        if k.startswith(name + "_bucket")
    )
    total = values.get(name + "_count", 0)
    if not total:
        return None
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def write_ndas_files(folder, node_port, ports, difficulty, payout, log_format, network="regtest", mining="",
                     sv2_port=None, stratum=""):
    """A UTEK licence and conf for the node on `node_port`, and an NDAS config
    serving stratum and metrics on `ports` (and Stratum V2 on `sv2_port`) at
    a fixed share difficulty."""
    sv2 = f'[sv2]\nlisten = "127.0.0.1:{sv2_port}"' if sv2_port else ""
    licence = str(uuid.uuid4())
    token = base64.b64encode(json.dumps({"license": licence, "version": "26.0"}).encode()).decode()
    with open(os.path.join(folder, "metadata.json"), "w") as f:
        json.dump({"license_uuid": licence, "factory_token": token}, f)
    with open(os.path.join(folder, "utek.conf"), "w") as f:
        f.write(f"rpcuser=bench\nrpcpassword=bench\nrpcport={node_port}\nrpcconnect=127.0.0.1\n")
    with open(os.path.join(folder, "ndas.toml"), "w") as f:
        f.write(f"""network = "{network}"
data_dir = "{folder}/data"
[stratum]
listen = "127.0.0.1:{ports[0]}"
# The generator is one farm behind a few addresses.
max_connections_per_ip = 250000
max_connections = 250000
{stratum}
[metrics]
listen = "127.0.0.1:{ports[1]}"
[difficulty]
start = {difficulty}
min = {difficulty}
max = {difficulty}
[mining]
payout_address = "{payout}"
{mining}
{sv2}
[node]
utek_metadata = "{folder}/metadata.json"
utek_conf = "{folder}/utek.conf"
[log]
format = "{log_format}"
level = "{'info' if log_format == 'json' else 'warn'}"
""")


def wait_ready(metrics_port, where, seconds=30):
    """Waits until NDAS's /readyz answers 200; `where` names its files for the error."""
    deadline = time.time() + seconds
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=2).status == 200:
                return
        except Exception:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"NDAS never became ready; see {where}")
        time.sleep(0.2)


class Stack:
    """NDAS serving a node, on free ports; stopped by PID. The node is the
    stand-in serving Core's 3,500-tx template with `bits` and a new tip every
    `tip_every` seconds, or, for `bits` "signet", Bitcoin Core itself on a
    private OP_TRUE signet (tips move when the load finds a block)."""

    def __init__(self, bits, tip_every, difficulty, mining="", sv2=False, stratum=""):
        self.dir = tempfile.mkdtemp(prefix="ndas-bench-")
        self.stratum_port, self.metrics_port = free_port(), free_port()
        self.sv2_port = free_port() if sv2 else None
        self.standin = self.core = None
        if bits == "signet":
            self.core = CoreNode("signet")
            node_port, network, payout = self.core.rpc_port, "signet", SIGNET_PAYOUT
        else:
            node_port, network, payout = free_port(), "regtest", "mrj9cVJUyWj4f6zhzK21Pom78XS14TaUjW"
            log = open(os.path.join(self.dir, "standin.log"), "w")
            self.standin = subprocess.Popen(
                [NDAS, "stand-in-node", "--listen", f"127.0.0.1:{node_port}", "--template", FIXTURE,
                 "--bits", bits, "--tip-every", str(tip_every)],
                stdout=log, stderr=log)
            time.sleep(1.0)
        write_ndas_files(self.dir, node_port, (self.stratum_port, self.metrics_port), difficulty, payout,
                         log_format="human", network=network, mining=mining, sv2_port=self.sv2_port,
                         stratum=stratum)
        log = open(os.path.join(self.dir, "ndas.log"), "w")
        self.ndas = subprocess.Popen([NDAS, "serve", "--config", os.path.join(self.dir, "ndas.toml")], stdout=log, stderr=log)
        wait_ready(self.metrics_port, self.dir)

    def sv2_url(self):
        """The miners' URL as `ndas sv2-key` prints it (NDAS made the key)."""
        out = run([NDAS, "sv2-key", "--config", os.path.join(self.dir, "ndas.toml")]).stdout
        return next(word for word in out.split() if word.startswith("stratum2+tcp://"))

    def metrics(self):
        return metrics(self.metrics_port)

    def stop(self):
        processes = [p for p in (self.ndas, self.standin) if p]
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.core:
            self.core.stop()


def cpu_seconds(pid):
    """User + system CPU of a process, from /proc (10 ms resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def answers(values):
    return values.get("ndas_shares_total", 0.0)


def load_scenario(bits, tip_every, difficulty, load_args, mining=""):
    """One run: idle figures, load with RSS sampling, figures after."""
    sv2 = "sv2" in load_args
    stack = Stack(bits, tip_every, difficulty, mining, sv2=sv2)
    try:
        target = stack.sv2_port if sv2 else stack.stratum_port
        if sv2:
            load_args = [*load_args, "--authority", stack.sv2_url()]
        time.sleep(1.0)
        idle = stack.metrics()
        cpu_before = cpu_seconds(stack.ndas.pid)
        peak = {"rss": idle["process_resident_memory_bytes"], "connections": 0}
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    now = stack.metrics()
                    if now["ndas_connections"] >= peak["connections"]:
                        peak["connections"] = now["ndas_connections"]
                        peak["rss"] = max(peak["rss"], now["process_resident_memory_bytes"])
                except Exception:
                    pass
                done.wait(0.5)

        sampler = threading.Thread(target=sample)
        sampler.start()
        out = subprocess.run(
            [NDAS, "load", "--target", f"127.0.0.1:{target}", "--json", *load_args],
            cwd=ROOT, check=True, text=True, capture_output=True)
        done.set()
        sampler.join()
        after = stack.metrics()
        cpu = cpu_seconds(stack.ndas.pid) - cpu_before
        report = json.loads(out.stdout)
        served = answers(after) - answers(idle)
        report["server_cpu_ms_per_1000_answers"] = cpu / served * 1e6 if served else None
        # Handshake, set-up, opens and first jobs, per TCP connection.
        report["server_cpu_us_per_connection"] = cpu / report["connections"] * 1e6 if report["connections"] else None
        report["server_idle_rss_mib"] = idle["process_resident_memory_bytes"] / 2**20
        report["server_peak_rss_mib"] = peak["rss"] / 2**20
        report["peak_connections"] = peak["connections"]
        held = peak["connections"] or 1
        report["rss_kib_per_connection"] = (peak["rss"] - idle["process_resident_memory_bytes"]) / 1024 / held
        report["block_submit_delay_p99_bucket_ms"] = (
            (histogram_quantile(after, "ndas_block_submit_delay_seconds", 0.99) or 0) * 1000)
        report["blocks_submitted"] = after["ndas_blocks_submitted_total"]
        for q in (50, 99):
            report[f"block_journal_p{q}_bucket_ms"] = (
                (histogram_quantile(after, "ndas_block_journal_seconds", q / 100) or 0) * 1000)
        return report
    finally:
        stack.stop()


def disk_flush_ms(samples=60):
    """Appending a 400-byte record to an open file and fdatasync, on this disk, quiet."""
    folder = tempfile.mkdtemp(prefix="ndas-bench-disk-", dir=os.path.join(ROOT, "target"))
    fd = os.open(os.path.join(folder, "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    times = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            os.write(fd, os.urandom(400))
            os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
    times.sort()
    return {"median": statistics.median(times), "p90": times[int(samples * 0.9)], "max": times[-1]}


def floor_scenario(load_args, every=2):
    """The same generator against `ndas fanout-floor`: one tight write loop, no per-miner work."""
    port = free_port()
    log = open(os.path.join(tempfile.mkdtemp(prefix="ndas-bench-"), "floor.log"), "w")
    floor = subprocess.Popen([NDAS, "fanout-floor", "--listen", f"127.0.0.1:{port}", "--template", FIXTURE,
                              "--every", str(every)], stdout=log, stderr=log)
    try:
        time.sleep(1.0)
        out = subprocess.run([NDAS, "load", "--target", f"127.0.0.1:{port}", "--json", *load_args],
                             cwd=ROOT, check=True, text=True, capture_output=True)
        return json.loads(out.stdout)
    finally:
        floor.send_signal(signal.SIGINT)
        try:
            floor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            floor.kill()


CORE_DIR = os.environ.get("REGTEST_CORE_DIR", os.path.expanduser("~/.cache/ndas/core-libbitcoinkernel-sys-0.4.1-zmq-ipc"))
# Payouts to the secp256k1 generator's key (public knowledge): bench coins
# are worth nothing, and neither chain needs a wallet for them.
REGTEST_PAYOUT = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
SIGNET_PAYOUT = "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"
# The bench's own spending key, as a regtest WIF (0xef, key, compressed).
BENCH_KEY = bytes([0x42] * 32)


def base58check(payload):
    import hashlib
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number, text = int.from_bytes(data, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        text = alphabet[digit] + text
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + text


class CoreNode:
    """One Bitcoin Core bitcoind (scripts/install-core.sh), stopped by PID:
    regtest, or a private signet whose challenge is OP_TRUE (`51`), where a
    random hash is not a block (about one in five million is)."""

    def __init__(self, chain="regtest", connect=None, extra=(), binary="bitcoind"):
        binary = os.path.join(CORE_DIR, "bin", binary)
        if not os.path.exists(binary):
            raise RuntimeError(f"Bitcoin Core missing at {binary}: run scripts/install-core.sh")
        self.dir = tempfile.mkdtemp(prefix="ndas-bench-node-")
        self.rpc_port, self.p2p_port = free_port(), free_port()
        network = ["-regtest"] if chain == "regtest" else ["-signet", "-signetchallenge=51"]
        args = [binary, *network, "-server=1", "-listen=1", "-bind=127.0.0.1", "-rpcbind=127.0.0.1",
                "-rpcallowip=127.0.0.1", "-printtoconsole=0", "-listenonion=0", "-dnsseed=0", "-fixedseeds=0",
                "-rpcuser=bench", "-rpcpassword=bench", f"-datadir={self.dir}", f"-port={self.p2p_port}",
                f"-rpcport={self.rpc_port}"]
        if connect:
            args.append(f"-connect=127.0.0.1:{connect}")
        args.extend(extra)
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                self.rpc("getblockcount")
                break
            except Exception:
                if self.process.poll() is not None:
                    raise RuntimeError(f"bitcoind exited with {self.process.returncode}; see {self.dir}")
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def _post(self, body):
        request = urllib.request.Request(f"http://127.0.0.1:{self.rpc_port}/", json.dumps(body).encode())
        request.add_header("Authorization", "Basic " + base64.b64encode(b"bench:bench").decode())
        try:
            return json.loads(urllib.request.urlopen(request, timeout=120).read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read())

    def rpc(self, method, *params):
        answer = self._post({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)})
        if answer.get("error"):
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def batch(self, method, params_list):
        """One JSON-RPC batch: `method` once per entry of `params_list`; the results in order."""
        answers = self._post([{"jsonrpc": "1.0", "id": n, "method": method, "params": params}
                              for n, params in enumerate(params_list)])
        answers.sort(key=lambda a: a["id"])
        errors = [a["error"] for a in answers if a.get("error")]
        if errors:
            raise RuntimeError(f"{method}: {errors[0]} ({len(errors)} of {len(answers)} failed)")
        return [a["result"] for a in answers]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def bench_wif():
    return base58check(b"\xef" + BENCH_KEY + b"\x01")


def unsigned_tx(inputs, outputs):
    """An unsigned version 2 transaction: `inputs` (txid hex, vout) and
    `outputs` (scriptPubKey hex, sats). Built here because Core's
    createrawtransaction refuses the same address twice."""
    def varint(n):
        return bytes([n]) if n < 0xfd else b"\xfd" + n.to_bytes(2, "little")
    data = (2).to_bytes(4, "little") + varint(len(inputs))
    for txid, vout in inputs:
        data += bytes.fromhex(txid)[::-1] + vout.to_bytes(4, "little") + b"\x00" + b"\xfd\xff\xff\xff"
    data += varint(len(outputs))
    for script, sats in outputs:
        script = bytes.fromhex(script)
        data += sats.to_bytes(8, "little") + varint(len(script)) + script
    return (data + bytes(4)).hex()


def split_coins(node, count, per_split=1000):
    """`count` confirmed P2WPKH coins of the bench key on a regtest Core node
    without a wallet: coinbases to the key, matured, each split into
    `per_split` outputs signed by the node's signrawtransactionwithkey and
    confirmed. Returns (txid, vout, sats) tuples."""
    wif = bench_wif()
    descriptor = node.rpc("getdescriptorinfo", f"wpkh({wif})")
    address = node.rpc("deriveaddresses", f"wpkh({wif})#{descriptor['checksum']}")[0]
    splits = -(-count // per_split)
    hashes = node.rpc("generatetoaddress", splits, address)
    node.rpc("generatetoaddress", 100, REGTEST_PAYOUT)
    coins = []
    for block_hash in hashes:
        coinbase = node.rpc("getblock", block_hash, 2)["tx"][0]
        value = round(coinbase["vout"][0]["value"] * 1e8)
        each = (value - 100_000) // per_split
        script = coinbase["vout"][0]["scriptPubKey"]["hex"]
        raw = unsigned_tx([(coinbase["txid"], 0)], [(script, each)] * per_split)
        signed = node.rpc("signrawtransactionwithkey", raw, [wif])
        txid = node.rpc("sendrawtransaction", signed["hex"])
        coins += [(txid, vout, each) for vout in range(per_split)]
    node.rpc("generatetoaddress", 1, REGTEST_PAYOUT)
    return coins[:count]


def pay(node, coins, to=REGTEST_PAYOUT):
    """One one-in one-out payment per coin of `coins`, in batches of 250."""
    wif = bench_wif()
    script = node.rpc("validateaddress", to)["scriptPubKey"]
    for start in range(0, len(coins), 250):
        chunk = coins[start:start + 250]
        raws = [unsigned_tx([(txid, vout)], [(script, value - 1_000)]) for txid, vout, value in chunk]
        signed = node.batch("signrawtransactionwithkey", [[raw, [wif]] for raw in raws])
        node.batch("sendrawtransaction", [[s["hex"]] for s in signed])


def fill_mempool(node, transactions):
    """`transactions` independent payments in the mempool of `node`."""
    pay(node, split_coins(node, transactions))


def regtest_block_latency(transactions=3000, blocks=3):
    """Share-to-submitblock delay for blocks carrying `transactions` on Bitcoin
    Core regtest: one fresh node per block, so each fill starts alike."""
    return [regtest_one_block(transactions) for _ in range(blocks)]


def regtest_one_block(transactions, backup=False):
    """One block of `transactions` found through NDAS on a fresh regtest node
    (and, with `backup`, a second node peered with it as NDAS's
    [[node.backup]]): its share-to-submitblock delay, and with a backup the
    delay to each node's submitblock going out."""
    main = CoreNode()
    peer = CoreNode(connect=main.p2p_port) if backup else None
    try:
        fill_mempool(main, transactions)
        while len(main.rpc("getblocktemplate", {"rules": ["segwit"]})["transactions"]) < transactions:
            time.sleep(0.5)
        stack_dir = tempfile.mkdtemp(prefix="ndas-bench-")
        ports = (free_port(), free_port())
        write_ndas_files(stack_dir, main.rpc_port, ports, "4.656542373906925e-10", REGTEST_PAYOUT,
                         log_format="json")
        if peer:
            config_path = os.path.join(stack_dir, "ndas.toml")
            text = open(config_path).read().replace("[log]", f"""[[node.backup]]
name = "backup"
backend = "rpc"
url = "http://127.0.0.1:{peer.rpc_port}"
user = "bench"
password = "bench"
[log]""")
            open(config_path, "w").write(text)
        log_path = os.path.join(stack_dir, "ndas.log")
        ndas = subprocess.Popen([NDAS, "serve", "--config", os.path.join(stack_dir, "ndas.toml")],
                                stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
        try:
            # Ready means a job is out: a 3,000-transaction template takes a
            # moment to fetch and check, and a miner without work sends nothing.
            wait_ready(ports[1], log_path)
            for attempt in range(3):
                load = subprocess.run([NDAS, "load", "--target", f"127.0.0.1:{ports[0]}", "--miners", "1",
                                       "--rate", "2", "--seconds", "3", "--mode", "shares", "--json"],
                                      check=True, capture_output=True, text=True)
                deadline = time.time() + 10
                while "BLOCK ACCEPTED" not in open(log_path).read() and time.time() < deadline:
                    time.sleep(0.2)
                if "BLOCK ACCEPTED" in open(log_path).read():
                    break
                print(f"regtest: no block from load attempt {attempt + 1}: {load.stdout[:500]}", file=sys.stderr)
        finally:
            ndas.send_signal(signal.SIGINT)
            ndas.wait(timeout=30)
        accepted = [json.loads(l) for l in open(log_path) if "BLOCK ACCEPTED" in l]
        if not accepted:
            raise RuntimeError(f"no block accepted on the regtest node; see {log_path}")
        first = min(accepted, key=lambda l: l["height"])
        block = main.rpc("getblock", first["hash"])
        sample = {"transactions": len(block["tx"]) - 1, "submit_delay_ms": first["submit_delay_ms"]}
        sent = {l["node"]: l["sent_ms"] for l in map(json.loads, open(log_path))
                if l.get("message") == "block sent to node" and l.get("hash") == first["hash"]}
        if peer:
            sample["sent_ms"] = sent
            sample["last_node_ms"] = max(sent.values())
        print(f"regtest block: {sample}", file=sys.stderr)
        return sample
    finally:
        main.stop()
        if peer:
            peer.stop()


FANOUT_LOAD = ["--miners", "10000", "--rate", "500", "--seconds", "15", "--sources", "2", "--connect-rate", "5000"]
SV2_STANDARD = ["--protocol", "sv2", "--channel", "standard"]
SV2_EXTENDED = ["--protocol", "sv2", "--channel", "extended"]
FLOOR_SHOWN = ["connections_held", "fanout_ms.count", "fanout_ms.p50", "fanout_ms.p99", "fanout_ms.max"]

SCENARIOS = [
    # name, stand-in bits, tip every (s), difficulty, load args, figures to show
    ("throughput: 1,000 miners submitting 50,000/s", "17034219", 30, "2.5e-10",
     ["--miners", "1000", "--rate", "50000", "--seconds", "15"],
     ["answers_per_second", "latency_ms.p50", "latency_ms.p99", "latency_ms.max", "server_cpu_ms_per_1000_answers"]),
    ("throughput on Bitcoin Core itself: a private OP_TRUE signet, 1,000 miners submitting 20,000/s", "signet", 0,
     "2.5e-10", ["--miners", "1000", "--rate", "20000", "--seconds", "15"],
     ["answers_per_second", "latency_ms.p50", "latency_ms.p99", "latency_ms.max", "server_cpu_ms_per_1000_answers",
      "blocks_submitted"]),
    ("fan-out: 10,000 miners, a new block every 2 s", "17034219", 2, "2.5e-10", FANOUT_LOAD,
     ["connections_held", "fanout_ms.count", "fanout_ms.p50", "fanout_ms.p99", "fanout_ms.max"]),
    ("fan-out: 10,000 miners over 1,000 payout addresses (`username` mode), a new block every 2 s", "17034219", 2,
     "2.5e-10", FANOUT_LOAD + ["--payout-addresses", "1000"],
     ["connections_held", "fanout_ms.count", "fanout_ms.p50", "fanout_ms.p99", "fanout_ms.max"],
     # The load's miners come from a few addresses and open every payout
     # address before any shares: as a farm behind NAT would, it needs the
     # per-address bound of new groups raised.
     'payout_mode = "username"\nmax_payout_groups = 1000\nmax_new_payout_groups_per_ip = 1000'),
    ("fan-out: 10,000 miners of one payout address (`username` mode), a new block every 2 s", "17034219", 2,
     "2.5e-10", FANOUT_LOAD + ["--payout-addresses", "1"],
     ["connections_held", "fanout_ms.count", "fanout_ms.p50", "fanout_ms.p99", "fanout_ms.max"],
     'payout_mode = "username"'),
    ("throughput, Stratum V2: 1,000 connections of one extended channel submitting 50,000/s", "17034219", 30,
     "2.5e-10", ["--miners", "1000", "--rate", "50000", "--seconds", "15"] + SV2_EXTENDED,
     ["answers_per_second", "latency_ms.p50", "latency_ms.p99", "latency_ms.max", "server_cpu_ms_per_1000_answers"]),
    ("throughput, Stratum V2: 1,000 connections of one standard channel submitting 50,000/s", "17034219", 30,
     "2.5e-10", ["--miners", "1000", "--rate", "50000", "--seconds", "15"] + SV2_STANDARD,
     ["answers_per_second", "latency_ms.p50", "latency_ms.p99", "latency_ms.max", "server_cpu_ms_per_1000_answers"]),
    ("fan-out, Stratum V2: 10,000 standard channels (a connection each, own merkle root each), a new block every 2 s",
     "17034219", 2, "2.5e-10", FANOUT_LOAD + SV2_STANDARD,
     ["connections_held", "fanout_ms.count", "fanout_ms.p50", "fanout_ms.p99", "fanout_ms.max"]),
    ("fan-out, Stratum V2: 10,000 extended channels (10 connections of 1,000), a new block every 2 s", "17034219", 2,
     "2.5e-10", FANOUT_LOAD + SV2_EXTENDED + ["--channels-per-connection", "1000"],
     ["connections_held", "connections", "fanout_ms.count", "fanout_ms.p50", "fanout_ms.p99", "fanout_ms.max"]),
    ("handshakes, Stratum V2: 10,000 miners reconnecting at once (a farm after a power cut)", "17034219", 30,
     "2.5e-10", ["--miners", "10000", "--rate", "0", "--seconds", "1", "--sources", "2", "--connect-rate", "100000"]
     + SV2_STANDARD,
     ["connections_held", "handshakes_per_second", "ramp_seconds", "server_cpu_us_per_connection",
      "rss_kib_per_connection"]),
    ("connections: 19,000 idle miners (this machine's open-file limit is 20,000)", "17034219", 3, "2.5e-10",
     ["--miners", "19000", "--rate", "0", "--seconds", "10", "--sources", "2", "--connect-rate", "5000"],
     ["connections_held", "server_idle_rss_mib", "server_peak_rss_mib", "rss_kib_per_connection", "fanout_ms.p99"]),
    ("block latency: every share a block, 3,500-tx template", "207fffff", 3600, "4.656542373906925e-10",
     ["--miners", "4", "--rate", "20", "--seconds", "10"],
     ["blocks_submitted", "block_submit_delay_p99_bucket_ms", "block_journal_p50_bucket_ms",
      "block_journal_p99_bucket_ms"]),
]


def pick(report, path):
    value = report
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def fmt(value):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="shorter criterion runs")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the parts an interrupted run kept in target/bench-partial.json")
    parser.add_argument("--only", help="run only load scenarios whose name contains this, print, write nothing")
    args = parser.parse_args()
    if args.only == "floor":
        run(["cargo", "build", "--release", "--bin", "ndas"])
        report = floor_scenario(FANOUT_LOAD)
        print(json.dumps({k: pick(report, k) for k in FLOOR_SHOWN}))
        return
    if args.only == "regtest":
        run(["cargo", "build", "--release", "--bin", "ndas"])
        print(regtest_block_latency(blocks=1))
        return
    if args.only == "regtest-two-nodes":
        run(["cargo", "build", "--release", "--bin", "ndas"])
        print([regtest_one_block(3000, backup=True) for _ in range(args.repeats)])
        return
    if args.only:
        run(["cargo", "build", "--release", "--bin", "ndas"])
        for name, bits, tip, difficulty, load_args, shown, *mining in SCENARIOS:
            if args.only in name:
                for _ in range(args.repeats):
                    report = load_scenario(bits, tip, difficulty, load_args, *mining)
                    print(f"{name}: {json.dumps({k: pick(report, k) for k in shown})}")
        return

    run(["cargo", "build", "--release", "--bin", "ndas"])
    bench_args = ["--", "--warm-up-time", "1", "--measurement-time", "2"] if args.quick else []
    # Each part is kept in target/bench-partial.json as it finishes; --resume
    # reuses the parts a failed run already measured.
    partial_path = os.path.join(ROOT, "target", "bench-partial.json")
    partial = {}
    if args.resume and os.path.exists(partial_path):
        with open(partial_path) as f:
            partial = json.load(f)

    def measured(key, measure):
        if key not in partial:
            partial[key] = measure()
            with open(partial_path, "w") as f:
                json.dump(partial, f)
        return partial[key]

    if not (args.resume and "criterion" in partial):
        run(["cargo", "bench", "--bench", "share", "--bench", "protocol", *bench_args])
        partial["criterion"] = True
        with open(partial_path, "w") as f:
            json.dump(partial, f)

    compression = criterion_median(SHA_COMPRESSION)
    # SHA-256 compressions each operation needs (see BENCHMARKS.md for the count).
    floors = {
        "validate_share/plain/0": 6, "validate_share/version_rolling/0": 6,
        "validate_share/plain/60": 25, "validate_share/version_rolling/60": 25,
        "validate_share/plain/3500": 43, "validate_share/version_rolling/3500": 43,
        "coinbase_txid_and_merkle_root_3500": 40,
    }
    others = ["parse_submit_line", "serialize_notify_depth12", "job_build_3500", "template_parse_3500", "block_hex_3500",
              "block_head_hex_3500", "publish_3500/fixed", "publish_3500/groups/1", "publish_3500/groups/100",
              "publish_3500/groups/10000"]

    results = []
    for name, bits, tip, difficulty, load_args, shown, *mining in SCENARIOS:
        def runs_of(bits=bits, tip=tip, difficulty=difficulty, load_args=load_args, shown=shown, name=name,
                    mining=mining):
            runs = []
            for _ in range(args.repeats):
                runs.append(load_scenario(bits, tip, difficulty, load_args, *mining))
                print(f"{name}: {json.dumps({k: pick(runs[-1], k) for k in shown})}", file=sys.stderr)
            return runs
        results.append((name, shown, measured(name, runs_of)))

    def floor_runs():
        floors = []
        for _ in range(args.repeats):
            floors.append(floor_scenario(FANOUT_LOAD))
            print(f"floor: {json.dumps({k: pick(floors[-1], k) for k in FLOOR_SHOWN})}", file=sys.stderr)
        return floors

    floor_fanout = measured("floor", floor_runs)
    results.append(("fan-out floor: the same 10,000 miners against `ndas fanout-floor` (no per-miner work)",
                    FLOOR_SHOWN, floor_fanout))

    disk = measured("disk", disk_flush_ms)
    regtest = measured("regtest", regtest_block_latency)
    commit = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    lines = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench.py`; run it to reproduce (`python3 scripts/bench.py`).",
        "",
        f"- machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}",
        f"- commit: {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- load runs: median of {args.repeats}; the load generator runs on the same 2 cores as NDAS,",
        "  so every load figure includes the generator's own CPU use.",
        "",
        "## In-process (criterion, median)",
        "",
        f"One SHA-256 compression on this machine: **{compression:.1f} ns** (the floor's unit).",
        "",
        "| operation | median | compressions | floor | × floor |",
        "| --- | --- | --- | --- | --- |",
    ]
    for bench, count in floors.items():
        median = criterion_median(bench)
        floor = count * compression
        lines.append(f"| {bench} | {median:,.0f} ns | {count} | {floor:,.0f} ns | {median / floor:.2f} |")
    for bench in others:
        median = criterion_median(bench)
        shown = f"{median / 1e6:,.2f} ms" if median > 1e6 else f"{median / 1e3:,.2f} µs" if median > 1e3 else f"{median:,.0f} ns"
        lines.append(f"| {bench} | {shown} | — | — | — |")
    lines += ["", "## Load (NDAS + stand-in node, or Bitcoin Core on a private signet, + `ndas load`, loopback)", ""]
    for name, shown, runs in results:
        lines += [f"### {name}", "", "| figure | median | runs |", "| --- | --- | --- |"]
        for key in shown:
            values = [pick(r, key) for r in runs]
            numbers = [v for v in values if isinstance(v, (int, float))]
            median = statistics.median(numbers) if numbers else None
            lines.append(f"| {key} | {fmt(median)} | {', '.join(fmt(v) for v in values)} |")
        lines.append("")
    lines += [
        "### block latency on Bitcoin Core regtest (one block per mempool fill)",
        "",
        "| transactions in the block | share → submitblock (ms) |",
        "| --- | --- |",
    ]
    lines += [f"| {s['transactions']:,} | {s['submit_delay_ms']:.2f} |" for s in regtest]
    delays = [s["submit_delay_ms"] for s in regtest]
    lines += ["", f"Median {statistics.median(delays):.2f} ms over {len(delays)} blocks.", ""]
    lines += [
        "### the disk's flush, quiet (what a found block's journal record costs at least)",
        "",
        f"Appending 400 bytes to an open file and `fdatasync`, 60 times in `target/`: median "
        f"{disk['median']:.3f} ms, 90th percentile {disk['p90']:.3f} ms, max {disk['max']:.3f} ms.",
        "",
    ]
    with open(os.path.join(ROOT, "scripts", "bench-notes.md")) as f:
        notes = f.read()
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(lines) + "\n" + notes)
    print("wrote BENCHMARKS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
