#!/usr/bin/env python3
"""Soak: thousands of miners for an hour against NDAS and Bitcoin Core regtest.

Not part of CI. Starts a Bitcoin Core regtest node pair
(scripts/install-core.sh), NDAS (release build) on it, a payment every few
seconds from the bench key's coins so templates carry transactions, and
`ndas load` with MINERS connections submitting RATE shares a second in all.
Every SAMPLE seconds it records NDAS's resident memory and open descriptors
(from /proc), connections, shares and blocks; at the end it writes SOAK.md
with the series and a verdict: flat, or growing (a leak to find).

At regtest difficulty about half of all random shares are blocks, so RATE
is kept low: each block is a new tip and a clean job to every miner. Each
miner must still speak more often than NDAS's idle timeout (600 s), as a
real one does, or NDAS rightly closes it: MINERS / RATE stays under 600.

Usage: scripts/soak.py [--miners 3000] [--minutes 60] [--rate 6] [--sample 30]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the node pair, ports and NDAS files are shared with the benches)

ROOT = bench.ROOT
# NDAS's default `stratum.idle_timeout_seconds`.
IDLE_TIMEOUT = 600


def proc_figures(pid):
    """Resident memory (KiB) and open descriptors of a process."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_hour(points):
    """Least-squares slope of (minutes, value) points, per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / var * 60


def pay_every(node, coins, seconds, stop):
    """A payment every `seconds` from the bench key's coins, so templates
    change and carry transactions."""
    while not stop.wait(seconds):
        if not coins:
            continue  # spent out: only emptier templates from here
        try:
            bench.pay(node, [coins.pop()])
        except Exception as error:
            print(f"soak: payment failed: {error}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--miners", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=float, default=6.0, help="shares per second across all miners")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--out", default=os.path.join(ROOT, "SOAK.md"))
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--report", metavar="SAMPLES_JSON",
                        help="write SOAK.md again from a finished run's samples.json; run nothing")
    args = parser.parse_args()
    if args.report:
        with open(args.report) as f:
            kept = json.load(f)
        vars(args).update(kept.get("args", {}))
        write_report(args, kept["version"], kept["samples"], kept["report"], kept["exit_code"],
                     os.path.dirname(os.path.abspath(args.report)))
        return
    if args.miners / args.rate >= IDLE_TIMEOUT:
        parser.error(f"each miner would submit every {args.miners / args.rate:.0f} s, past NDAS's "
                     f"{IDLE_TIMEOUT} s idle timeout: raise --rate or lower --miners")
    if not args.no_build:
        bench.run(["cargo", "build", "--release", "--bin", "ndas"])
    folder = tempfile.mkdtemp(prefix="ndas-soak-")
    # A copy: a rebuild during the hour must not swap the binary under the run.
    ndas_bin = os.path.join(folder, "ndas")
    shutil.copy2(bench.NDAS, ndas_bin)
    version = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True).stdout.strip()

    main_node = bench.CoreNode()
    peer = bench.CoreNode(connect=main_node.p2p_port)
    ndas = None
    stop_payments = threading.Event()
    try:
        while main_node.rpc("getconnectioncount") == 0:
            time.sleep(0.1)
        # One payment every 2 s for the whole run.
        coins = bench.split_coins(main_node, int(args.minutes * 30) + 10)
        payout = bench.REGTEST_PAYOUT
        ports = (bench.free_port(), bench.free_port())
        bench.write_ndas_files(folder, main_node.rpc_port, ports, "2.5e-10", payout, log_format="json")
        log_path = os.path.join(folder, "ndas.log")
        ndas = subprocess.Popen([ndas_bin, "serve", "--config", os.path.join(folder, "ndas.toml")],
                                stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
        bench.wait_ready(ports[1], log_path, seconds=60)
        payments = threading.Thread(target=pay_every, args=(main_node, coins, 2.0, stop_payments))
        payments.start()

        seconds = int(args.minutes * 60)
        load = subprocess.Popen(
            [ndas_bin, "load", "--target", f"127.0.0.1:{ports[0]}", "--miners", str(args.miners),
             "--rate", str(args.rate), "--seconds", str(seconds), "--connect-rate", "1000",
             "--mode", "random", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = time.time()
        samples = []
        while load.poll() is None:
            rss, fds = proc_figures(ndas.pid)
            values = bench.metrics(ports[1])
            sample = {
                "minute": (time.time() - started) / 60,
                "rss_kib": rss,
                "fds": fds,
                "connections": int(values.get("ndas_connections", 0)),
                "shares": int(bench.answers(values)),
                "blocks": int(values.get("ndas_blocks_submitted_total", 0)),
                "height": int(values.get("ndas_template_height", 0)),
            }
            samples.append(sample)
            print(f"soak: {json.dumps(sample)}", file=sys.stderr, flush=True)
            for _ in range(int(args.sample * 10)):
                if load.poll() is not None:
                    break
                time.sleep(0.1)
        out, err = load.communicate()
        if load.returncode != 0:
            raise RuntimeError(f"load generator failed: {err[:2000]}")
        report = json.loads(out)
        values = bench.metrics(ports[1])
        report["disconnects"] = {
            key.split('reason="')[1].rstrip('"}'): int(value)
            for key, value in values.items()
            if key.startswith("ndas_disconnects_total{") and value
        }
        stop_payments.set()
        payments.join()
        ndas.send_signal(signal.SIGINT)
        exit_code = ndas.wait(timeout=60)
        write_report(args, version, samples, report, exit_code, folder)
    finally:
        stop_payments.set()
        if ndas and ndas.poll() is None:
            ndas.kill()
        peer.stop()
        main_node.stop()


# Descriptors beyond one per miner that are not a leak: listeners, the
# journal, the node's pooled RPC connections (8 idle at most, plus calls in
# flight and the longpoll), and the process's own files.
FD_ALLOWANCE = 32


def write_report(args, version, samples, report, exit_code, folder):
    # The ramp and the first fill of buffers and caches are not a leak: judge
    # the series after the first sixth of the run, and whether it still grows
    # in its last third.
    settled = [s for s in samples if s["minute"] >= args.minutes / 6]
    last = [s for s in samples if s["minute"] >= args.minutes * 2 / 3]
    rss_slope = slope_per_hour([(s["minute"], s["rss_kib"]) for s in settled])
    rss_last_slope = slope_per_hour([(s["minute"], s["rss_kib"]) for s in last])
    rss_first, rss_last = settled[0]["rss_kib"], settled[-1]["rss_kib"]
    fds = [s["fds"] for s in settled]
    held = min(s["connections"] for s in settled)
    # Flat: memory no longer growing by 2 % an hour in the last third,
    # descriptors within one per miner plus the allowance, and every miner
    # still connected (a leak hidden by dropped miners is no pass).
    flat = (abs(rss_last_slope) < 0.02 * rss_last and max(fds) <= args.miners + FD_ALLOWANCE
            and held == args.miners)
    lines = [
        "# Soak",
        "",
        "Written by `scripts/soak.py` (not CI): the load generator against NDAS (release build) and the",
        "real regtest node pair, with a wallet payment every 2 s so templates carry transactions.",
        "",
        f"- Commit {version}; {args.miners:,} miners; {args.rate:g} shares/s in all (random nonces); "
        f"{args.minutes:g} minutes; a sample every {args.sample:g} s.",
        f"- The generator: {report['connections_held']:,} connections held, {report['connect_failures']} "
        f"connect failures, {report['submitted']:,} shares sent, {report['answers']:,} answered, "
        f"{report['accepted']:,} accepted, rejected by code {report['rejected']}; answer p99 "
        f"{report['latency_ms']['p99']:.1f} ms, fan-out p99 {report['fanout_ms']['p99']:.1f} ms.",
        f"- Blocks submitted: {samples[-1]['blocks']:,} (template height {samples[-1]['height']:,}); "
        f"NDAS exited with code {exit_code} on SIGINT.",
        f"- Resident memory after the first sixth: {rss_first / 1024:.1f} MiB, at the end "
        f"{rss_last / 1024:.1f} MiB; trend {rss_slope:+.0f} KiB/hour over that span, "
        f"{rss_last_slope:+.0f} KiB/hour over the last third.",
        f"- Open descriptors after the first sixth: {min(fds)}–{max(fds)} (one per miner plus at most "
        f"{FD_ALLOWANCE}: listeners, journal, pooled RPC connections); fewest miners connected {held:,} of {args.miners:,}; NDAS's disconnects by reason, counted "
        f"after the generator hung up (`eof` is its own close): {report['disconnects']}.",
        f"- Verdict: **{'flat' if flat else 'growing: a leak to find'}** "
        "(flat = memory growing under 2 % an hour over the last third, descriptors within one per miner "
        f"plus {FD_ALLOWANCE}, every miner held throughout).",
        "",
        "| minute | RSS MiB | fds | connections | shares | blocks | height |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    step = max(1, len(samples) // 30)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    for s in shown:
        lines.append(f"| {s['minute']:.1f} | {s['rss_kib'] / 1024:.1f} | {s['fds']} | {s['connections']:,} | "
                     f"{s['shares']:,} | {s['blocks']:,} | {s['height']:,} |")
    lines += ["", f"Every sample and NDAS's log were kept in `{folder}` on the machine that ran it.", ""]
    notes = os.path.join(ROOT, "scripts", "soak-notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            lines.append(f.read())
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(folder, "samples.json"), "w") as f:
        kept = {key: vars(args)[key] for key in ("miners", "minutes", "rate", "sample")}
        json.dump({"args": kept, "version": version, "samples": samples, "report": report,
                   "exit_code": exit_code}, f)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
