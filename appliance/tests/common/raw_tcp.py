#!/usr/bin/env python3
"""A raw-socket TCP tester, as a conformance tester is: it reads and writes
whole Ethernet frames on an AF_PACKET socket, so it sees the box's frames
exactly as they reach the wire, checksums included, and no kernel TCP
stands between it and the box.

It speaks from an address the client namespace's kernel does not own (and
answers ARP for it), so the kernel neither resets the box's SYN-ACK nor
answers for it. Used by appliance/tests/lab_offload.rs.

Usage: raw_tcp.py IFACE SRC_IP DST_IP DST_MAC MODE PATH
  MODE "fetch":     handshake, GET PATH, read the response to the box's FIN,
                    close; every frame from the box is checked.
  MODE "syn-only":  send a SYN, take the SYN-ACK, reset; report its checksums.
Prints its report on stdout, one `key=value` a line; exits 0 whenever it
could report.
"""
import hashlib
import os
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
DEADLINE_S = 20.0


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def tcp_segment(src, dst, sport, dport, seq, ack, flags, payload=b"", options=b""):
    off = (20 + len(options)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, 65535, 0, 0)
    seg = hdr + options + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
    c = csum(pseudo + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def ipv4(src, dst, payload, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, 6, 0, src, dst)
    return hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:] + payload


class Tester:
    def __init__(self, iface, src_ip, dst_ip, dst_mac):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((iface, 0))
        self.mac = self.sock.getsockname()[4]
        self.src = socket.inet_aton(src_ip)
        self.dst = socket.inet_aton(dst_ip)
        self.dst_mac = mac_bytes(dst_mac)
        self.sport = 40000 + os.getpid() % 20000
        self.ident = 1
        self.frames = []  # every IPv4/TCP frame from the box to us
        self.bad = []
        self.deadline = time.monotonic() + DEADLINE_S

    def send_tcp(self, seq, ack, flags, payload=b"", options=b""):
        seg = tcp_segment(self.src, self.dst, self.sport, 80, seq, ack, flags, payload, options)
        pkt = ipv4(self.src, self.dst, seg, self.ident)
        self.ident += 1
        self.sock.send(self.dst_mac + self.mac + struct.pack("!H", ETH_P_IP) + pkt)

    def answer_arp(self, frame):
        # who-has SRC_IP: answer with our MAC, so the box can reach us.
        if len(frame) < 42 or frame[20:22] != b"\x00\x01" or frame[38:42] != self.src:
            return
        sha, spa = frame[22:28], frame[28:32]
        arp = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 2) + self.mac + self.src + sha + spa
        self.sock.send(sha + self.mac + struct.pack("!H", ETH_P_ARP) + arp)

    def recv_tcp(self):
        """The next TCP segment from the box to us, checked: (flags, seq,
        ack, payload), or None at the deadline."""
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                frame, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            if addr[2] == PACKET_OUTGOING or len(frame) < 14:
                continue
            etype = struct.unpack("!H", frame[12:14])[0]
            if etype == ETH_P_ARP:
                self.answer_arp(frame)
                continue
            if etype != ETH_P_IP or len(frame) < 34:
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            if ip[9] != 6 or ip[12:16] != self.dst or ip[16:20] != self.src:
                continue
            tcp = ip[ihl:total]
            if len(tcp) < 20 or struct.unpack("!H", tcp[2:4])[0] != self.sport:
                continue
            flags = tcp[13]
            ip_ok = csum(ip[:ihl]) == 0
            pseudo = ip[12:16] + ip[16:20] + struct.pack("!BBH", 0, 6, len(tcp))
            tcp_ok = csum(pseudo + tcp) == 0
            seq, ack = struct.unpack("!II", tcp[4:12])
            record = {"flags": flags, "len": len(tcp), "ip_ok": ip_ok, "tcp_ok": tcp_ok}
            self.frames.append(record)
            if not (ip_ok and tcp_ok):
                self.bad.append(record)
            return flags, seq, ack, tcp[(tcp[12] >> 4) * 4:]


def main():
    iface, src_ip, dst_ip, dst_mac, mode, path = sys.argv[1:7]
    t = Tester(iface, src_ip, dst_ip, dst_mac)
    report = {"handshake": False, "closed": False}
    isn = 0x1000_0000 + os.getpid()
    t.send_tcp(isn, 0, SYN, options=struct.pack("!BBH", 2, 4, 1460))
    seg = t.recv_tcp()
    if seg is None or seg[0] & (SYN | ACK) != SYN | ACK or seg[2] != isn + 1:
        report["error"] = "no SYN-ACK: %r" % (seg,)
    elif mode == "syn-only":
        report["synack_ip_ok"] = t.frames[0]["ip_ok"]
        report["synack_tcp_ok"] = t.frames[0]["tcp_ok"]
        t.send_tcp(isn + 1, 0, RST)
    else:
        report["handshake"] = True
        rcv = (seg[1] + 1) & 0xFFFFFFFF
        snd = isn + 1
        request = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, dst_ip)).encode()
        t.send_tcp(snd, rcv, ACK)
        t.send_tcp(snd, rcv, PSH | ACK, request)
        snd += len(request)
        body = bytearray()
        while True:
            seg = t.recv_tcp()
            if seg is None:
                report["error"] = "the box stopped sending before its FIN"
                break
            flags, seq, _, payload = seg
            if flags & RST:
                report["error"] = "RST from the box"
                break
            if seq == rcv and payload:
                body += payload
                rcv = (rcv + len(payload)) & 0xFFFFFFFF
            if flags & FIN and (seq + len(payload)) & 0xFFFFFFFF == rcv:
                rcv = (rcv + 1) & 0xFFFFFFFF
                t.send_tcp(snd, rcv, FIN | ACK)
                # The box's ACK of our FIN is checked like every frame.
                last = t.recv_tcp()
                report["closed"] = last is not None and last[0] & ACK != 0
                break
            t.send_tcp(snd, rcv, ACK)
        head, _, content = bytes(body).partition(b"\r\n\r\n")
        report["status"] = head.split(b"\r\n", 1)[0].decode(errors="replace")
        report["body_len"] = len(content)
        report["body_sha256"] = hashlib.sha256(content).hexdigest()
    report["frames"] = len(t.frames)
    report["bad"] = len(t.bad)
    report["bad_frames"] = " ".join("flags=%#x/len=%d/ip_ok=%s/tcp_ok=%s" % (
        b["flags"], b["len"], b["ip_ok"], b["tcp_ok"]) for b in t.bad[:20])
    for key, value in report.items():
        if isinstance(value, bool):
            value = str(value).lower()
        print("%s=%s" % (key, value))


if __name__ == "__main__":
    main()
