#!/usr/bin/env python3
"""Idle HTTP keep-alive connections that all ask again, round after round.

usage: python3 -c "$KEEPALIVE_ROUNDS" HOST COUNT PATH ROUNDS [SPREAD_MS [SOURCE]]
(baton_lab::clients::KEEPALIVE_ROUNDS holds this text)

Opens COUNT connections to HOST:80 (from address SOURCE when given: one
address holds at most ~64,000 ports to HOST:80) and asks PATH once on each, then prints
"READY". Then, for each further round, waits for a line on stdin, sends one
GET on every connection — all at once, or evenly over SPREAD_MS — and reads
every answer (each one's latency from its own request), and prints one line:

    ROUND n ok=K of=COUNT sha=SHA p50_ms=A p99_ms=P max_ms=M timeouts=T retrans=R

sha is the body's sha256 when every body of the round had the same one;
timeouts and retrans are this namespace's TcpExt TCPTimeouts and Tcp
RetransSegs growth during the round: a request lost on the way (a box that
stopped answering) costs the client a retransmission timeout. The
connections are closed with a FIN at the end (the server's FINs awaited,
10 s at most for all). Exits 0 only if every answer
of every round was complete.
"""
import collections
import hashlib
import resource
import selectors
import socket
import sys
import time

# linux/in.h; not in every Python's socket module.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def counters():
    """TCPTimeouts and RetransSegs of this network namespace."""
    found = {}
    for name in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = open(name).read().splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            keys = head.split()
            for k, v in zip(keys[1:], vals.split()[1:]):
                found[keys[0] + k] = int(v)
    return found.get("TcpExt:TCPTimeouts", 0), found.get("Tcp:RetransSegs", 0)


class Conn:
    def __init__(self, host, path, source=None):
        if source:
            # The port is chosen at connect(2), by the whole 4-tuple:
            # bind(2)'s own search for a free port slows to a crawl once
            # thousands of one address's ports are taken.
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            self.sock.bind((source, 0))
            self.sock.settimeout(30)
            self.sock.connect((host, 80))
        else:
            self.sock = socket.create_connection((host, 80), timeout=30)
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    def send(self):
        self.buf = b""
        self.sock.sendall(self.request)
        self.sent = time.monotonic()

    def feed(self):
        """Reads what is there; returns the body once the answer is whole."""
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self.buf += data
        head, sep, body = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return None
        lines = head.split(b"\r\n")
        if lines[0].split()[1] != b"200":
            raise ConnectionError(lines[0].decode())
        length = next(
            int(l.split(b":", 1)[1])
            for l in lines[1:]
            if l.lower().startswith(b"content-length:")
        )
        return body if len(body) >= length else None


def round_trip(conns, spread_ms=0):
    """One GET on every connection, sent evenly over spread_ms; (bodies'
    sha256 set, latencies ms, answers complete). Failures are counted by
    kind and printed as one line to stderr: at 100,000 connections one
    line each drowned the harness's log."""
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    due = [start + spread_ms / 1000 * i / len(conns) for i in range(len(conns))]
    sent = 0
    shas, lat, ok = set(), [], 0
    errors = collections.Counter()
    deadline = start + spread_ms / 1000 + 30
    while (sent < len(conns) or len(sel.get_map())) and time.monotonic() < deadline:
        now = time.monotonic()
        while sent < len(conns) and due[sent] <= now:
            c = conns[sent]
            sent += 1
            try:
                c.send()
            except OSError as e:
                errors[str(e)] += 1
                continue
            sel.register(c.sock, selectors.EVENT_READ, c)
        wait = max(0.0, due[sent] - time.monotonic()) if sent < len(conns) else 1
        if not len(sel.get_map()):
            time.sleep(wait)
            continue
        for key, _ in sel.select(timeout=wait):
            c = key.data
            try:
                body = c.feed()
            except (OSError, ConnectionError, StopIteration, IndexError) as e:
                errors[str(e)] += 1
                sel.unregister(c.sock)
                continue
            if body is not None:
                sel.unregister(c.sock)
                lat.append((time.monotonic() - c.sent) * 1000)
                shas.add(hashlib.sha256(body).hexdigest())
                ok += 1
    sel.close()
    if errors:
        print("errors:", dict(errors), file=sys.stderr, flush=True)
    return shas, sorted(lat), ok


def close_all(conns, within_s=10):
    """Closes every connection with a FIN and waits, all together and for
    at most within_s, for the server's FINs: a per-socket blocking wait
    cost 30 s per connection the server no longer answered, so a run that
    lost thousands never ended."""
    sel = selectors.DefaultSelector()
    for c in conns:
        try:
            c.sock.shutdown(socket.SHUT_WR)
            c.sock.setblocking(False)
            sel.register(c.sock, selectors.EVENT_READ)
        except OSError:
            c.sock.close()  # reset already: counted in its round
    deadline = time.monotonic() + within_s
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            try:
                if key.fileobj.recv(65536):
                    continue
            except BlockingIOError:
                continue
            except OSError:
                pass
            sel.unregister(key.fileobj)
            key.fileobj.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()


def main():
    host, count, path, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    spread_ms = float(sys.argv[5]) if len(sys.argv) > 5 else 0
    source = sys.argv[6] if len(sys.argv) > 6 else None
    # One descriptor a connection: as many as the hard limit allows.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    conns = [Conn(host, path, source) for _ in range(count)]
    _, _, ok = round_trip(conns, spread_ms)
    all_ok = ok == count
    print("READY", flush=True)
    for n in range(1, rounds + 1):
        sys.stdin.readline()
        t0, r0 = counters()
        shas, lat, ok = round_trip(conns, spread_ms)
        t1, r1 = counters()
        sha = shas.pop() if len(shas) == 1 else "mixed"
        pick = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] if lat else -1
        print(
            f"ROUND {n} ok={ok} of={count} sha={sha} p50_ms={pick(0.5):.1f} "
            f"p99_ms={pick(0.99):.1f} max_ms={pick(1.0):.1f} "
            f"timeouts={t1 - t0} retrans={r1 - r0}",
            flush=True,
        )
        all_ok = all_ok and ok == count
    close_all(conns)
    sys.exit(0 if all_ok else 1)


main()
