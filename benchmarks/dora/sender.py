"""dora-rs sender node of benchmarks/messaging.py: BENCH_TOTAL payloads of BENCH_BYTES, stamped with
the send time and a sequence number in their first 16 bytes, one per timer tick."""

import os
import struct
import time

import numpy as np
import pyarrow as pa
from dora import Node

size, total = int(os.environ["BENCH_BYTES"]), int(os.environ["BENCH_TOTAL"])
payload = np.zeros(size, dtype=np.uint8)
node = Node()
sent = 0
for event in node:
    if event["type"] == "INPUT" and event["id"] == "tick":
        payload[:16] = np.frombuffer(struct.pack("<qq", time.time_ns(), sent), dtype=np.uint8)
        node.send_output("data", pa.array(payload))
        sent += 1
        if sent >= total:
            break
    elif event["type"] == "STOP":
        break
