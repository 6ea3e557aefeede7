#!/usr/bin/env python3
"""The hostile-peer attacks, each against the release server with default
settings (unless noted), on 127.0.0.1 only: peak RSS, time to cut, and an
honest client's request latency during the attack. Takes about a minute
(the trickle waits for the 30 s frame deadline).

    cargo build --release --bin server && python3 scripts/attacks.py [SERVER]

Figures, not pass/fail: the tests assert the behaviour, this measures it."""
import socket, struct, subprocess, sys, time, os, threading, re

SERVER = sys.argv[1] if len(sys.argv) > 1 else "target/release/server"
MIB = 1 << 20

def frame(t, payload): return bytes([2, t]) + struct.pack(">I", len(payload)) + payload
def hello(name, maxf=16*MIB):
    n = name.encode()
    return frame(1, bytes([1, 2]) + struct.pack(">IIH", maxf, 0, len(n)) + n)

class Server:
    def __init__(self, *args):
        self.err = open("/tmp/rust-tcp-attacks-server.err", "w+")
        self.p = subprocess.Popen([SERVER, "--addr", "127.0.0.1:0", *args], stdout=subprocess.DEVNULL, stderr=self.err)
        for _ in range(100):
            self.err.seek(0); m = re.search(r"listening on 127.0.0.1:(\d+)", self.err.read())
            if m: self.port = int(m.group(1)); break
            time.sleep(0.05)
    def status(self, key):
        for l in open(f"/proc/{self.p.pid}/status"):
            if l.startswith(key): return int(l.split()[1])
    def rss(self): return self.status("VmRSS:")
    def hwm(self): return self.status("VmHWM:")
    def log(self): self.err.seek(0); return self.err.read()
    def stop(self): self.p.terminate(); self.p.wait()

def read_frame(s):
    h = b""
    while len(h) < 6:
        c = s.recv(6 - len(h))
        if not c: return None
        h += c
    n = struct.unpack(">I", h[2:6])[0]; p = b""
    while len(p) < n:
        c = s.recv(n - len(p))
        if not c: return None
        p += c
    return h[1], p

def honest_latency(port):
    """ms for connect + handshake + one request answered."""
    t = time.time()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(hello("honest"))
    f = read_frame(s)
    if f is None or f[0] != 2: return f"refused {f}"
    s.sendall(frame(5, struct.pack(">I", 1) + b"ping"))
    while True:
        f = read_frame(s)
        if f is None: return "closed"
        if f[0] == 6: break
    ms = (time.time() - t) * 1000
    s.close()
    return f"{ms:.1f} ms"

def closed_within(s, limit):
    t = time.time(); s.settimeout(limit)
    try:
        while s.recv(65536): pass
    except Exception: return None
    return time.time() - t

results = []
def row(name, **kv): results.append((name, kv)); print(name, kv, flush=True)

# 1. 100 connections claim 16 MiB, send 15 MiB, stall (default budget 1 GiB)
srv = Server(); base = srv.rss()
socks = []
def hog(i):
    s = socket.create_connection(("127.0.0.1", srv.port)); s.sendall(hello(f"hog{i}"))
    s.sendall(bytes([2, 4]) + struct.pack(">I", 16*MIB - 6))
    s.settimeout(0.3)
    try: s.sendall(b"z" * (15*MIB))
    except Exception: pass
    socks.append(s)
ths = [threading.Thread(target=hog, args=(i,)) for i in range(100)]
[t.start() for t in ths]; time.sleep(0.5); lat = honest_latency(srv.port); [t.join() for t in ths]
time.sleep(1)
row("100 x 16 MiB claims, stalled", peak_rss_mib=srv.hwm()//1024, rss_mib=srv.rss()//1024, base_mib=base//1024, honest=lat, honest_after=honest_latency(srv.port))
[s.close() for s in socks]; time.sleep(1); row("  after they leave", rss_mib=srv.rss()//1024); srv.stop()

# 2. one 16 MiB request, then idle
srv = Server(); s = socket.create_connection(("127.0.0.1", srv.port)); s.sendall(hello("bulk")); read_frame(s)
base = srv.rss(); s.sendall(frame(5, struct.pack(">I", 7) + b"q" * (16*MIB - 100)))
f = read_frame(s); time.sleep(0.5)
s.sendall(frame(5, struct.pack(">I", 8) + b"small")); read_frame(s); time.sleep(0.5)
row("16 MiB request then idle", rss_before_mib=base//1024, rss_idle_after_mib=srv.rss()//1024, peak_mib=srv.hwm()//1024)
s.close(); srv.stop()

# 3. one 16 MiB broadcast to 100 clients that don't read
srv = Server("--broadcast"); deaf = []
for i in range(100):
    d = socket.socket(); d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    d.connect(("127.0.0.1", srv.port)); d.sendall(hello(f"deaf{i}")); deaf.append(d)
time.sleep(1); base = srv.rss()
loud = socket.create_connection(("127.0.0.1", srv.port)); loud.sendall(hello("loud")); read_frame(loud)
t = time.time(); loud.sendall(frame(3, b"m" * (16*MIB - 100)))
lat = honest_latency(srv.port)
loud.sendall(frame(5, struct.pack(">I", 1) + b"after")); 
while True:
    f = read_frame(loud)
    if f is None or f[0] == 6: break
row("16 MiB broadcast to 100 deaf clients", rss_before_mib=base//1024, rss_after_mib=srv.rss()//1024, peak_mib=srv.hwm()//1024, honest=lat, sender_request_after_ms=round((time.time()-t)*1000))
[d.close() for d in deaf]; loud.close(); srv.stop()

# 4. a client that never reads its pushes (default bound 8 MiB)
srv = Server("--broadcast")
d = socket.socket(); d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); d.connect(("127.0.0.1", srv.port)); d.sendall(hello("deaf"))
time.sleep(0.5); base = srv.hwm()
loud = socket.create_connection(("127.0.0.1", srv.port)); loud.sendall(hello("loud")); read_frame(loud)
msg = frame(3, b"p" * (64*1024))
for _ in range(400):
    loud.sendall(msg)
    if "slow consumer" in srv.log(): break
time.sleep(0.5)
row("pushes to a client that never reads (bound 8 MiB)", peak_growth_mib=round((srv.hwm()-base)/1024, 1), dropped="slow consumer" in srv.log())
d.close(); loud.close(); srv.stop()

# 5. 200 sockets that send nothing / 0x01 / one v1 message, --max-connections 200
srv = Server("--max-connections", "200"); held = []
for i in range(200):
    s = socket.create_connection(("127.0.0.1", srv.port))
    if i % 3 == 1: s.sendall(b"\x01")
    if i % 3 == 2: s.sendall(b"\x01\x00\x02hi")
    held.append(s)
time.sleep(0.3)
lat = honest_latency(srv.port)
t = time.time(); cut = [closed_within(s, 60) for s in held[::3][:20]]
row("200 silent sockets, --max-connections 200", newcomer=lat, silent_cut_after_s=round(max(c for c in cut if c) + 0.3, 1))
lat2 = honest_latency(srv.port)
row("  newcomer once cut", honest=lat2)
[s.close() for s in held]; srv.stop()

# 6. after the handshake, one byte every 5 s inside a frame
srv = Server(); s = socket.create_connection(("127.0.0.1", srv.port)); s.sendall(hello("drip")); read_frame(s)
s.sendall(bytes([2, 3]) + struct.pack(">I", 100)); t = time.time(); cut = None
while time.time() - t < 120:
    try: s.sendall(b"x")
    except Exception: cut = time.time() - t; break
    s.settimeout(5)
    try:
        f = read_frame(s)
        if f and f[0] == 10: cut = time.time() - t; code = struct.unpack(">H", f[1][:2])[0]; break
    except socket.timeout: pass
row("1 byte every 5 s inside a v2 frame", cut_after_s=round(cut or -1, 1), close_code=code if cut else None, honest=honest_latency(srv.port))
srv.stop()

# 7. 20 HELLOs claiming 16 MiB
srv = Server(); base = srv.rss(); codes = []
for i in range(20):
    s = socket.create_connection(("127.0.0.1", srv.port)); s.sendall(bytes([2, 1]) + struct.pack(">I", 16*MIB))
    f = read_frame(s); codes.append(struct.unpack(">H", f[1][:2])[0] if f else None); s.close()
row("20 HELLOs claiming 16 MiB", rss_growth_kib=srv.rss()-base, close_codes=sorted(set(codes)))
srv.stop()

# 8. newline in reasons; 66 MiB of ERROR frames
srv = Server(); s = socket.create_connection(("127.0.0.1", srv.port)); s.sendall(hello("forger")); read_frame(s)
reason = b"\x03\xf7" + b"ok\nFAKE LINE"
s.sendall(frame(9, reason)); err = frame(9, b"\x03\xf7" + b"x" * 1000); burst = err * 1024
t = time.time()
for _ in range(66): s.sendall(burst)
s.sendall(frame(10, b"\x03\xe8bye")); read_frame(s); time.sleep(0.5)
log = srv.log()
row("66 MiB of ERROR frames, newline in a reason", log_bytes=len(log), forged_line=any(l.startswith("FAKE") for l in log.splitlines()), seconds=round(time.time()-t, 2))
srv.stop()
