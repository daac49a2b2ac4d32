"""dora-rs receiver node of benchmarks/messaging.py: one-way latency of every payload after the
BENCH_WARMUP first, written as JSON to BENCH_OUT."""

import json
import os
import struct
import time

from dora import Node

warmup = int(os.environ["BENCH_WARMUP"])
latency_ns = []
node = Node()
for event in node:
    if event["type"] == "INPUT":
        now_ns = time.time_ns()
        head = event["value"].slice(0, 16).to_numpy(zero_copy_only=False).tobytes()
        capture_ns, seq = struct.unpack("<qq", head)
        if seq >= warmup:
            latency_ns.append(now_ns - capture_ns)
    elif event["type"] == "STOP":
        break
with open(os.environ["BENCH_OUT"], "w") as f:
    json.dump(latency_ns, f)
