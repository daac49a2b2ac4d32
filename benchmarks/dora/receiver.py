"""dora-rs receiver node of benchmarks/messaging.py: the one-way latency of every measured sample,
read as a view of dora's shared-memory sample (no copy), and which samples never came, written as
JSON to BENCH_OUT so that the benchmark refuses a run that lost any."""

import json
import os
import time

import numpy as np  # both before the loop: imported on the first event, they would stall it
import pyarrow  # noqa: F401
from dora import Node

measured = int(os.environ["BENCH_TOTAL"])
latency_ns, seen = [], set()
node = Node()
for event in node:
    if event["type"] == "INPUT":
        now_ns = time.time_ns()
        data = event["value"].to_numpy()  # zero_copy_only: a view, or an error, never a copy
        capture_ns, seq = (int(x) for x in data[:16].view("<i8"))
        if seq >= 0:
            latency_ns.append(now_ns - capture_ns)
            seen.add(seq)
            if seq == measured - 1:
                break
        del data, event  # hands the sample back to the sender's pool
    elif event["type"] == "STOP":
        break
with open(os.environ["BENCH_OUT"], "w") as f:
    json.dump({"latency_ns": latency_ns, "missing": sorted(set(range(measured)) - seen)}, f)
