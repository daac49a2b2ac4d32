"""The node runtime: messages, nodes, graphs, the launcher and recording."""

from .messages import Limits, Message, Rejected
from .node import Latest, Node, Queue
from .params import NoParams

__all__ = ["Latest", "Limits", "Message", "Node", "NoParams", "Queue", "Rejected"]
