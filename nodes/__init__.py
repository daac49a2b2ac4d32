"""Runnable nodes; each module holds one node class and its parameters."""
