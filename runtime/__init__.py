"""The node runtime: messages, nodes, graphs, the launcher and recording."""

from edgerun.runtime.fields import Array
from edgerun.runtime.messages import Limits, Message, Rejected
from edgerun.runtime.node import Latest, Node, Queue
from edgerun.runtime.params import NoParams

__all__ = ["Array", "Latest", "Limits", "Message", "Node", "NoParams", "Queue", "Rejected"]
