#!/usr/bin/env python3
"""A distributed slot attack against the release server, with default
settings, on loopback only: ADDRS source addresses (127.0.0.2 and up) with
PER_ADDR silent sockets each, every one reconnecting the moment it is cut or
refused, for SECONDS. Meanwhile an honest v2 client from 127.0.0.1 tries
HELLO -> REQUEST -> CLOSE every 0.25 s (in its own process), and three
sessions opened before the attack make a request every second.

Reports (one JSON line, then a table): the honest share, handshake latency
p50/p99/max, how the established sessions fared, the server's peak RSS and
its CPU use over the attack, and how many attack connections were made.

    cargo build --release --bin server
    python3 scripts/slot_attack.py [--server target/release/server]
        [--addrs 14] [--per-addr 1000] [--seconds 30]

A figure, not a pass/fail test: tests/hostile_peers.rs asserts the behaviour
on a smaller attack. Bounded: the attack stops after SECONDS, every socket
is closed and the server is stopped by its PID."""
import argparse, asyncio, json, multiprocessing, os, re, resource, socket, struct
import subprocess, sys, time

def frame(t, payload):
    return bytes([2, t]) + struct.pack(">I", len(payload)) + payload

def hello(name):
    n = name.encode()
    return frame(1, bytes([1, 2]) + struct.pack(">IIH", 1 << 20, 0, len(n)) + n)

def read_frame(s):
    def exact(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                return None
            b += c
        return b
    h = exact(6)
    if h is None:
        return None
    p = exact(struct.unpack(">I", h[2:6])[0])
    return None if p is None else (h[1], p)

def honest_try(port):
    """(ok, handshake seconds or None, what went wrong)."""
    t0 = time.perf_counter()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(hello("honest"))
        f = read_frame(s)
        if f is None or f[0] != 2:
            return False, None, f"refused: {f and f[1][2:60]!r}"
        handshake = time.perf_counter() - t0
        s.sendall(frame(5, struct.pack(">I", 7) + b"ping"))
        f = read_frame(s)
        if f is None or f[0] != 6:
            return False, handshake, "no response"
        s.sendall(frame(10, struct.pack(">H", 1000) + b"bye"))
        f = read_frame(s)
        s.close()
        if f is None or f[0] != 10:
            return False, handshake, "no close ack"
        return True, handshake, ""
    except OSError as e:
        return False, None, type(e).__name__

def honest_worker(port, seconds, out):
    results = []
    end = time.time() + seconds
    while time.time() < end:
        results.append(honest_try(port))
        time.sleep(0.25)
    out.put(results)

def established_worker(port, seconds, out):
    socks = []
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(hello(f"early{i}"))
        assert read_frame(s)[0] == 2
        socks.append(s)
    out.put("ready")
    ok = failed = 0
    end = time.time() + seconds
    rid = 0
    while time.time() < end:
        for s in socks:
            rid += 1
            try:
                s.sendall(frame(5, struct.pack(">I", rid) + b"x"))
                f = read_frame(s)
                while f is not None and f[0] == 8:  # a PING: answer it
                    s.sendall(frame(9, f[1]))
                    f = read_frame(s)
                ok += f is not None and f[0] == 6
                failed += not (f is not None and f[0] == 6)
            except OSError:
                failed += 1
        time.sleep(1)
    out.put((ok, failed))

async def attacker(port, src, stop, counts):
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((src, 0))
            await loop.sock_connect(s, ("127.0.0.1", port))
            counts[0] += 1
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(loop.sock_recv(s, 256), 0.5)
                except asyncio.TimeoutError:
                    continue
                if not data:
                    break
        except OSError:
            counts[1] += 1
            await asyncio.sleep(0.01)
        finally:
            s.close()

async def attack(port, addrs, per_addr, seconds):
    stop = asyncio.Event()
    counts = [0, 0]
    tasks = [asyncio.create_task(attacker(port, f"127.0.0.{2 + a}", stop, counts))
             for a in range(addrs) for _ in range(per_addr)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    return counts

def proc_stat(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def proc_status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key):
            return int(line.split()[1])

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else None

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default="target/release/server")
    ap.add_argument("--addrs", type=int, default=14)
    ap.add_argument("--per-addr", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--label", default="")
    ap.add_argument("server_args", nargs="*", help="extra server flags (after --)")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.addrs * a.per_addr + 1000
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
    err = open("/tmp/rust-tcp-slot-attack.err", "w+")
    srv = subprocess.Popen([a.server, "--addr", "127.0.0.1:0", *a.server_args],
                           stdout=subprocess.DEVNULL, stderr=err)
    try:
        port = None
        for _ in range(200):
            err.seek(0)
            m = re.search(r"listening on 127.0.0.1:(\d+)", err.read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.05)
        if port is None:
            sys.exit("the server did not start (see /tmp/rust-tcp-slot-attack.err)")
        q_est, q_hon = multiprocessing.Queue(), multiprocessing.Queue()
        est = multiprocessing.Process(target=established_worker, args=(port, a.seconds + 2, q_est))
        est.start()
        assert q_est.get(timeout=10) == "ready"
        cpu0, t0 = proc_stat(srv.pid), time.time()
        hon = multiprocessing.Process(target=honest_worker, args=(port, a.seconds, q_hon))
        # The honest client starts once the attack is under way.
        peak = [0]
        async def run():
            async def sample():
                while True:
                    peak[0] = max(peak[0], proc_status(srv.pid, "VmRSS:"))
                    await asyncio.sleep(0.5)
            sampler = asyncio.create_task(sample())
            loop = asyncio.get_running_loop()
            loop.call_later(1.0, hon.start)
            counts = await attack(port, a.addrs, a.per_addr, a.seconds + 1.5)
            sampler.cancel()
            return counts
        made, failed_connects = asyncio.run(run())
        cpu = (proc_stat(srv.pid) - cpu0) / (time.time() - t0)
        results = q_hon.get(timeout=60)
        hon.join()
        est_ok, est_failed = q_est.get(timeout=60)
        est.join()
    finally:
        srv.terminate()
        srv.wait()
    ok = sum(r[0] for r in results)
    hs = [r[1] for r in results if r[1] is not None]
    why = {}
    for r in results:
        if not r[0]:
            why[r[2]] = why.get(r[2], 0) + 1
    row = {
        "label": a.label, "addrs": a.addrs, "per_addr": a.per_addr, "seconds": a.seconds,
        "honest_ok": ok, "honest_tries": len(results),
        "honest_share": round(ok / len(results), 3) if results else None,
        "handshake_p50_ms": round(pct(hs, 50) * 1000, 2) if hs else None,
        "handshake_p99_ms": round(pct(hs, 99) * 1000, 2) if hs else None,
        "handshake_max_ms": round(max(hs) * 1000, 2) if hs else None,
        "established_ok": est_ok, "established_failed": est_failed,
        "server_peak_rss_mib": round(peak[0] / 1024, 1),
        "server_cpu_cores": round(cpu, 2),
        "attack_connections": made, "attack_connect_errors": failed_connects,
        "failures": why,
    }
    print(json.dumps(row))
    print(f"honest: {ok}/{len(results)} served ({row['honest_share']}), handshake p50 "
          f"{row['handshake_p50_ms']} ms, p99 {row['handshake_p99_ms']} ms, max {row['handshake_max_ms']} ms; "
          f"established: {est_ok} ok, {est_failed} failed; server peak RSS {row['server_peak_rss_mib']} MiB, "
          f"CPU {row['server_cpu_cores']} cores; attack connections {made}", file=sys.stderr)

if __name__ == "__main__":
    main()
