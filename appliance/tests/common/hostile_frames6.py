#!/usr/bin/env python3
"""IPv6 edge cases for appliance/tests/lab_ipv6.rs: from the client
namespace, over an AF_PACKET socket, it sends a box neighbour discovery
from off the link (hop limit not 255), a duplicate address detection probe
for the box's address, IPv6 fragments, malformed extension headers, and a
Packet Too Big with a tiny MTU quoting a segment the box never sent. It
knows nothing of the box but its addresses; the test checks what the box
made of it.

Usage: hostile_frames6.py IFACE CLIENT_IP6 BOX_IP6 BOX_MAC COUNT
Prints `key=value` lines (frames sent per kind); exits 0 when it ran.
"""
import socket
import struct
import sys

ETH_P_IPV6 = 0x86DD


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def ip6(text):
    return socket.inet_pton(socket.AF_INET6, text)


def solicited_node(addr):
    return ip6("ff02::1:ff00:0")[:13] + addr[13:]


def multicast_mac(group):
    return b"\x33\x33" + group[12:]


def l4_csum(src, dst, proto, body):
    pseudo = src + dst + struct.pack("!IxxxB", len(body), proto)
    return csum(pseudo + body)


def icmpv6(src, dst, ty, code, rest):
    body = struct.pack("!BBH", ty, code, 0) + rest
    c = l4_csum(src, dst, 58, body)
    return body[:2] + struct.pack("!H", c) + body[4:]


def ipv6(src, dst, next_header, payload, hop_limit=64):
    return struct.pack("!IHBB", 6 << 28, len(payload), next_header, hop_limit) + src + dst + payload


def main():
    iface, client, box, box_mac, count = sys.argv[1:6]
    client, box, box_mac, count = ip6(client), ip6(box), mac_bytes(box_mac), int(count)
    with open("/sys/class/net/%s/address" % iface) as f:
        my_mac = mac_bytes(f.read().strip())
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    group = solicited_node(box)
    unspecified = bytes(16)

    def eth(dst, payload):
        return dst + my_mac + struct.pack("!H", ETH_P_IPV6) + payload

    ns_opt = struct.pack("!BB", 1, 1) + my_mac
    kinds = {
        # RFC 4861 §7.1.1: a router decremented it, so not from the link.
        "nd_bad_hop_limit": eth(multicast_mac(group), ipv6(client, group, 58, icmpv6(
            client, group, 135, 0, bytes(4) + box + ns_opt), hop_limit=64)),
        # RFC 4862 §5.4.2: unspecified source, the target's group, no option.
        "dad_probe": eth(multicast_mac(group), ipv6(unspecified, group, 58, icmpv6(
            unspecified, group, 135, 0, bytes(4) + box), hop_limit=255)),
        # A first fragment of a TCP SYN (Fragment header, M set).
        "fragment": eth(box_mac, ipv6(client, box, 44,
            struct.pack("!BBHI", 6, 0, 1, 0x1234) + bytes(20))),
        # Destination options whose length runs past the packet.
        "bad_extension": eth(box_mac, ipv6(client, box, 60,
            struct.pack("!BB", 6, 200) + bytes(30))),
        # Packet Too Big, MTU 68, quoting a segment the box never sent
        # (its sequence number is a guess).
        "ptb_blind": eth(box_mac, ipv6(client, box, 58, icmpv6(client, box, 2, 0,
            struct.pack("!I", 68) + ipv6(box, client, 6,
                struct.pack("!HHIIBBHHH", 80, 40000, 0xDEADBEEF, 0, 5 << 4, 0x10, 0, 0, 0))))),
    }
    for kind, frame in kinds.items():
        for _ in range(count):
            s.send(frame)
        print("%s=%d" % (kind, count))


if __name__ == "__main__":
    main()
