"""INT: task-generic prompt → instance-specific prompt by negative mining → mask."""
