"""A running graph served live over the Foxglove WebSocket protocol (the Foxglove app's "Open
connection", ``ws://localhost:8765``), with the standard views that recordings use: the same
channel names and schemas, so one Foxglove layout fits both (docs/nodes.md)."""

from __future__ import annotations

from typing import Mapping

import foxglove

from edgerun.runtime.foxglove_messages import StandardChannel, standard_channels
from edgerun.runtime.messages import Message
from edgerun.runtime.views import View


class FoxgloveView:
    """A Foxglove WebSocket server on ``host:port`` (port 0: any free one, see :attr:`port`) that
    logs each message's standard views (``views``: ``{topic: views}``). Only what a client
    subscribes to is encoded: a connected app that shows one image costs one image's encoding."""

    def __init__(self, name: str, views: Mapping[str, tuple[View, ...]], host: str = "127.0.0.1", port: int = 8765,
                 jpeg_quality: int | None = None):
        self._context = foxglove.Context()  # not the SDK's global one: a recorder beside it stays separate
        self._channels: dict[str, list[tuple[foxglove.Channel, StandardChannel]]] = {}
        for topic, topic_views in views.items():
            self._channels[topic] = [
                (foxglove.Channel(c.topic, schema=c.schema, message_encoding=c.message_encoding, context=self._context), c)
                for c in standard_channels(topic, topic_views, jpeg_quality)
            ]
        self._server = foxglove.start_server(name=name, host=host, port=port, context=self._context)
        self.logged = 0

    @property
    def port(self) -> int:
        return self._server.port

    def log(self, msg: Message) -> None:
        for channel, standard in self._channels.get(msg.topic, ()):
            if not channel.has_sinks():
                continue  # no client subscribed: skip the encoding
            data = standard.encode(msg)
            if data is not None:
                channel.log(data, log_time=msg.capture_ns)
                self.logged += 1

    def close(self) -> None:
        self._server.stop()
        for channels in self._channels.values():
            for channel, _ in channels:
                channel.close()
