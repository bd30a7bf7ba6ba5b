#!/usr/bin/env python3
"""Lists the device code embedded in an ELF file (e.g. build-cuda/Release/progan.node) like
`cuobjdump --list-elf --list-ptx`, for machines without cuobjdump: reads the .nv_fatbin section and
prints one line per entry: kind (ELF = SASS cubin, PTX), architecture, sizes, compressed or not."""
import struct
import sys


def section(path, name):
    with open(path, 'rb') as f:
        data = f.read()
    if data[:4] != b'\x7fELF' or data[4] != 2:
        raise SystemExit(f'{path}: not a 64-bit ELF file')
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3A)
    def sh(i):
        return struct.unpack_from('<IIQQQQIIQQ', data, shoff + i * shentsize)
    strtab = sh(shstrndx)
    for i in range(shnum):
        s = sh(i)
        n = data[strtab[4] + s[0]:].split(b'\0', 1)[0].decode()
        if n == name:
            return data[s[4]:s[4] + s[5]]
    return None


def main(path):
    fat = section(path, '.nv_fatbin')
    if fat is None:
        raise SystemExit(f'{path}: no .nv_fatbin section (no device code)')
    at, n = 0, 0
    while at + 16 <= len(fat):
        magic, version, hsize, fsize = struct.unpack_from('<IHHQ', fat, at)
        if magic != 0xBA55ED50:
            at += 8  # fat binaries are 8-byte aligned; skip padding
            continue
        e, end = at + hsize, at + hsize + fsize
        while e < end:
            kind, _, ehsize, size, csize, _, minor, major, arch = struct.unpack_from('<HHIQIIHHI', fat, e)
            flags, = struct.unpack_from('<Q', fat, e + 40)
            name = {1: 'PTX', 2: 'ELF'}.get(kind, f'kind{kind}')
            compressed = ' compressed' if csize or (flags & 0x2000) else ''
            print(f'{name} file {n + 1}: arch = sm_{arch}, code version = [{major},{minor}], {size} bytes{compressed}')
            n += 1
            e += ehsize + size
        at = end
    if n == 0:
        raise SystemExit(f'{path}: .nv_fatbin holds no entries')


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'build-cuda/Release/progan.node')
