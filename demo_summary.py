"""What the demo did, read back from its MCAP recording: the episode's outcome and a summary figure.

The figure has four panels: the Wall episode (executed path over the goal frame, each plan's
commanded path), the planner's cost per CEM iteration for each plan, the reconstruction (the last
window's camera path, Sim(3)-aligned onto the robot camera's true path, and its points, top view)
and the last segmented frame that shows a camouflaged animal (else the last one) with its mask,
the animals' true outline and the instance prompt.
Topics follow ``graphs/demo.yaml``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edgerun.envs.wall import MAX_SPEED
from edgerun.evaluation.int_seg.component_metrics import mask_iou
from edgerun.evaluation.tracks_to_4d.metrics import ate
from edgerun.models.tracks_to_4d.geometry import align_trajectory, camera_centres
from edgerun.runtime.messages import Message
from edgerun.runtime.recording import read_recording

ENV, PLANNER = "env", "planner"
RECONSTRUCTION, TRUE_POSES = "reconstructor/reconstruction", "env/camera_pose"
MOVED_M = 0.05  # RMS spread of a window's true camera centres below which the camera stood still
TARGET_VISIBLE = 0.005  # share of a frame the camouflaged animals must cover to be scored
SEGMENTATION, SEGMENTED_FRAMES = "segmenter/mask", "env/camera"


def load_topics(path: Path) -> dict[str, list[Message]]:
    messages: dict[str, list[Message]] = defaultdict(list)
    for _, msg in read_recording(path):
        messages[msg.topic].append(msg)
    return messages


def episode_summary(path: Path) -> str:
    """A few lines: each episode's outcome and time to goal, the planner's plans."""
    topics = load_topics(path)
    lines = []
    for msg in topics.get(f"{ENV}/episode", []):
        reached = msg["steps_to_goal"] >= 0
        lines.append(
            f"[demo] episode {msg['episode']} (seed {msg['seed']}): {'GOAL REACHED' if msg['success'] else 'goal not reached'}"
            f" after {msg['steps']} steps, {msg['duration_s']:.1f} s"
            + (f"; first at the goal after {msg['steps_to_goal']} steps, {msg['time_to_goal_s']:.1f} s" if reached else "")
        )
        latencies = msg.get("action_latencies_ms")
        if latencies is not None and len(latencies):  # an env on its own clock (control_hz)
            lines.append(f"[demo]   real time: action latency p99 {np.percentile(latencies, 99):.1f} ms over {len(latencies)} "
                         f"answers, {msg['held_steps']} steps held for want of a plan, first plan after {msg['first_action_s']:.1f} s")
    if not lines:
        lines.append("[demo] no episode ended (the graph stopped before the env finished one)")
    ious, prompts, trusted = segmentation_scores(topics)
    if ious:
        masks = topics.get(SEGMENTATION, [])
        untrusted = sum(not m.get("trusted", True) for m in masks)
        kept = [iou for iou, ok in zip(ious, trusted) if ok]
        on_trusted = f"{np.mean(kept):.2f} on the {len(kept)} trusted" if kept else "none of them trusted"
        lines.append(f"[demo] segmentation: {len(ious)} recorded frames show a camouflaged animal; mask IoU with it "
                     f"{np.mean(ious):.2f} (mean; {on_trusted}), instance prompt = its category on {prompts.count('category')}, "
                     f"the task prompt on {prompts.count('task')}; "
                     f"{untrusted} of {len(masks)} masks published empty (the prompt's mining score too low to trust)")
    errors, still = reconstruction_errors(topics)
    if errors:
        feedforward, _ = reconstruction_errors(topics, feedforward=True)
        refined = sum(bool(window.get("refined")) for window, _ in true_windows(topics))
        lines.append(f"[demo] reconstruction: {len(errors)} windows with motion against the true camera path, ATE median "
                     f"feed-forward {np.median(feedforward):.3f} m, refined by bundle adjustment on {refined} of "
                     f"{len(true_windows(topics))} windows, published {np.median(errors):.3f} m; a camera that never moved: {np.median(still):.3f} m")
    plans = topics.get(f"{PLANNER}/plan", [])
    if plans:
        times = [m["plan_time_s"] for m in plans]
        lines.append(f"[demo] planner: {len(plans)} plans, {np.mean(times):.2f} s per plan (mean), final cost {plans[-1]['cost']:.4g}")
    return "\n".join(lines)


def _wall_panel(ax: Any, topics: dict[str, list[Message]]) -> None:

    observations = topics.get(f"{ENV}/observation", [])
    goals = topics.get(f"{ENV}/goal", [])
    if not observations or not goals:
        ax.set_title("Wall: no observations recorded")
        return
    episode = observations[0]["episode"]
    observations = [m for m in observations if m["episode"] == episode]
    goal = next(m for m in goals if m["episode"] == episode)
    size = goal["pixels"].shape[0]
    ax.imshow(np.maximum(goal["pixels"], observations[0]["pixels"]), extent=(0, 1, 1, 0))
    executed = np.array([m["proprio"][:2] for m in observations])
    for i, plan in enumerate(topics.get(f"{PLANNER}/plan", [])):
        start = _position_at(observations, plan)
        if start is None:
            continue
        steps = np.clip(plan["actions"], -1.0, 1.0)
        steps = steps / np.maximum(1.0, np.linalg.norm(steps, axis=1, keepdims=True))
        path = start + np.cumsum(steps * MAX_SPEED, axis=0)
        ax.plot(*np.vstack([start, path]).T, "--", color="tab:cyan", lw=1, label="planned (commanded)" if i == 0 else None)
    ax.plot(*executed.T, "-o", color="tab:orange", ms=2, lw=1.5, label="executed")
    ax.plot(*goal["proprio"][:2], "*", color="lime", ms=12, label="goal")
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.set_title(f"DINO-WM MPC on Wall ({size}x{size} frames)")
    ax.legend(loc="lower left", fontsize=7)


def _position_at(observations: list[Message], plan: Message) -> np.ndarray | None:
    """The position of the observation a plan started from: the one of its ``step`` (an anytime
    plan's), else the last one captured before it."""
    if plan.get("step") is not None:
        same = [m for m in observations if m.get("step") == plan["step"] and m.get("episode") == plan.get("episode")]
    else:
        same = [m for m in observations if m.capture_ns <= plan.capture_ns][-1:]
    return np.asarray(same[-1]["proprio"][:2]) if same else None


def _cost_panel(ax: Any, topics: dict[str, list[Message]]) -> None:
    plans = topics.get(f"{PLANNER}/plan", [])
    for i, plan in enumerate(plans):
        ax.plot(np.arange(1, len(plan["best_costs"]) + 1), plan["best_costs"], marker=".", label=f"plan {i + 1}")
    ax.set_xlabel("CEM iteration")
    ax.set_ylabel("best sampled cost")
    ax.set_yscale("log")
    ax.set_title("planning cost per CEM iteration")
    if plans:
        ax.legend(fontsize=7)


def true_windows(topics: dict[str, list[Message]]) -> list[tuple[Message, np.ndarray]]:
    """Each reconstructed window with the camera's true (T, 4, 4) poses at its frames (from the env's
    ``camera_pose``, matched by capture time), for the windows whose every frame has one."""
    truth = {m.capture_ns: np.asarray(m["cam_from_world"], np.float64) for m in topics.get(TRUE_POSES, [])}
    windows = [m for m in topics.get(RECONSTRUCTION, []) if not m["skipped"]]
    return [(m, np.stack([truth[int(t)] for t in m["stamps_ns"]])) for m in windows
            if all(int(t) in truth for t in m["stamps_ns"])]


def reconstruction_errors(topics: dict[str, list[Message]], feedforward: bool = False) -> tuple[list[float], list[float]]:
    """Per window in which the camera moved (``MOVED_M``): ATE (m, Sim(3)-aligned) of the published
    cameras (``feedforward``: the network's, before bundle adjustment), and of a camera that never
    moved (the best such guess, every frame at the true path's mean: its RMS spread). The robot
    stands still while it plans; those windows say nothing."""

    estimated, still = [], []
    for window, true in true_windows(topics):
        centres = camera_centres(true)
        spread = float(np.sqrt(((centres - centres.mean(0)) ** 2).sum(1).mean()))
        if spread >= MOVED_M:
            poses = window["feedforward_cam_from_world"] if feedforward and "feedforward_cam_from_world" in window else window["cam_from_world"]
            estimated.append(ate(np.asarray(poses, np.float64), true))
            still.append(spread)
    return estimated, still


def _reconstruction_panel(ax: Any, topics: dict[str, list[Message]]) -> None:

    windows = [m for m in topics.get(RECONSTRUCTION, []) if not m["skipped"]]
    skipped = len(topics.get(RECONSTRUCTION, [])) - len(windows)
    if not windows:
        ax.set_title(f"reconstruction: no windows ({skipped} skipped)")
        return
    with_truth = true_windows(topics)
    if not with_truth:  # no ground truth recorded: the estimate in its own frame
        last = windows[-1]
        centres = camera_centres(np.asarray(last["cam_from_world"], np.float64))
        ax.plot(centres[:, 0], centres[:, 2], "-o", ms=2, color="tab:red", label="cameras")
        ax.set_xlabel("x")
        ax.set_ylabel("z (depth)")
        ax.set_title(f"TracksTo4D: last of {len(windows)} windows, top view ({skipped} skipped)")
        ax.legend(fontsize=7)
        return
    last, true = with_truth[-1]
    aligned, transform = align_trajectory(np.asarray(last["cam_from_world"], np.float64), true)
    points = np.asarray(last["points_world"], np.float64)[-1].reshape(-1, 3)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points):  # into the true world frame (metres; Z down, so X-Y is the top view)
        points = transform.apply(points)
        spread = np.linalg.norm(points - np.median(points, axis=0), axis=1)
        points = points[spread <= np.percentile(spread, 95)]
        ax.scatter(points[:, 0], points[:, 1], s=3, c=-points[:, 2], cmap="viridis", label="points (last frame; colour: height)")
    true_centres, estimated_centres = camera_centres(true), camera_centres(aligned)
    ax.plot(true_centres[:, 0], true_centres[:, 1], "-", lw=2, color="0.3", label="true camera path")
    ax.plot(estimated_centres[:, 0], estimated_centres[:, 1], "-o", ms=2, color="tab:red", label="TracksTo4D (Sim(3)-aligned)")
    errors, _ = reconstruction_errors(topics)
    median = f"ATE median {np.median(errors):.3f} m" if errors else "camera still"
    ax.set_xlabel("world x (m)")
    ax.set_ylabel("world y (m)")
    ax.invert_yaxis()  # Wall's image axes: y down
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"TracksTo4D: last of {len(windows)} windows ({skipped} skipped), {median}", fontsize=9)
    ax.legend(fontsize=7)


def segmented_frames(topics: dict[str, list[Message]]) -> list[tuple[Message, Message]]:
    """(frame, mask message) pairs: every recorded mask with the frame it was computed on."""
    frames = {m.capture_ns: m for m in topics.get(SEGMENTED_FRAMES, [])}
    return [(frames[m.capture_ns], m) for m in topics.get(SEGMENTATION, []) if m.capture_ns in frames]


def _shows_target(frame: Message) -> bool:
    return "target_mask" in frame.arrays and np.asarray(frame["target_mask"]).mean() >= TARGET_VISIBLE


def segmentation_scores(topics: dict[str, list[Message]]) -> tuple[list[float], list[str], list[bool]]:
    """On the recorded frames that show a camouflaged animal (``TARGET_VISIBLE``): the mask's IoU with
    the animals' true mask (0 for an untrusted, empty one), what the instance prompt was ("category":
    the animals'; "task": the task prompt itself, no name explained the object better; "other"), and
    whether the mask was trusted."""

    ious, prompts, trusted = [], [], []
    for frame, result in segmented_frames(topics):
        if _shows_target(frame):
            mask, truth = np.asarray(result["mask"], bool), np.asarray(frame["target_mask"], bool)
            ious.append(mask_iou(mask, truth))  # the target is in view (_shows_target): the union is not empty
            if "target" in frame.fields and result["prompt"] == frame["target"]:
                prompts.append("category")
            else:
                prompts.append("task" if result["prompt"] == result.get("task_prompt") else "other")
            trusted.append(bool(result.get("trusted", True)))
    return ious, prompts, trusted


def _segmentation_panel(ax: Any, topics: dict[str, list[Message]]) -> None:
    pairs = segmented_frames(topics)
    if not pairs:
        ax.set_title("segmentation: no masks recorded")
        return
    showing = [pair for pair in pairs if _shows_target(pair[0])]
    frame, last = (showing or pairs)[-1]  # the last frame with a camouflaged animal in view, if any
    image, mask = np.asarray(frame["image"]), np.asarray(last["mask"], dtype=bool)
    overlay = image.astype(np.float32)
    overlay[mask] = 0.45 * overlay[mask] + 0.55 * np.array([255, 0, 255], np.float32)
    ax.imshow(overlay.astype(np.uint8))
    if "target_mask" in frame.arrays:
        ax.contour(np.asarray(frame["target_mask"], dtype=float), levels=[0.5], colors="lime", linewidths=1)
    ax.set_title(f"INT: '{last['task_prompt']}' → '{last['prompt']}' (magenta; ground truth in green)", fontsize=9)
    ax.axis("off")


def summary_figure(recording: Path, out: Path) -> Path:
    """The four-panel PNG of the module docstring."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topics = load_topics(recording)
    fig, axes = plt.subplots(2, 2, figsize=(11, 10))
    _wall_panel(axes[0, 0], topics)
    _cost_panel(axes[0, 1], topics)
    _reconstruction_panel(axes[1, 0], topics)
    _segmentation_panel(axes[1, 1], topics)
    fig.suptitle("edgerun demo: plan (DINO-WM), reconstruct (TracksTo4D), perceive (INT)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
