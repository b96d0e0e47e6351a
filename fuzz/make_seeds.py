#!/usr/bin/env python3
"""Builds the fuzz seed corpus from the project's golden captures, configs and example
requests. Run from anywhere: python3 fuzz/make_seeds.py"""
import glob
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)


def frames(path):
    """The frames of a classic pcap file, either byte order."""
    d = open(path, "rb").read()
    order = ">" if d[:4] == bytes.fromhex("a1b2c3d4") else "<"
    off, out = 24, []
    while off + 16 <= len(d):
        _, _, incl, _ = struct.unpack(order + "IIII", d[off:off + 16])
        off += 16
        out.append(d[off:off + incl])
        off += incl
    return out


def write(target, name, data):
    os.makedirs(os.path.join(here, "corpus", target), exist_ok=True)
    with open(os.path.join(here, "corpus", target, name), "wb") as f:
        f.write(data)


def partial_inner(wrapped):
    """The VXLAN header + inner frame `wrapped` with the inner IPv4 TCP/UDP checksum left
    partial (the folded pseudo-header sum), as a kernel VTEP on a veth sends it; None if the
    inner frame is not IPv4 TCP or UDP."""
    eth = 8
    if len(wrapped) < eth + 34 or wrapped[eth + 12:eth + 14] != b"\x08\x00":
        return None
    ip = eth + 14
    ihl = (wrapped[ip] & 0x0F) * 4
    proto, total = wrapped[ip + 9], struct.unpack(">H", wrapped[ip + 2:ip + 4])[0]
    at = {6: 16, 17: 6}.get(proto)
    l4 = ip + ihl
    if at is None or ip + total > len(wrapped) or l4 + at + 2 > ip + total:
        return None
    words = struct.unpack(">4H", wrapped[ip + 12:ip + 20])
    pseudo = sum(words) + proto + total - ihl
    while pseudo >> 16:
        pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    return wrapped[:l4 + at] + struct.pack(">H", pseudo) + wrapped[l4 + at + 2:]


golden = os.path.join(root, "tests", "golden", "seed000")
local = frames(os.path.join(golden, "in-tap1_0.pcap")) + frames(os.path.join(golden, "in-tap2_0.pcap"))
for i, f in enumerate(local):
    write("local_ingress", f"seed{i}", bytes([i % 4]) + f)
for i, f in enumerate(frames(os.path.join(golden, "in-eth0.pcap"))):
    write("underlay_ingress", f"raw{i}", bytes([0]) + f)
    write("underlay_ingress", f"wrapped{i}", bytes([1]) + f[42:])
    # The same inner frames under IPv6 outer headers (mode bit 1: the IPv6-underlay switch).
    write("underlay_ingress", f"wrapped6_{i}", bytes([3]) + f[42:])
    # With the inner checksum partial: the checksum pass leaves it for the egress.
    partial = partial_inner(f[42:])
    if partial is not None:
        write("underlay_ingress", f"partial{i}", bytes([1]) + partial)
for p in glob.glob(os.path.join(root, "configs", "*.toml")) + [os.path.join(root, "packaging", "xvtep.toml")]:
    write("config", os.path.basename(p), open(p, "rb").read())
requests = [
    '{"v":1,"cmd":"vlan_show"}',
    '{"v":1,"cmd":"fdb_add","op":"append","mac":"00:00:00:00:00:00","dev":"vxlan0","dst":"10.0.0.2","vni":2}',
    '{"v":1,"cmd":"link_set","dev":"p1","hairpin":true}',
    '{"v":1,"cmd":"neigh_add","ip":"10.0.0.9","mac":"02:00:00:00:00:09","vni":2}',
    '{"v":1,"cmd":"monitor","fdb":true,"miss":false}',
    '{"v":1,"cmd":"save","path":"/tmp/x.toml"}',
]
for i, r in enumerate(requests):
    write("control_protocol", f"req{i}", r.encode())
print("seeds:", {t: len(os.listdir(os.path.join(here, "corpus", t))) for t in sorted(os.listdir(os.path.join(here, "corpus")))})
