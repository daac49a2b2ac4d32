"""Request/reply with a node's services: ``[service, header, buffers...]`` over DEALER → ROUTER.

A reply is a normal message; one carrying an ``error`` field raises :class:`ServiceError`.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Mapping

import zmq

from edgerun.errors import ServiceError
from edgerun.runtime import messages
from edgerun.runtime.messages import Limits, Message, Rejected

_request_seq = itertools.count(1)


def call_socket(
    socket: zmq.Socket,
    service: str,
    data: Mapping[str, Any],
    timeout_s: float,
    limits: Limits = Limits(),
    sender: str = "client",
) -> Message:
    """Send one request on a connected DEALER and wait for its reply (matched by sequence)."""
    seq = next(_request_seq)
    now_ns = time.time_ns()
    socket.send_multipart(messages.encode(service, data, seq=seq, capture_ns=now_ns, sender=sender), copy=False)
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if not socket.poll(int(left * 1000) + 1, zmq.POLLIN):
            break
        try:
            reply = messages.decode(socket.recv_multipart(copy=False), limits)
        except Rejected:
            continue
        if reply.seq != seq:  # a reply to an earlier, timed-out request
            continue
        if "error" in reply.fields:
            raise ServiceError(f"service '{service}' of '{reply.sender}': {reply.fields['error']}")
        return reply
    raise TimeoutError(f"service '{service}': no reply within {timeout_s:g} s")


def call(endpoint: str, service: str, timeout_s: float = 5.0, context: zmq.Context | None = None, **data: Any) -> Message:
    """One-off call from outside a graph (CLI, tests, scripts)."""
    context = context or zmq.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    try:
        socket.connect(endpoint)
        return call_socket(socket, service, data, timeout_s)
    finally:
        socket.close()
