#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the seed corpus of fuzz-gguf: a few tiny GGUF files covering every value type, both
versions, a custom alignment, quantized tensors and a metadata-only file. Run from the repository
root: python3 tests/fuzz/make-gguf-seeds.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), "corpus", "gguf")


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return gstr(key) + struct.pack("<I", vtype) + payload


def gguf(version, kvs, tensors, alignment=32):
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    infos, blobs, off = b"", b"", 0
    for name, ttype, ne, data in tensors:
        infos += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        infos += struct.pack("<IQ", ttype, off)
        pad = (-len(data)) % alignment
        blobs += data + b"\0" * pad
        off += len(data) + pad
    body = head + infos
    body += b"\0" * ((-len(body)) % alignment)
    return body + blobs


every_type = [
    kv("u8", 0, struct.pack("<B", 7)), kv("i8", 1, struct.pack("<b", -7)),
    kv("u16", 2, struct.pack("<H", 7)), kv("i16", 3, struct.pack("<h", -7)),
    kv("u32", 4, struct.pack("<I", 7)), kv("i32", 5, struct.pack("<i", -7)),
    kv("f32", 6, struct.pack("<f", 0.5)), kv("bool", 7, b"\1"), kv("str", 8, gstr("hi")),
    kv("arr", 9, struct.pack("<IQ", 4, 2) + struct.pack("<II", 1, 2)),
    kv("sarr", 9, struct.pack("<IQ", 8, 2) + gstr("a") + gstr("bc")),
    kv("nest", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 0, 1) + b"\5"),
    kv("u64", 10, struct.pack("<Q", 7)), kv("i64", 11, struct.pack("<q", -7)),
    kv("f64", 12, struct.pack("<d", 0.25)),
]
f32 = struct.pack("<8f", *range(8))
q8_0 = struct.pack("<H", 0x3C00) + bytes(range(32))
q4_1 = struct.pack("<HH", 0x3C00, 0) + bytes(range(16))

os.makedirs(OUT, exist_ok=True)
seeds = {
    "every-type-v3": gguf(3, every_type, [("w", 0, [8], f32)]),
    "v2-quant": gguf(2, every_type[:3], [("a", 8, [32], q8_0), ("b", 3, [32], q4_1)]),
    "align64": gguf(3, [kv("general.alignment", 4, struct.pack("<I", 64))],
                         [("x", 0, [4, 2], f32), ("y", 1, [4], f32[:8])], alignment=64),
    "meta-only": gguf(3, every_type[8:10], []),
}
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
