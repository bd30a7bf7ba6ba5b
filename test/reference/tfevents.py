#!/usr/bin/env python3
"""Independent reader of TensorBoard event files (no tensorflow / tensorboard needed).

Usage: tfevents.py FILE  → prints {"events": [...]} as JSON on stdout; exits 1 with a message on
stderr when any record's framing, length CRC or data CRC is wrong, or a protobuf is malformed.

Own bitwise CRC-32C (no table, unlike the writer) and own protobuf decoding of
Event {1 wall_time double, 2 step int64, 3 file_version string, 5 summary Summary},
Summary {1 repeated Value}, Value {1 tag, 2 simple_value float, 4 image Image},
Image {1 height, 2 width, 3 colorspace, 4 encoded_image_string bytes}.
"""
import base64
import json
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "crc32c self-test"


class Fail(Exception):
    pass


def read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise Fail("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise Fail("varint too long")


def fields(buf):
    """Yields (field number, wire type, value) for a whole message."""
    pos = 0
    while pos < len(buf):
        k, pos = read_varint(buf, pos)
        field, wire = k >> 3, k & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise Fail("truncated fixed64")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise Fail("truncated length-delimited field %d" % field)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            if pos + 4 > len(buf):
                raise Fail("truncated fixed32")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise Fail("unsupported wire type %d" % wire)
        yield field, wire, value


def int64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def expect(wire, want, what):
    if wire != want:
        raise Fail("%s has wire type %d, expected %d" % (what, wire, want))


def decode_image(buf):
    out = {}
    names = {1: "height", 2: "width", 3: "colorspace"}
    for field, wire, value in fields(buf):
        if field in names:
            expect(wire, 0, names[field])
            out[names[field]] = int64(value)
        elif field == 4:
            expect(wire, 2, "encoded_image_string")
            out["encoded_image_string"] = base64.b64encode(value).decode("ascii")
            out["encoded_length"] = len(value)
    return out


def decode_value(buf):
    out = {}
    for field, wire, value in fields(buf):
        if field == 1:
            expect(wire, 2, "tag")
            out["tag"] = value.decode("utf-8")
        elif field == 2:
            expect(wire, 5, "simple_value")
            out["simple_value"] = struct.unpack("<f", value)[0]
        elif field == 4:
            expect(wire, 2, "image")
            out["image"] = decode_image(value)
    return out


def decode_event(buf):
    out = {"step": 0}
    for field, wire, value in fields(buf):
        if field == 1:
            expect(wire, 1, "wall_time")
            out["wall_time"] = struct.unpack("<d", value)[0]
        elif field == 2:
            expect(wire, 0, "step")
            out["step"] = int64(value)
        elif field == 3:
            expect(wire, 2, "file_version")
            out["file_version"] = value.decode("utf-8")
        elif field == 5:
            expect(wire, 2, "summary")
            values = []
            for f, w, v in fields(value):
                if f == 1:
                    expect(w, 2, "Summary.value")
                    values.append(decode_value(v))
            out["summary"] = values
    return out


def read_records(data):
    pos = 0
    index = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise Fail("record %d: truncated header at byte %d" % (index, pos))
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if masked(header) != length_crc:
            raise Fail("record %d: length CRC mismatch at byte %d" % (index, pos))
        start, end = pos + 12, pos + 12 + length
        if end + 4 > len(data):
            raise Fail("record %d: truncated data at byte %d" % (index, pos))
        body = data[start:end]
        (data_crc,) = struct.unpack("<I", data[end:end + 4])
        if masked(body) != data_crc:
            raise Fail("record %d: data CRC mismatch at byte %d" % (index, pos))
        yield body
        pos = end + 4
        index += 1


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    try:
        events = [decode_event(body) for body in read_records(data)]
    except Fail as e:
        print("tfevents.py: %s" % e, file=sys.stderr)
        sys.exit(1)
    json.dump({"bytes": len(data), "events": events}, sys.stdout)


if __name__ == "__main__":
    main()
