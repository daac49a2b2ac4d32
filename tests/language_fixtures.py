"""A tiny causal LM the tests build (no downloads): a byte-level BPE tokenizer trained on generated
reasoning traces, a 2-layer Llama trained for a few hundred steps to follow their format
(``Q: … Thinking: … </think> Final Answer: …``), saved as a transformers folder and built into an
onnxruntime-genai folder through the same export path as the real models."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from edgerun.export.language_export import export_hf_folder
from edgerun.pipelines.language.budget_forcing import ANSWER_START, THINK_END, THINK_START
from edgerun.envs.wall import ROOMS, SPOTS
from edgerun.pipelines.language.goal_commands import ROOM_PHRASES, SPOT_PHRASES, GoalCommand
from edgerun.pipelines.language.goals import prompt, worked


def trace(rng: random.Random) -> str:
    """A question and its complete reasoning: counting on one at a time (one equation per step, as
    the robot word problems' steps), then the answer."""
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    steps = " ".join(f"{a + i - 1} + 1 = {a + i}." for i in range(1, b + 1))
    return f"Q: {a} + {b} = ?\n{THINK_START}{steps} So {a + b}.{THINK_END}{ANSWER_START} {a + b}\n"


def cut_trace(rng: random.Random) -> str:
    """Reasoning cut off as budget forcing cuts it, answered with what the steps so far imply: so a
    bigger budget gives a better answer."""
    a, b = rng.randint(1, 9), rng.randint(2, 9)
    done = rng.randint(1, b - 1)
    steps = " ".join(f"{a + i - 1} + 1 = {a + i}." for i in range(1, done + 1))
    return f"Q: {a} + {b} = ?\n{THINK_START}{steps}\n{THINK_END}{ANSWER_START} {a + done}\n"


def arithmetic_corpus() -> list[str]:
    rng = random.Random(0)
    return [trace(rng) if rng.random() < 0.7 else cut_trace(rng) for _ in range(3000)]


def goal_command(room: str, spot: str) -> GoalCommand:
    """The one wording of each goal the tiny goal LM learns (the graph test's commands)."""
    room_phrase, spot_phrase = ROOM_PHRASES[room][0], SPOT_PHRASES[spot][0]
    return GoalCommand(f"go to the {spot_phrase} of {room_phrase}", room, spot, room_phrase, spot_phrase)


def goal_corpus() -> list[str]:
    """Operator commands worked through as the language node's prompt reads them, for a model trained
    on the task (``shots=0``, ``instructions=False``)."""
    rng = random.Random(0)
    commands = [goal_command(rng.choice(ROOMS), rng.choice(SPOTS)) for _ in range(2000)]
    return [prompt(c.text, shots=0, instructions=False) + worked(c).split("\n", 1)[1] for c in commands]


def build_tiny_lm(root: Path, steps: int = 600, corpus: list[str] | None = None, lr: float = 3e-3) -> tuple[Path, Path]:
    """``(transformers folder, onnxruntime-genai folder)`` under ``root``, trained on ``corpus``
    (default: :func:`arithmetic_corpus`)."""
    corpus = corpus or arithmetic_corpus()
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    encoded = [fast.encode(text, add_special_tokens=False) + [2] for text in corpus]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(steps):
        batch = [encoded[(step * 16 + i) % len(encoded)] for i in range(16)]
        length = max(map(len, batch))
        ids = torch.tensor([b + [2] * (length - len(b)) for b in batch])
        labels = torch.tensor([b + [-100] * (length - len(b)) for b in batch])
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hf = root / "hf"
    model.save_pretrained(hf)
    fast.save_pretrained(hf)
    onnx = export_hf_folder(hf, root / "onnx", "tiny", source_sha256="0" * 64, precision="fp32")
    return hf, onnx
