"""dora-rs sender node of benchmarks/messaging.py: dora's zero-copy send (``send_output_raw``: the
node writes into a sample of its shared-memory pool, sent without a copy), one per timer tick.

Each sample carries the send time (``time.time_ns()``) and a sequence number in its first 16
bytes; the rest is left as it is, as edgerun's leg leaves its loaned slot. Warm-up samples
(seq -1) go out until both BENCH_WARMUP of them and BENCH_WARMUP_S seconds have passed, so the
receiver's start (its imports, its subscription, the backlog meanwhile) is never measured; two
trailing samples (seq -2) follow the last measured one so that it is not lost when this node ends.
"""

import os
import struct
import time

from dora import Node

HEADER = struct.Struct("<qq")
size = int(os.environ["BENCH_BYTES"])
measured = int(os.environ["BENCH_TOTAL"])
warmup, warmup_s = int(os.environ["BENCH_WARMUP"]), float(os.environ["BENCH_WARMUP_S"])

node = Node()
warm = seq = trailing = 0
started = None


def send(tag: int) -> None:
    with node.send_output_raw("data", size) as sample:  # sent when the block ends
        view = memoryview(sample)
        HEADER.pack_into(view, 0, time.time_ns(), tag)
        view.release()  # dora refuses to send a sample with a view still open


for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        started = time.monotonic() if started is None else started
        if warm < warmup or time.monotonic() - started < warmup_s:
            send(-1)
            warm += 1
        elif seq < measured:
            send(seq)
            seq += 1
        else:
            send(-2)
            trailing += 1
            if trailing >= 2:
                break
    elif event["type"] == "STOP":
        break
