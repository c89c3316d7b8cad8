#!/usr/bin/env python3
"""A minimal RTSP player for lab_rtsp (issue 18): DESCRIBE, SETUP over UDP,
PLAY, PAUSE, PLAY again without a range, GET_PARAMETER, TEARDOWN, on one
connection, receiving RTP on its own ports. Prints what it saw, a line
each: `answer METHOD STATUS`, `header METHOD NAME: VALUE`, `rtp PHASE SEQ
SSRC LEN`; the payload bytes go to a file, so the Rust test asserts on
them. Usage: rtsp_pause.py HOST PAYLOAD_FILE [GATE]: with GATE, once
paused it creates GATE.paused and waits (up to 60 s) for GATE to exist
before the second PLAY (the takeover test kills the box in between).
"""
import os
import socket
import sys
import time

HOST = sys.argv[1]
OUT = sys.argv[2]
GATE = sys.argv[3] if len(sys.argv) > 3 else None
URL = f"rtsp://{HOST}/clip.ts"


def request(sock, buf, method, url, cseq, headers):
    lines = [f"{method} {url} RTSP/1.0", f"CSeq: {cseq}"] + headers
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    while b"\r\n\r\n" not in buf[0]:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit(f"connection closed waiting for the answer to {method}")
        buf[0] += chunk
    head, rest = buf[0].split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    length = int(hdrs.get("content-length", "0"))
    while len(rest) < length:
        rest += sock.recv(4096)
    buf[0] = rest[length:]
    return {"method": method, "status": status, "headers": hdrs}


def receive(rtp, seconds, packets, payload):
    """RTP packets arriving within `seconds`: (seq, ssrc, payload length)."""
    end = time.monotonic() + seconds
    got = []
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return got
        rtp.settimeout(left)
        try:
            data = rtp.recv(2048)
        except socket.timeout:
            return got
        seq = int.from_bytes(data[2:4], "big")
        ssrc = int.from_bytes(data[8:12], "big")
        got.append([seq, ssrc, len(data) - 12])
        payload.write(data[12:])


def main():
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = 5000
    while True:
        try:
            rtp.bind(("", port))
            rtcp.bind(("", port + 1))
            break
        except OSError:
            rtp.close()
            rtcp.close()
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            port += 2
    sock = socket.create_connection((HOST, 554), timeout=20)
    buf = [b""]
    answers = []
    phases = {}
    with open(OUT, "wb") as payload:
        answers.append(request(sock, buf, "DESCRIBE", URL, 1, ["Accept: application/sdp"]))
        answers.append(request(sock, buf, "SETUP", URL + "/trackID=0", 2,
                               [f"Transport: RTP/AVP;unicast;client_port={port}-{port + 1}"]))
        session = answers[-1]["headers"].get("session", "").split(";")[0]
        answers.append(request(sock, buf, "PLAY", URL, 3, [f"Session: {session}", "Range: npt=0-"]))
        phases["play"] = receive(rtp, 3.0, None, payload)
        answers.append(request(sock, buf, "PAUSE", URL, 4, [f"Session: {session}"]))
        # What was in flight when PAUSE was answered, then silence.
        phases["pausing"] = receive(rtp, 0.3, None, payload)
        phases["paused"] = receive(rtp, 2.0, None, payload)
        if GATE:
            open(GATE + ".paused", "w").close()
            end = time.monotonic() + 60
            while not os.path.exists(GATE) and time.monotonic() < end:
                time.sleep(0.05)
            phases["gated"] = receive(rtp, 0.1, None, payload)
        answers.append(request(sock, buf, "PLAY", URL, 5, [f"Session: {session}"]))
        phases["resumed"] = receive(rtp, 2.0, None, payload)
        answers.append(request(sock, buf, "GET_PARAMETER", URL, 6, [f"Session: {session}"]))
        answers.append(request(sock, buf, "TEARDOWN", URL, 7, [f"Session: {session}"]))
        phases["stopping"] = receive(rtp, 0.3, None, payload)
        phases["torn_down"] = receive(rtp, 1.0, None, payload)
    for a in answers:
        print(f"answer {a['method']} {a['status']}")
        for k, v in a["headers"].items():
            print(f"header {a['method']} {k}: {v}")
    for name, got in phases.items():
        print(f"phase {name} {len(got)}")
        for seq, ssrc, n in got:
            print(f"rtp {name} {seq} {ssrc} {n}")


main()
