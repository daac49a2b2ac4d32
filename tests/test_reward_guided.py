"""Reward-guided speculative decoding: step labels from the verifiable tasks, the process reward
model trained on them, and RSD on tiny models the tests build (a draft that slips on some steps, a
target that does not): the PRM catches the slips, the target rewrites only those steps, and the
answers are the target's at a fraction of its tokens."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from language_fixtures import trace

from edgerun.cli import main as edgerun_main
from edgerun.engines.language import LanguageModel, Sampling, load_language_model
from edgerun.pipelines.language.budget_forcing import ANSWER_MARK, THINK_START, Budget, budget_forced
from edgerun.pipelines.language.process_reward import ProcessRewardModel, StepContext, step_features
from edgerun.pipelines.language.reward_guided import RsdConfig, reward_guided
from edgerun.pipelines.language.steps import equations, split_steps, step_correct
from edgerun.pipelines.language.tasks import make_task
from edgerun.training.language.heads import HeadConfig, fit_head
from edgerun.training.language.prm import PrmConfig, gold_examples, load_traces, train_prm


def test_steps_are_sentences_and_their_arithmetic_is_read():
    assert split_steps("First: 4 * 5 = 20 m. Then 2.5 m more.\nTotal: 20 + 3 = 23 m. ") == [
        "First: 4 * 5 = 20 m.", "Then 2.5 m more.", "Total: 20 + 3 = 23 m."]
    (e,) = equations("Total: 2 + 3 * 4 = 14 m.")
    assert e.operands == (2, 3, 4) and e.value == 14 and e.holds
    assert not equations("Laps: 1,000 - 10 = 980.")[0].holds and equations("Laps: 1,000 - 10 = 990.")[0].holds
    assert equations("Full laps: 40 / 7 = 5.")[0].holds  # the whole part of a division: whole laps
    assert equations("x: 3 / 0 = 1.")[0].value is None and not equations("x: 3 / 0 = 1.")[0].holds


def test_step_labels_come_from_the_task():
    task = make_task("distance", 1)  # 4 m/s for 4 s, then 4 m/s for 8 s
    gold = list(task.steps)
    assert all(step_correct(task, gold[:i], s) for i, s in enumerate(gold))
    assert not step_correct(task, [], "First part: 4 * 4 = 17 m.")  # the arithmetic fails
    assert not step_correct(task, [], "First part: 4 + 4 = 8 m.")  # holds, but not one of the task's values
    assert not step_correct(task, gold[:2], "Total: 16 + 32 = 48 m, plus 9 m.")  # a number from nowhere
    assert step_correct(task, gold[:2], "So the robot drives 48 m in all.")


def test_the_prm_learns_step_labels_and_ranks_held_out_steps(tmp_path):
    tasks = [make_task(family, seed) for family in ("distance", "battery", "conveyor") for seed in range(40)]
    right, wrong = tasks[0], tasks[1]
    traces = tmp_path / "traces.jsonl"
    traces.write_text("".join(json.dumps(r) + "\n" for r in (
        {"family": right.family, "seed": right.seed, "question": right.question, "thinking": " ".join(right.steps),
         "answer_text": str(right.answer)},
        {"family": wrong.family, "seed": wrong.seed, "question": wrong.question,
         "thinking": "First part: 9 * 9 = 81 m. Total: 81 + 1 = 80 m.", "answer_text": "80"})))
    from_traces = load_traces([traces])
    assert [e.label for e in from_traces] == [True] * (len(right.steps) + 1) + [False, False, False]
    model = train_prm(from_traces + gold_examples(tasks, seed=0), None, "none", PrmConfig(head=HeadConfig(epochs=300)))
    held_out = model.manifest["validation_metrics"]
    assert held_out["steps"] > 50 and held_out["auc"] > 0.95, held_out
    model.save(tmp_path / "prm")
    again = ProcessRewardModel.load(tmp_path / "prm")
    contexts = [e.context for e in from_traces]
    np.testing.assert_array_equal(again.reward(contexts), model.reward(contexts))
    with pytest.raises(ValueError, match="PRM weights take 10 inputs, the features are 778"):
        ProcessRewardModel(model.weights, None, {"embedding_dim": 384})
    with pytest.raises(FileNotFoundError, match="no process reward model in"):
        ProcessRewardModel.load(tmp_path / "nowhere")


def test_traces_from_another_task_generator_are_refused(tmp_path):
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"family": "boxes", "seed": 3, "question": "How many?", "thinking": "", "answer_text": "1"}) + "\n")
    with pytest.raises(ValueError, match="does not match the task generator"):
        load_traces([traces])


class Slipping(LanguageModel):
    """A draft that slips: the tiny model, unable ever to write the digit 8."""

    def __init__(self, inner: LanguageModel):
        self.inner = inner
        self.name, self.backend, self.vocab_size = f"{inner.name}-slipping", inner.backend, inner.vocab_size
        self.context_length, self.add_bos = inner.context_length, inner.add_bos
        self.banned = {t: -1e9 for t in range(inner.vocab_size) if "8" in inner.decode([t])}

    def encode(self, text):
        return self.inner.encode(text)

    def decode(self, ids):
        return self.inner.decode(ids)

    def session(self, prompt, max_length=None, logit_bias=None, json_schema=None, sampling=Sampling()):
        return self.inner.session(prompt, max_length, logit_bias=self.banned, json_schema=json_schema, sampling=sampling)


@pytest.fixture(scope="module")
def tiny_prm():
    """A checks-only PRM fitted on the tiny model's trace format: right steps against slipped ones."""
    rng = random.Random(5)
    contexts, labels = [], []
    for _ in range(200):
        question, _, rest = trace(rng).partition(THINK_START)
        thinking, _, answer = rest.partition("</think>")
        steps = split_steps(thinking)
        for i, step in enumerate(steps):
            head, _, tail = step.rpartition(" ")
            slipped = f"{head} {int(tail.rstrip('.')) + rng.choice((-2, -1, 1, 2))}."
            contexts += [StepContext(question, tuple(steps[:i]), step), StepContext(question, tuple(steps[:i]), slipped)]
            labels += [True, False]
        value = int(answer.split(ANSWER_MARK)[1])
        for given, label in ((value, True), (value + 1, False)):
            contexts.append(StepContext(question, tuple(steps), f"{ANSWER_MARK} {given}"))
            labels.append(label)
    weights = fit_head(step_features(contexts, None), np.array(labels), HeadConfig(epochs=300))
    return ProcessRewardModel(weights, None, {"embedding_dim": 0})


def test_rsd_keeps_the_drafts_right_steps_and_has_the_target_rewrite_its_slips(tiny_lm, tiny_prm):
    target = load_language_model(tiny_lm[1])
    draft = Slipping(target)
    rng = random.Random(77)
    held_out = []
    while len(held_out) < 10:  # questions whose counting passes 8: the draft slips on them
        question, _, rest = trace(rng).partition(THINK_START)
        a, b = int(question.split()[1]), int(question.split()[3])
        if a < 8 < a + b:
            held_out.append((question, int(rest.rsplit(ANSWER_MARK, 1)[1])))

    def accuracy(answers):
        return sum(str(a) == given for (_, a), given in zip(held_out, answers)) / len(held_out)

    budget = 64
    alone = {name: [budget_forced(m, q, Budget(budget)) for q, _ in held_out] for name, m in
             (("draft", draft), ("target", target))}
    target_tokens_alone = sum(r.thinking_tokens + r.answer_tokens for r in alone["target"])
    assert accuracy(r.answer for r in alone["target"]) >= 0.9 and accuracy(r.answer for r in alone["draft"]) <= 0.3

    rsd = [reward_guided(draft, target, tiny_prm, q, q, RsdConfig(threshold=0.7, budget=budget)) for q, _ in held_out]
    assert accuracy(r.answer for r in rsd) >= accuracy(r.answer for r in alone["target"]) - 0.1
    assert 0 < sum(r.target_tokens for r in rsd) < 0.5 * target_tokens_alone
    slips = [s for r in rsd for s in r.steps if s.author == "target"]
    assert slips and all(s.reward < 0.7 for s in slips)
    assert all(s.reward >= 0.7 for r in rsd for s in r.steps if s.author == "draft")

    everything = reward_guided(draft, target, tiny_prm, held_out[0][0], held_out[0][0], RsdConfig(threshold=0.0, budget=budget))
    assert everything.target_tokens == 0 and {s.author for s in everything.steps} == {"draft"}
    with pytest.raises(ValueError, match="threshold δ must lie in"):
        RsdConfig(threshold=1.5)


def test_eval_rsd_without_a_prm_says_how_to_make_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        edgerun_main(["eval", "rsd", "--prm", str(tmp_path / "none")])
    assert done.value.code == 2
    assert "edgerun train language-prm writes one" in capsys.readouterr().err
