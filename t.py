# Holds N idle keep-alive connections to HOST:80 (one GET /1K.bin each),
# prints "ready N", waits for a line on stdin (the drain has returned), then
# sends every connection its next request at once and prints how many were
# answered with the full body, their latency p50/p99/max (issue 19).
# Used by scripts/drain-probe.
import socket, sys, time, selectors
host, n = sys.argv[1], int(sys.argv[2])
REQ = b"GET /1K.bin HTTP/1.1\r\nHost: lab\r\n\r\n"
def fetch(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = s.recv(4096)
        if not c: raise SystemExit("closed before head")
        buf += c
    head, body = buf.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(body) < length:
        c = s.recv(4096)
        if not c: raise SystemExit("closed before body")
        body += c
    return body
socks = []
for _ in range(n):
    s = socket.create_connection((host, 18080), timeout=10)
    s.sendall(REQ); fetch(s); socks.append(s)
print("ready", len(socks), flush=True)
sys.stdin.readline()
sel = selectors.DefaultSelector()
t0 = time.monotonic()
state = {}
for s in socks:
    s.setblocking(False)
    s.send(REQ)
    state[s] = [time.monotonic(), b"", None]
    sel.register(s, selectors.EVENT_READ)
lat = []; errs = 0
deadline = time.monotonic() + 15
while state and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.5):
        s = key.fileobj
        try:
            c = s.recv(65536)
        except ConnectionError:
            errs += 1; sel.unregister(s); del state[s]; continue
        if not c:
            errs += 1; sel.unregister(s); del state[s]; continue
        st = state[s]; st[1] += c
        b = st[1]
        if b"\r\n\r\n" in b:
            head, body = b.split(b"\r\n\r\n", 1)
            if len(body) >= 1024:
                lat.append(time.monotonic() - st[0]); sel.unregister(s); del state[s]
lat.sort()
def pct(p): return lat[min(len(lat)-1, int(p*len(lat)))]*1000 if lat else -1
print("answered %d errors %d missing %d p50 %.1f ms p99 %.1f ms max %.1f ms" % (len(lat), errs, len(state), pct(0.5), pct(0.99), pct(1.0)), flush=True)
