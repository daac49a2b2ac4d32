"""Reports episodes as they end: success, steps and time to goal, and the running success rate."""

from __future__ import annotations

from typing import Any

from edgerun.runtime import Message, Node, Queue


class EpisodeReport(Node):
    """Logs each ``episode`` message of an env node; the running totals are on its status."""

    inputs = {"episode": Queue(64, fields={"episode": int, "seed": int, "steps": int, "success": bool, "duration_s": float})}

    def setup(self) -> None:
        self.episodes: list[dict[str, Any]] = []

    def on_episode(self, msg: Message) -> None:
        record = {k: msg[k] for k in ("episode", "seed", "steps", "success", "duration_s")}
        self.episodes.append(record)
        successes = sum(e["success"] for e in self.episodes)
        self.log.info(
            "episode %d (seed %d): %s after %d steps, %.1f s — success rate %d/%d",
            record["episode"], record["seed"], "SUCCESS" if record["success"] else "failure",
            record["steps"], record["duration_s"], successes, len(self.episodes),
        )

    def status_fields(self) -> dict[str, Any]:
        done = len(self.episodes)
        successes = sum(e["success"] for e in self.episodes)
        return {"episodes": done, "successes": successes, "success_rate": successes / done if done else None}
