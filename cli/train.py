"""``edgerun train MODEL``: train a model on data this project generates (each resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgerun.envs import env_name


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on data this project generates")
    train = p.add_subparsers(dest="train_command", required=True)
    t = train.add_parser("dino-wm", help="DINO-WM: offline encoder, then the predictor (resumable)")
    t.add_argument("--env", default="edgerun/Wall-v0", help="edgerun/Wall-v0 or edgerun/PointMaze-v0")
    training_arguments(t, None, "(default runs/dino_wm_<env>: checkpoints, loss curve, manifest)", "predictor training steps")
    t.add_argument("--rollout-blocks", type=int, default=1, metavar="K",
                   help="1: the paper's teacher-forced loss; K > 1: open-loop rollouts of K action blocks")
    t.add_argument("--init-from", metavar="PATH", help="fine-tune: a model.pt of the same config (e.g. checkpoints/dino_wm_wall/model.pt: its frozen encoder is kept) or a predictor state (ckpt-latest.pt) of a run on the same data")
    t.set_defaults(func=train_dino_wm)
    t = train.add_parser("dino-wm-map", help="DINO-WM: the free-space map of an env (free_space.npz) from its training data")
    t.add_argument("--env", default="edgerun/Wall-v0", help="edgerun/Wall-v0 or edgerun/PointMaze-v0")
    t.add_argument("--data", nargs="+", metavar="NPZ", help="datasets (edgerun collect); default: the env recipe's, "
                                                             "collected into --work when missing")
    t.add_argument("--work", help="where the recipe's datasets are (default runs/dino_wm_<env>, as edgerun train dino-wm)")
    t.add_argument("--out", help="default checkpoints/dino_wm_<env>/free_space.npz, beside the shipped model")
    t.add_argument("--seed", type=int, default=0, help="the recipe data's collection seed (as edgerun train dino-wm)")
    t.set_defaults(func=train_dino_wm_map)
    t = train.add_parser("int-seg", help="INT's small components (scorer, detector, SAM-contract decoder) on synthetic camouflage")
    training_arguments(t, "runs/int_seg", "(state, checkpoint, ONNX, loss curve, manifest)")
    t.add_argument("--init-from", metavar="INT_SEG_PT", help="fine-tune these components (e.g. checkpoints/int_seg/int_seg.pt)")
    t.add_argument("--lr", type=float, help="peak learning rate (default: the config's; lower it to fine-tune)")
    t.add_argument("--robot-camera-images", type=int, default=0, metavar="N",
                   help="also train on N views of the Wall robot's camera (the demo's perception input)")
    t.add_argument("--families", default="train", help='camouflage families to draw the images from: "train" (the '
                                                        'training families) or names joined by commas')
    t.add_argument("--train-images", type=int, default=1500, help="generated training images, shared by the families")
    t.set_defaults(func=train_int_seg)
    t = train.add_parser("language-traces", help="distillation data: the target's budget-forced reasoning on the train "
                                                 "split's robot word problems, with correctness (resumable JSON Lines)")
    t.add_argument("--target", default="qwen2.5-coder-0.5b", help="registry language model that writes the traces")
    t.add_argument("--per-family", type=int, default=200, help="train tasks per problem family (6 families)")
    t.add_argument("--budget", type=int, default=256, help="thinking budget in tokens")
    t.add_argument("--out", default="runs/language/traces.jsonl")
    t.set_defaults(func=train_language_traces)
    t = train.add_parser("language-draft", help="distil the target's right traces into a LoRA adapter of the draft "
                                                "(Gemma 3 270M), on the CPU (resumable)")
    t.add_argument("--traces", default="runs/language/traces.jsonl")
    t.add_argument("--out", default="runs/language/draft", help="run directory (base weights, adapter, state, loss)")
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--rank", type=int, default=16, help="LoRA rank")
    t.add_argument("--resume", action="store_true", help="continue from the run directory's state")
    t.add_argument("--worked-solutions", type=int, default=0, metavar="N",
                   help="add N of the task generator's worked solutions per family to the target's right traces")
    t.set_defaults(func=train_language_draft)
    t = train.add_parser("language-prm", help="the process reward model RSD scores steps with, on step labels the "
                                              "train split's tasks give (minutes on the CPU)")
    t.add_argument("--traces", nargs="+", default=["checkpoints/language/traces-qwen2.5-coder-0.5b.jsonl",
                                                   "checkpoints/language/traces-gemma3-270m-distilled.jsonl"],
                   help="reasoning traces (edgerun train language-traces) whose steps are labelled")
    t.add_argument("--out", default="checkpoints/language/prm", help="where the PRM (prm.npz, manifest.json) goes")
    t.add_argument("--no-embedding", action="store_true", help="checks only, no MiniLM embeddings (an ablation)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=train_language_prm)
    t = train.add_parser("language-guard", help="the constitutional command guards (input and streaming output) on "
                                                "requests generated from the constitution (minutes on the CPU)")
    t.add_argument("--constitution", default="checkpoints/language/constitution.yaml", help="the constitution (YAML)")
    t.add_argument("--out", default="checkpoints/language/guard", help="where the guards (input.npz, output.npz, manifest.json) go")
    t.add_argument("--per-template", type=int, default=16, help="requests per training template")
    t.add_argument("--paraphrases", help="add the LM's paraphrases of train requests (edgerun train "
                                         "language-guard-paraphrases; with Qwen 0.5B they did not help, see docs/language.md)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=train_language_guard)
    t = train.add_parser("language-guard-paraphrases", help="the target LM paraphrases the constitution's train requests "
                                                            "(more varied guard training data; resumable)")
    t.add_argument("--constitution", default="checkpoints/language/constitution.yaml", help="the constitution (YAML)")
    t.add_argument("--model", default="qwen2.5-coder-0.5b", help="registry language model that paraphrases")
    t.add_argument("--per-template", type=int, default=3, help="filled requests paraphrased per train template")
    t.add_argument("--lines", type=int, default=6, help="paraphrases asked for per request")
    t.add_argument("--out", default="checkpoints/language/guard-paraphrases.jsonl")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=train_language_guard_paraphrases)
    t = train.add_parser("tracks-to-4d", help="TracksTo4D (small) on synthetic scenes: the paper's losses plus a ground-truth term (resumable)")
    training_arguments(t, "runs/tracks_to_4d", "(training state, model.pt, loss curve, manifest)")
    t.add_argument("--families", default="", help='scene families to draw from: "train" (the training families) or names joined by commas; default: the base scene only')
    t.add_argument("--frames", default="20", help="window length T, or LOW,HIGH drawn per step (with --families)")
    t.add_argument("--init-from", default="", help="start from this checkpoint's weights (fine-tuning)")
    t.set_defaults(func=train_tracks_to_4d)


def training_arguments(parser: argparse.ArgumentParser, out: str | None, holds: str, steps: str = "training steps") -> None:
    """What every ``edgerun train MODEL`` takes: a run directory, steps, resume, seed."""
    parser.add_argument("--out", default=out, help=f"run directory {holds}")
    parser.add_argument("--steps", type=int, help=f"{steps} (default: the config's)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's latest state")
    parser.add_argument("--seed", type=int, default=0)


def train_dino_wm(args: argparse.Namespace) -> int:
    from edgerun.training.dino_wm.train import train_main  # lazy: torch

    out = args.out or f"runs/dino_wm_{env_name(args.env)}"
    return train_main(args.env, out, args.steps, args.resume, args.seed, args.rollout_blocks, args.init_from)


def train_dino_wm_map(args: argparse.Namespace) -> int:
    from edgerun.training.dino_wm.free_space import map_main  # lazy: torch

    return map_main(args.env, args.data, args.out, args.work, args.seed)


def train_int_seg(args: argparse.Namespace) -> int:
    from edgerun.training.int_seg.train import train_main  # lazy: torch

    return train_main(args.out, args.steps, args.resume, args.seed, args.init_from, args.lr, args.robot_camera_images,
                      args.families, args.train_images)


def train_tracks_to_4d(args: argparse.Namespace) -> int:
    from edgerun.training.tracks_to_4d.train import train_main  # lazy: torch

    return train_main(args.out, args.steps, args.resume, args.seed, args.families, args.frames, args.init_from)


def train_language_traces(args: argparse.Namespace) -> int:
    from edgerun.training.language.traces import collect  # lazy: onnxruntime-genai

    return collect(args.target, args.per_family, Path(args.out), args.budget)


def train_language_draft(args: argparse.Namespace) -> int:
    from edgerun.training.language.distill import DistillConfig, train_draft  # lazy: torch, peft

    return train_draft(Path(args.traces), Path(args.out), DistillConfig(rank=args.rank, alpha=2 * args.rank, epochs=args.epochs,
                                                                        worked_per_family=args.worked_solutions),
                       args.resume)


def train_language_guard(args: argparse.Namespace) -> int:
    from edgerun.training.language.guard import GuardConfig, train_main  # lazy: torch

    return train_main(Path(args.constitution), Path(args.out),
                      GuardConfig(per_template=args.per_template, paraphrases=args.paraphrases, seed=args.seed))


def train_language_guard_paraphrases(args: argparse.Namespace) -> int:
    from edgerun.training.language.guard_paraphrases import paraphrase_main  # lazy: onnxruntime-genai

    return paraphrase_main(Path(args.constitution), args.model, Path(args.out), args.per_template, args.lines, args.seed)


def train_language_prm(args: argparse.Namespace) -> int:
    from edgerun.training.language.prm import PrmConfig, train_main  # lazy: torch

    return train_main([Path(p) for p in args.traces], Path(args.out), PrmConfig(seed=args.seed), not args.no_embedding)
