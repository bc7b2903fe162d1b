#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Extract the uncompressed vmlinux ELF from an x86 bzImage (vmlinuz).

usage: extract-vmlinux.py VMLINUZ OUT

A bzImage is a real-mode setup stub followed by a protected-mode part whose
header (the "boot protocol" setup header, Documentation/arch/x86/boot.rst)
says where the compressed kernel sits: payload_offset (0x248) and
payload_length (0x24c), counted from the start of the protected-mode part,
which begins after (setup_sects + 1) * 512 bytes.  The payload is the vmlinux
ELF compressed with whatever the kernel was configured with; we recognise it
by its magic.  zstd has no module in this Python, so it goes through the
zstd command.
"""
import gzip
import lzma
import struct
import subprocess
import sys


def payload(image: bytes) -> bytes:
    if image[0x202:0x206] != b"HdrS":
        sys.exit("extract-vmlinux: not a bzImage (no HdrS boot header)")
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return image[start:start + length]


def decompress(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        # The kernel's xz payload may carry trailing padding: decode one stream.
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        # The kernel appends its size (4 bytes) after the frame; zstd -dc
        # reports that as trailing garbage but has written the frame already.
        proc = subprocess.run(["zstd", "-dcq"], input=data, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, check=False)
        return proc.stdout
    if data[:3] == b"\x5d\x00\x00":
        return lzma.decompress(data, format=lzma.FORMAT_ALONE)
    sys.exit("extract-vmlinux: unsupported payload compression (magic %s)" % data[:6].hex())


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    with open(sys.argv[1], "rb") as f:
        image = f.read()
    elf = decompress(payload(image))
    if elf[:4] != b"\x7fELF":
        sys.exit("extract-vmlinux: decompressed payload is not an ELF file")
    with open(sys.argv[2], "wb") as f:
        f.write(elf)


if __name__ == "__main__":
    main()
