"""``edgerun eval MODEL``: evaluate a trained model on held-out data, beside its baselines."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgerun import shipped
from edgerun.envs import env_name


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained model in closed loop")
    evaluate = p.add_subparsers(dest="eval_command", required=True)
    e = evaluate.add_parser("dino-wm", help="MPC success rate, plan time, random-action baseline")
    e.add_argument("--checkpoint", help="default: checkpoints/dino_wm_<env>/model.pt, the shipped model")
    e.add_argument("--env", default="edgerun/Wall-v0", help="edgerun/Wall-v0 or edgerun/PointMaze-v0")
    e.add_argument("--episodes", type=int, default=50)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", help="write the result here")
    e.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"),
                   help="what scores the CEM samples: the torch model, or the exported planning cost on ONNX Runtime")
    e.add_argument("--cost-engine", help="with --backend onnxruntime: an exported planning cost .onnx (default: export the checkpoint's)")
    e.add_argument("--workers", type=int, default=1, help="torch backend: episodes in N processes of one thread (same result)")
    e.add_argument("--max-steps", type=int, metavar="N",
                   help="env steps per episode, scored after them (default: the env's time limit, 300: 12 plans of 25 steps)")
    e.add_argument("--planner", default="free-space", choices=("free-space", "paper", "gd"),
                   help="free-space: the paper's CEM on the distance through free space (default); paper: the paper's "
                        "planner exactly; gd: the paper's gradient descent")
    e.add_argument("--official-episodes", action="store_true",
                   help="the official evaluation's 50 start/goal pairs (seeds 99n+1, its samplers) instead of seeded resets")
    e.add_argument("--realtime", action="store_true",
                   help="run the graph's env and planner nodes in real processes: the env steps at --control-hz, the "
                        "planner replans continuously (anytime) and answers at once; reports action latency and replan rate")
    e.add_argument("--control-hz", type=float, default=10.0, help="with --realtime: env steps per second of wall clock")
    e.add_argument("--samples", type=int, default=100, help="with --realtime: CEM samples per anytime plan")
    e.add_argument("--iterations", type=int, default=3, help="with --realtime: CEM iterations per anytime plan")
    e.set_defaults(func=eval_dino_wm)
    e = evaluate.add_parser("int-seg", help="INT vs no negative mining vs generic prompt: MAE, Fβ, Eφ, Sα, mIoU, latency")
    e.add_argument("--components", default=shipped("int_seg/components.yaml"))
    e.add_argument("--images", "--episodes", type=int, help="held-out generated images (default 100; with --holdout-families, per family, default 20)")
    e.add_argument("--seed", type=int, help="generated split (default: 2, the held-out test seed)")
    e.add_argument("--json", help="write the result here")
    e.add_argument("--holdout-families", action="store_true",
                   help="instead: 320x240 images of camouflage families the components never trained on (other textures, "
                        "palettes, lighting, noise, scales, clutter, an unseen category name), beside the empty mask "
                        "(--images per family, default 20)")
    e.add_argument("--robot-camera", action="store_true",
                   help="on 480x360 views of the Wall robot's camera (the demo's perception input) instead")
    e.add_argument("--calibrate-gate", action="store_true",
                   help="instead: choose the components' min_mining_score (masks under it are not trusted) on validation "
                        "images of the training families (--images, default 60)")
    e.set_defaults(func=eval_int_seg, check=check_int_seg)
    e = evaluate.add_parser("tracks-to-4d", help="ATE, RPE, AbsRel, δ<1.25: feed-forward, +BA, +FT, classical; end to end through KLT")
    e.add_argument("--checkpoint", default=shipped("tracks_to_4d/model.pt"))
    e.add_argument("--scenes", type=int, help="held-out generated scenes (default 20; with --holdout-families, per family and window length, default 6)")
    e.add_argument("--rendered", type=int, default=2, help="rendered image sequences for the end-to-end check (0: skip)")
    e.add_argument("--fine-tune-steps", type=int, default=50, help="Adam steps (lr 1e-3) of test-time fine-tuning per window")
    e.add_argument("--holdout-families", action="store_true",
                   help="instead: scene families training never sees (camera paths, backgrounds, lenses), windows of 10-40 frames of "
                        "~1,000 tracks, feed-forward and +BA beside the classical baseline, a camera that never moves and a constant depth "
                        "(the bars of docs/tracks_to_4d.md)")
    e.add_argument("--window-lengths", default="10,20,40", help="with --holdout-families: window lengths T")
    e.add_argument("--json", help="write the result here")
    e.set_defaults(func=eval_tracks_to_4d, check=check_tracks_to_4d)
    e = evaluate.add_parser("budget-forcing", help="s1 budget forcing on held-out robot word problems: accuracy, Control, Scaling per budget")
    e.add_argument("--models", nargs="+", default=["gemma3-270m", "qwen2.5-coder-0.5b"], help="registry language models")
    e.add_argument("--budgets", nargs="+", type=int, default=[32, 64, 128, 256], help="thinking budgets in tokens")
    e.add_argument("--per-family", type=int, default=10, help="held-out tasks per problem family (6 families)")
    e.add_argument("--json", help="write the result here")
    e.set_defaults(func=eval_budget_forcing)
    e = evaluate.add_parser("rsd", help="reward-guided speculative decoding vs draft only and target only on held-out "
                                        "robot word problems: accuracy, target tokens, wall time")
    e.add_argument("--draft", default="gemma3-270m-distilled", help="registry language model that drafts each step")
    e.add_argument("--target", default="qwen2.5-coder-0.5b", help="registry language model that rewrites doubted steps")
    e.add_argument("--prm", default=shipped("language/prm"), help="process reward model folder (edgerun train language-prm)")
    e.add_argument("--thresholds", nargs="+", type=float, default=[0.5, 0.7, 0.9], help="reward thresholds δ")
    e.add_argument("--budget", type=int, default=128, help="thinking budget in tokens")
    e.add_argument("--per-family", type=int, default=5, help="held-out tasks per problem family (6 families)")
    e.add_argument("--json", help="write the result here")
    e.set_defaults(func=eval_rsd)
    e = evaluate.add_parser("guard", help="the constitutional command guards on held-out requests and responses: input "
                                          "recall and false positives, output halt rate, added time")
    e.add_argument("--guards", default=shipped("language/guard"), help="guard folder (edgerun train language-guard)")
    e.add_argument("--model", default="qwen2.5-coder-0.5b",
                   help="registry language model whose tokens the output guard streams and whose generation it is timed "
                        "against ('none': words, no timing)")
    e.add_argument("--per-template", type=int, default=24, help="requests per held-out template")
    e.add_argument("--halt-before", type=int, default=32, help="an unsafe response counts as halted before this token")
    e.add_argument("--overhead-prompts", type=int, default=12, help="generations timed with the output guard")
    e.add_argument("--json", help="write the result here")
    e.set_defaults(func=eval_guard)

    e = evaluate.add_parser("command-goals", help="the language node's command -> goal path on held-out commands: "
                                                  "right goals, no goal for commands naming no place, seconds")
    e.add_argument("--model", default="qwen2.5-coder-0.5b", help="registry language model")
    e.add_argument("--guards", help="guard folder (default: the shipped checkpoints/language/guard)")
    e.add_argument("--count", type=int, default=40, help="held-out goal commands (and at most as many with no place)")
    e.add_argument("--budget", type=int, default=32, help="thinking tokens")
    e.add_argument("--json", help="write the result here")
    e.set_defaults(func=eval_command_goals)


def eval_dino_wm(args: argparse.Namespace) -> int:
    from edgerun.evaluation.dino_wm.evaluate import eval_main  # lazy: torch

    checkpoint = args.checkpoint or shipped(f"dino_wm_{env_name(args.env)}/model.pt")
    if args.realtime:
        from edgerun.evaluation.dino_wm.realtime import RealtimeConfig, realtime_main  # lazy: gymnasium (0.4 s)

        config = RealtimeConfig(control_hz=args.control_hz, samples=args.samples, iterations=args.iterations,
                                max_steps=args.max_steps)  # fmt: skip
        return realtime_main(checkpoint, args.env, args.episodes, args.seed, config, args.official_episodes, args.planner,
                             args.json)  # fmt: skip
    return eval_main(checkpoint, args.env, args.episodes, args.seed, args.json, args.backend, args.cost_engine, args.workers,
                     args.max_steps, args.planner, args.official_episodes)


def check_int_seg(args: argparse.Namespace) -> str | None:
    modes = [flag for flag, on in (("--holdout-families", args.holdout_families), ("--robot-camera", args.robot_camera),
                                   ("--calibrate-gate", args.calibrate_gate)) if on]
    if len(modes) > 1:
        return f"{' and '.join(modes)}: one evaluation at a time"
    if args.images is not None and args.images < 1:
        return f"--images: at least 1, got {args.images}"
    if args.seed is not None and modes and modes[0] != "--robot-camera":
        return f"--seed: {modes[0]} draws its own split (held-out families: the test seed; the gate: the validation seed)"
    return None


def eval_int_seg(args: argparse.Namespace) -> int:
    if args.calibrate_gate:
        from edgerun.evaluation.int_seg.gate import calibrate_main  # lazy: torch

        return calibrate_main(args.components, args.images or 60, args.json)
    if args.holdout_families:
        from edgerun.evaluation.int_seg.families import families_main  # lazy: torch

        return families_main(args.components, args.images or 20, args.json)
    from edgerun.evaluation.int_seg.evaluate import eval_main  # lazy: torch

    return eval_main(args.components, args.images or 100, args.seed, args.json, args.robot_camera)


def eval_tracks_to_4d(args: argparse.Namespace) -> int:
    if args.holdout_families:
        from edgerun.evaluation.tracks_to_4d.families import families_main  # lazy: torch

        return families_main(args.checkpoint, args.scenes or 6, args.json, window_lengths(args.window_lengths))
    from edgerun.evaluation.tracks_to_4d.pipeline import eval_main  # lazy: torch

    return eval_main(args.checkpoint, args.scenes or 20, args.json, args.rendered, args.fine_tune_steps)


def window_lengths(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(","))


def check_tracks_to_4d(args: argparse.Namespace) -> str | None:
    parts = args.window_lengths.split(",")
    if not all(p.strip().isdigit() and int(p) >= 2 for p in parts):
        return f"--window-lengths: window lengths of 2 frames or more joined by commas, got {args.window_lengths!r}"
    if args.scenes is not None and args.scenes < 1:
        return f"--scenes: at least 1, got {args.scenes}"
    return None


def eval_budget_forcing(args: argparse.Namespace) -> int:
    from edgerun.evaluation.language.budget_forcing import eval_main  # lazy: onnxruntime-genai

    return eval_main(args.models, args.budgets, args.per_family, args.json)


def eval_guard(args: argparse.Namespace) -> int:
    from edgerun.evaluation.language.guard import eval_main  # lazy: onnxruntime-genai

    return eval_main(Path(args.guards), None if args.model == "none" else args.model, args.per_template, args.halt_before,
                     args.overhead_prompts, args.json)


def eval_command_goals(args: argparse.Namespace) -> int:
    from edgerun.evaluation.language.command_goals import eval_main  # lazy: onnxruntime-genai

    return eval_main(args.model, args.guards, args.count, args.budget, args.json)


def eval_rsd(args: argparse.Namespace) -> int:
    from edgerun.evaluation.language.rsd import eval_main  # lazy: onnxruntime-genai

    return eval_main(args.draft, args.target, Path(args.prm), args.thresholds, args.budget, args.per_family, args.json)
