"""Requests/s at 1 connection x 64 in flight, and the median round trip at
1 x 1: this package against our server, side by side with redis-py's
asyncio client against redis-server (PING), in the same run, rounds
alternated (figures on a shared machine swing between runs; ratios from
one run are what count).

    python bench/bench_vs_redis.py --server ../../target/release/server

64 in flight means, for redis-py, a pipeline of 64 PINGs (its only way to
have 64 commands in flight on one connection), and for us 64 concurrent
``request()`` calls gathered at once; a third figure keeps 64 requests in
flight continuously from 64 tasks. Needs ``pip install ./clients/python[bench]``
and ``redis-server`` (Debian: ``apt-get install redis-server``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from rust_tcp import Client

PAYLOAD = b"PING"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_ours(path: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [path, "--addr", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RUST_LOG": "info"},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on " in line:
            addr = line.rsplit("listening on ", 1)[1].split()[0]
            addr = "".join(c for c in addr if c.isalnum() or c in ".:")
            # Keep draining its log so it never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, addr
    raise SystemExit(f"{path} did not start")


def start_redis(path: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [path, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{path} did not start on port {port}")


@dataclass
class Figures:
    batch_rps: float
    gather_rps: float
    tasks_rps: float
    p50_us: float


async def timed(seconds: float, step: Callable[[], Awaitable[int]]) -> float:
    """Runs ``step`` (which returns how many requests it completed) for
    ``seconds``; requests per second."""
    done = 0
    start = time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        done += await step()
    return done / (time.perf_counter() - start)


async def from_tasks(seconds: float, tasks: int, one: Callable[[], Awaitable[object]]) -> float:
    """Requests per second from ``tasks`` tasks each calling ``one`` in a
    loop for ``seconds``."""
    stop = time.perf_counter() + seconds
    counts = [0] * tasks

    async def worker(i: int) -> None:
        while time.perf_counter() < stop:
            await one()
            counts[i] += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return sum(counts) / (time.perf_counter() - start)


async def latency(count: int, one: Callable[[], Awaitable[object]]) -> float:
    samples = []
    for _ in range(count):
        t = time.perf_counter_ns()
        await one()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


async def bench_ours(addr: str, seconds: float, in_flight: int, samples: int) -> Figures:
    async with await Client.connect(addr, name="bench") as client:
        batch_of = [PAYLOAD] * in_flight

        async def batch() -> int:
            await client.request_all(batch_of)
            return in_flight

        async def gathered() -> int:
            await asyncio.gather(*(client.request(PAYLOAD) for _ in range(in_flight)))
            return in_flight

        await timed(0.3, batch)  # warm-up
        batch_rps = await timed(seconds, batch)
        gather_rps = await timed(seconds, gathered)
        tasks_rps = await from_tasks(seconds, in_flight, lambda: client.request(PAYLOAD))
        p50 = await latency(samples, lambda: client.request(PAYLOAD))
        return Figures(batch_rps, gather_rps, tasks_rps, p50)


async def bench_redis(port: int, seconds: float, in_flight: int, samples: int) -> Figures:
    r = aioredis.Redis(host="127.0.0.1", port=port, single_connection_client=True)
    try:

        async def batch() -> int:
            pipe = r.pipeline(transaction=False)
            for _ in range(in_flight):
                pipe.ping()
            await pipe.execute()
            return in_flight

        await timed(0.3, batch)
        batch_rps = await timed(seconds, batch)
        # One connection: redis-py serialises concurrent commands on it, so
        # its tasks have one command in flight at a time.
        tasks_rps = await from_tasks(seconds, in_flight, r.ping)
        p50 = await latency(samples, r.ping)
        # redis-py has no other way to have 64 in flight on one connection.
        return Figures(batch_rps, batch_rps, tasks_rps, p50)
    finally:
        await r.aclose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", required=True, help="our server binary (build it with --release)")
    p.add_argument("--redis-server", default=shutil.which("redis-server"), help="default: redis-server on PATH")
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds of each (default: %(default)s)")
    p.add_argument("--in-flight", type=int, default=64)
    p.add_argument("--samples", type=int, default=5000, help="round trips timed for the median")
    p.add_argument(
        "--jsonl",
        action="store_true",
        help="print one JSON record per figure (scripts/bench.sh's results format) instead of the table",
    )
    args = p.parse_args()
    if args.redis_server is None:
        print("error: redis-server not found (apt-get install redis-server, or --redis-server PATH)", file=sys.stderr)
        return 1
    our_server, addr = start_ours(args.server)
    redis_server, port = start_redis(args.redis_server)
    rows = []
    try:
        for round_no in range(1, args.rounds + 1):
            a = asyncio.run(bench_ours(addr, args.seconds, args.in_flight, args.samples))
            b = asyncio.run(bench_redis(port, args.seconds, args.in_flight, args.samples))
            rows.append((round_no, a, b))
            print(f"round {round_no} done", file=sys.stderr)
    finally:
        our_server.terminate()
        redis_server.terminate()
        our_server.wait()
        redis_server.wait()
    k = args.in_flight
    if args.jsonl:
        for n, a, b in rows:
            for case, mine, other in [
                (f"py_pipelined_1x{k}", a.batch_rps, b.batch_rps),
                (f"py_gather_1x{k}", a.gather_rps, b.batch_rps),
                (f"py_tasks_1x{k}", a.tasks_rps, b.tasks_rps),
            ]:
                for impl, value in [("ours", mine), ("redis-py", other)]:
                    print(json.dumps({"case": case, "impl": impl, "round": n, "result": {"per_sec": value}}))
            for impl, p50 in [("ours", a.p50_us), ("redis-py", b.p50_us)]:
                print(json.dumps({"case": "py_1x1", "impl": impl, "round": n, "result": {"latency_us": {"p50": p50}}}))
        return 0
    print(
        f"| round | 1x{k} pipelined: ours (`request_all`) / redis-py (pipeline) req/s | ratio "
        f"| 1x{k} ours as `gather(request()…)` / redis-py pipeline | ratio "
        f"| 1x{k} from {k} tasks: ours / redis-py | ratio | 1x1 p50: ours / redis-py µs | ratio (theirs/ours) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, a, b in rows:
        print(
            f"| {n} | {a.batch_rps:,.0f} / {b.batch_rps:,.0f} | {a.batch_rps / b.batch_rps:.2f} "
            f"| {a.gather_rps:,.0f} / {b.batch_rps:,.0f} | {a.gather_rps / b.batch_rps:.2f} "
            f"| {a.tasks_rps:,.0f} / {b.tasks_rps:,.0f} | {a.tasks_rps / b.tasks_rps:.2f} "
            f"| {a.p50_us:.1f} / {b.p50_us:.1f} | {b.p50_us / a.p50_us:.2f} |"
        )
    parser = "hiredis" if importlib.util.find_spec("hiredis") else "its pure-Python parser (no hiredis)"
    print(
        f"\nPython {sys.version.split()[0]}, redis-py {redis.__version__} with {parser}; "
        f"{args.seconds:g} s per figure, {args.samples} round trips for each median."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
