#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the seed corpus of fuzz-state: record sequences (see tests/fuzz/fuzz-state.c) that make
the fuzzed node lead and serve repairs, snapshots and reports; follow another leader and take
entries, heartbeats and a snapshot; merge push-pull state; and decode a snapshot. The layouts
are those of src/cluster/state-int.h. Run from the repository root:
python3 tests/fuzz/make-state-seeds.py"""
import hashlib
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), "corpus", "state")
CHANNEL, VERSION = 0x53, 1
HEAD, STATUS, APPEND, REPAIR, SNAP_REQ, SNAP_CHUNK, REPORT = range(1, 8)
LEADER, MEMBER_SET, MEMBER_DEL, RECORD_SET, RECORD_DEL = range(1, 6)


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def zigzag(v):
    return (v << 1) ^ (v >> 31) & 0xFFFFFFFF


def bfield(b):
    return varint(len(b)) + b


def node_id(i):
    return bytes([i + 1]) + bytes(15)


def claim(term, leader, prio=0):
    return varint(term) + node_id(leader) + varint(zigzag(prio))


def msg(mtype, body, with_claim=None):
    head = bytes([CHANNEL, VERSION, mtype])
    return head + (with_claim if with_claim is not None else b"") + body


def member(i, state=0, inc=1):
    addr = bytes([4, 10, 0, 0, i + 1]) + struct.pack("<H", 52416)
    meta = bytes([1, 1]) + struct.pack("<HHH", 52416, 52415, 52417) + varint(0) + varint(0)
    return bytes([state]) + varint(inc) + node_id(i) + addr + bfield(b"n%d" % i) + meta + bfield(b"")


def record(kind, owner, key, version, fmt, value):
    return varint(kind) + owner + bfield(key) + varint(version) + bytes([fmt]) + bfield(value)


def entry(index, term, etype, payload):
    return varint(index) + varint(term) + bytes([etype]) + bfield(payload)


def chain(prev, e):
    return hashlib.blake2b(prev + e, digest_size=16).digest()


def position(index, h, first=1, digest=bytes(16)):
    return varint(index) + h + varint(first) + digest


def table(term, leader, members, records):
    out = bytes([1]) + varint(term) + node_id(leader) + varint(0) + varint(len(members))
    out += b"".join(members) + varint(len(records)) + b"".join(records)
    return out


def rec(op_sender, op_kind, advance, data):
    op = (op_sender & 3) | (op_kind & 3) << 2 | (advance & 15) << 4
    return bytes([op]) + struct.pack("<H", len(data)) + data


def tick(advance):
    return rec(0, 3, advance, b"")


ZERO = bytes(16)
OBJECT = bytes(16)

# The fuzzed node (id 1) is the lowest id and claims after 500 ms; then members ask it for things.
lead = tick(15) + tick(15)
lead += rec(1, 0, 1, msg(REPAIR, varint(0) + ZERO + b"\x00", claim(0, 0)))
lead += rec(2, 0, 1, msg(REPAIR, varint(0) + ZERO + b"\x01", claim(1, 0)))
lead += rec(2, 0, 1, msg(SNAP_REQ, varint(0) + ZERO + varint(0), claim(1, 0)))
lead += rec(3, 0, 5, msg(REPORT, varint(2) + b"\x00" + record(1, node_id(3), b"", 1, 1, b"{}") +
                         b"\x01" + record(2, node_id(3), b"x", 2, 0, b"")))
lead += rec(0, 3, 15, b"\x01\x05\x06")

# Member 2 claims term 5; the fuzzed node follows it and takes a three-entry append.
entries = [entry(1, 5, LEADER, node_id(2) + varint(0)),
           entry(2, 5, MEMBER_SET, member(1)),
           entry(3, 5, RECORD_SET, record(64, OBJECT, b"model", 3, 1, b"[1,2]"))]
h = ZERO
for e in entries:
    h = chain(h, e)
follow = rec(2, 0, 1, msg(HEAD, position(0, ZERO), claim(5, 2)))
follow += rec(2, 0, 1, msg(APPEND, varint(0) + ZERO + varint(3) + b"".join(entries), claim(5, 2)))
follow += rec(2, 0, 1, msg(HEAD, position(3, h, 1, b"\xff" * 16), claim(5, 2)))
snap = table(5, 2, [member(0), member(2)], [record(1, node_id(2), b"", 1, 1, b"{\"gpu\":0}")])
follow += rec(2, 0, 2, msg(SNAP_CHUNK, varint(9) + b"\x42" * 16 + varint(len(snap)) + varint(0) +
                           bfield(snap), claim(5, 2)))
follow += rec(2, 0, 15, msg(HEAD, position(12, b"\x42" * 16), claim(5, 2)))

status = msg(STATUS, node_id(3) + position(4, b"\x07" * 16), claim(7, 3))
merge = rec(0, 1, 2, bfield(status) + bfield(b"\x99other module")) + tick(15)

snapshot = rec(0, 2, 0, table(3, 2, [member(0), member(2, 1, 9)],
                              [record(1, node_id(0), b"", 4, 1, b"{\"a\":1}"),
                               record(1, node_id(2), b"k", 1, 0, b"\x00\x01"),
                               record(65, OBJECT, b"inst-1", 7, 0, b"bin")]))

os.makedirs(OUT, exist_ok=True)
for name, data in [("lead", lead), ("follow", follow), ("merge", merge), ("snapshot", snapshot)]:
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
