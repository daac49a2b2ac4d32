"""Distil the target's reasoning into the draft (the s1 recipe, small): supervised fine-tuning of a
LoRA adapter on the draft, on the traces whose answer was right, loss on the completion only.

Each example is the question as the draft will see it (the instruction, ``Q: …``, ``Thinking:``)
followed by the target's thinking, ``</think>``, ``Final Answer: N``. The adapter is small enough
to commit (``checkpoints/language/``, with a manifest); the export merges it into the draft's
weights before building the engine (:func:`edgerun.export.language_export.merge_adapter`).

Resumable: the run directory holds the adapter and optimizer state of the last finished epoch
part; ``--resume`` continues from it.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from edgerun.evaluation.language.budget_forcing import EXAMPLES, question_prompt
from edgerun.export.language_export import DISTILLED_ADAPTER, LANGUAGE_MODELS, gguf_to_safetensors, source_gguf
from edgerun.pipelines.language.budget_forcing import ANSWER_START, THINK_END, THINK_START
from edgerun.pipelines.language.tasks import task_set

ADAPTER_MANIFEST = "edgerun_adapter.json"


@dataclass(frozen=True)
class DistillConfig:
    rank: int = 16
    alpha: int = 32
    lr: float = 2e-4
    epochs: int = 2
    batch: int = 4
    max_tokens: int = 512  # longer examples are dropped, not cut (a cut trace teaches a wrong end)
    worked_per_family: int = 0  # the generator's worked solutions added per family (0: the target's traces only)
    seed: int = 0
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def examples(traces: Path) -> list[tuple[str, str]]:
    """``(prompt, completion)`` of every right trace in ``traces`` (JSON Lines); the prompt is the
    one the draft answers at evaluation (the few-shot prompt of ``eval budget-forcing``)."""
    pairs = []
    for line in traces.read_text().splitlines():
        trace = json.loads(line)
        if trace["correct"]:
            completion = f"{trace['thinking'].strip()}{THINK_END}{ANSWER_START} {trace['answer']}\n"
            pairs.append((question_prompt(trace["question"]) + THINK_START, completion))
    return pairs


def worked_examples(per_family: int) -> list[tuple[str, str]]:
    """``(prompt, completion)`` of the train split's worked solutions (the task generator's own steps,
    right by construction), for the families the target's right traces leave out."""
    return [(question_prompt(t.question) + THINK_START, f"{' '.join(t.steps)}{THINK_END}{ANSWER_START} {t.answer}\n")
            for t in task_set("train", per_family) if t not in EXAMPLES]


def tokenized(tokenizer, pairs: list[tuple[str, str]], max_tokens: int, add_bos: bool) -> list[tuple[list[int], int]]:
    """``(ids, prompt length)`` per example; the end-of-sequence token closes every completion."""
    out = []
    for prompt, completion in pairs:
        head = ([tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else [])
        head += tokenizer.encode(prompt, add_special_tokens=False)
        ids = head + tokenizer.encode(completion, add_special_tokens=False) + [tokenizer.eos_token_id]
        if len(ids) <= max_tokens:
            out.append((ids, len(head)))
    return out


def completion_loss(model, batch: list[tuple[list[int], int]], pad: int) -> torch.Tensor:
    length = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), length), pad)
    labels = torch.full((len(batch), length), -100)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(batch):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        labels[row, prompt_length:len(ids)] = torch.tensor(ids[prompt_length:])
        mask[row, :len(ids)] = 1
    return model(input_ids=input_ids, attention_mask=mask, labels=labels).loss


def distill(base: Path, traces: Path, run: Path, config: DistillConfig, add_bos: bool, resume: bool = False) -> Path:
    """Fine-tune a LoRA adapter of the transformers folder ``base`` on ``traces`` → the adapter folder
    ``run/adapter`` (with its manifest), and the loss curve in ``run/loss.json``."""
    from peft import LoraConfig, PeftModel, get_peft_model  # lazy: training only
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    data = tokenized(tokenizer, examples(traces) + worked_examples(config.worked_per_family), config.max_tokens, add_bos)
    if not data:
        raise ValueError(f"{traces}: no right traces of at most {config.max_tokens} tokens to learn from")
    model = AutoModelForCausalLM.from_pretrained(base, dtype="float32")
    state = run / "state.pt"
    if resume and state.is_file():
        model = PeftModel.from_pretrained(model, run / "adapter", is_trainable=True)
        saved = torch.load(state, weights_only=True)
    else:
        model = get_peft_model(model, LoraConfig(r=config.rank, lora_alpha=config.alpha, target_modules=list(config.targets),
                                                 lora_dropout=0.0, task_type="CAUSAL_LM"))
        saved = None
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    steps_per_epoch = (len(data) + config.batch - 1) // config.batch
    total = steps_per_epoch * config.epochs
    step, losses = 0, []
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        step, losses = saved["step"], saved["losses"]
    run.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    model.train()
    with tqdm(total=total, initial=step, desc="[distil] LoRA", unit="step", file=sys.stderr) as bar:
        while step < total:
            epoch, index = divmod(step, steps_per_epoch)
            order = list(range(len(data)))
            random.Random(config.seed + epoch).shuffle(order)
            batch = [data[i] for i in order[index * config.batch:(index + 1) * config.batch]]
            for group in optimizer.param_groups:  # linear decay to a tenth
                group["lr"] = config.lr * (1 - 0.9 * step / total)
            loss = completion_loss(model, batch, tokenizer.pad_token_id or tokenizer.eos_token_id)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(round(float(loss), 4))
            step += 1
            bar.update(1)
            bar.set_postfix_str(f"loss {sum(losses[-20:]) / len(losses[-20:]):.3f}")
            if step % 25 == 0 or step == total:
                model.save_pretrained(run / "adapter")
                (run / "adapter" / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
                torch.save({"optimizer": optimizer.state_dict(), "step": step, "losses": losses}, state)
    (run / "loss.json").write_text(json.dumps(losses) + "\n")
    (run / "adapter" / ADAPTER_MANIFEST).write_text(json.dumps({
        **asdict(config), "examples": len(data), "traces": str(traces), "steps": total,
        "final_loss": sum(losses[-20:]) / len(losses[-20:]), "train_s_this_run": round(time.monotonic() - started, 1),
    }, indent=2) + "\n")
    return run / "adapter"



def train_draft(traces: Path, run: Path, config: DistillConfig, resume: bool) -> int:
    """``edgerun train language-draft``: the draft's transformers folder (de-quantised from its GGUF
    once, kept in ``run/base`` for resumes), then :func:`distill`."""
    if not traces.is_file():
        print(f"edgerun train language-draft: no traces at {traces} (edgerun train language-traces writes them)", file=sys.stderr)
        return 2
    draft = LANGUAGE_MODELS["gemma3-270m"]
    base = run / "base"
    if not (base / "config.json").is_file():
        gguf_to_safetensors(source_gguf(draft, run), base)
        (run / f"{draft.name}.gguf").unlink()
    try:
        adapter = distill(base, traces, run, config, draft.add_bos, resume)
    except ValueError as exc:
        print(f"edgerun train language-draft: {exc}", file=sys.stderr)
        return 2
    print(f"adapter in {adapter}; to ship it: cp -r {adapter}/. {DISTILLED_ADAPTER}/ "
          "(then edgerun eval budget-forcing measures gemma3-270m-distilled)", file=sys.stderr)
    return 0
