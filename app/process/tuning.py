"""Process-wide tuning for streaming large bodies, applied once per worker.

Both settings were chosen from bench/transfer.py on the 2-core target machine
(1 GiB upload / download through the real server, MB/s, medians of 3 runs;
this machine varies by about 15 % between runs):

=====================================  ==========  ============
stock Python and Hypercorn             390-450     1020-1060
GIL switch interval 0.5 ms             517         1372
 + Hypercorn reads of 1 MiB            535-713     1140-1260
=====================================  ==========  ============

The ceiling server in bench/ gets the same tuning, so ratios stay fair.
"""

from __future__ import annotations

import sys

# Worker threads (disk writes, reads and decryption) need the GIL back after
# each syscall. With the default 5 ms interval a busy event loop keeps them
# waiting that long for every 1 MiB batch, which serialises the pipeline.
SWITCH_INTERVAL = 0.0005

# Hypercorn reads the socket 64 KiB at a time and turns each read into one
# ASGI message; bigger reads mean fewer messages and less per-message Python.
RECEIVE_BYTES = 1024 * 1024


def tune_for_large_transfers() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        from hypercorn.asyncio import tcp_server
    except ImportError:  # served by another ASGI server
        return
    if getattr(tcp_server, "MAX_RECV", 0) < RECEIVE_BYTES:
        tcp_server.MAX_RECV = RECEIVE_BYTES
