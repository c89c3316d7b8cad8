#!/usr/bin/env python3
"""Pipelined GETs in one TLS write on one HTTPS keep-alive connection, or
in one TCP write on a plain HTTP one.

usage: https_pipelined.py CA_FILE HOST VERSION(1.2|1.3) RATE_BYTES_PER_S PATH...
CA_FILE "-" means plain HTTP to port 80 (VERSION is then ignored and
printed as "plain").
Sends one GET per PATH in a single sendall (one TLS record), then reads the
responses in order at about RATE bytes/s. Prints "under way" once a
quarter of the first body arrived (the test kills the box then), then
"STATUS SHA256 BYTES VERSION" per response, or "closed" when the connection
ended cleanly (close_notify) before it. A PATH starting with "!" is sent
without Host (a request the box refuses). Exits 0 only if every response
was complete; the connection is closed with close_notify.
"""
import hashlib
import socket
import ssl
import sys
import time

ca, host, version, rate = sys.argv[1:5]
paths = sys.argv[5:]
rate = int(rate)
plain = ca == "-"
if plain:
    s = socket.create_connection((host, 80), timeout=60)
else:
    ctx = ssl.create_default_context(cafile=ca)
    v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = v
    ctx.maximum_version = v
    raw = socket.create_connection((host, 443), timeout=60)
    s = ctx.wrap_socket(raw, server_hostname="lab.baton.test")
f = s.makefile("rb")
s.sendall(
    b"".join(
        f"GET {p[1:]} HTTP/1.1\r\n\r\n".encode()
        if p.startswith("!")
        else f"GET {p} HTTP/1.1\r\nHost: lab.baton.test\r\n\r\n".encode()
        for p in paths
    )
)
started = time.monotonic()
total = 0


def read_response(first):
    global total
    line = f.readline()
    if not line:
        print("closed", flush=True)
        return False
    status = line.split()[1].decode()
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, val = line.decode().partition(":")
        if k.strip().lower() == "content-length":
            length = int(val.strip())
    h = hashlib.sha256()
    got = 0
    told = not first
    while got < length:
        chunk = f.read(min(65536, length - got))
        if not chunk:
            break
        h.update(chunk)
        got += len(chunk)
        total += len(chunk)
        if not told and got >= length // 4:
            print("under way", flush=True)
            told = True
        # Hold to the rate: the box is killed mid-body, not after.
        ahead = total / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    print(status, h.hexdigest(), got, "plain" if plain else s.version(), flush=True)
    return got == length


ok = True
for i in range(len(paths)):
    ok = ok and read_response(i == 0)
if not plain:
    try:
        s.unwrap()
    except (ssl.SSLError, OSError):
        # The server ended the connection first (close_notify, FIN).
        ok = False
s.close()
sys.exit(0 if ok else 1)
