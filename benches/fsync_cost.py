#!/usr/bin/env python3
"""fsync / fdatasync cost of the filesystem holding DIR: 200 appends of 4 KiB and of
64 KiB, each followed by a sync, as the persistent queue's writer does per group.

Usage: python3 benches/fsync_cost.py [DIR]   (default: the current directory)
"""
import os
import sys
import tempfile
import time


def measure(fd, size, sync):
    buf = b"x" * size
    lat = []
    for _ in range(200):
        os.write(fd, buf)
        t = time.perf_counter()
        sync(fd)
        lat.append(time.perf_counter() - t)
    lat.sort()
    return lat[100] * 1e3, lat[197] * 1e3


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    with tempfile.NamedTemporaryFile(dir=d) as f:
        for name, sync in (("fsync", os.fsync), ("fdatasync", os.fdatasync)):
            for size in (4096, 65536):
                p50, p99 = measure(f.fileno(), size, sync)
                print(f"{name:9} after {size:6d} B: p50 {p50:.3f} ms, p99 {p99:.3f} ms")


if __name__ == "__main__":
    main()
