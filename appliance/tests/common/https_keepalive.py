#!/usr/bin/env python3
"""Two GETs on one HTTPS keep-alive connection, with a pause between them.

usage: https_keepalive.py CA_FILE HOST VERSION(1.2|1.3) PATH
Prints "STATUS SHA256 BYTES" after each response; waits for a line on stdin
before the second request (the test kills a box meanwhile). Exits 0 only if
both responses were complete; the connection is closed with close_notify.
"""
import hashlib
import socket
import ssl
import sys

ca, host, version, path = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
ctx.minimum_version = v
ctx.maximum_version = v
raw = socket.create_connection((host, 443), timeout=60)
s = ctx.wrap_socket(raw, server_hostname="lab.baton.test")
f = s.makefile("rb")


def get():
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: lab.baton.test\r\n\r\n".encode())
    status = f.readline().split()[1].decode()
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, val = line.decode().partition(":")
        if k.strip().lower() == "content-length":
            length = int(val.strip())
    body = f.read(length)
    print(status, hashlib.sha256(body).hexdigest(), len(body), s.version(), flush=True)
    return len(body) == length


ok = get()
sys.stdin.readline()
ok = get() and ok
s.unwrap()
s.close()
sys.exit(0 if ok else 1)
