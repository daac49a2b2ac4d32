"""Tiny untrained ONNX files that follow INT's component contracts, and a config naming them.

They let node tests load real engines through ``load_components`` in a second, without the
shipped checkpoints or the MiniLM export: the masks they give are not meaningful, the contracts
(names, dtypes, shapes, SAM's decoder inputs) are.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SIZE = 64  # S, the square input of the image models
DIM = 384


class Text(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(101, DIM)

    def forward(self, input_ids, attention_mask, token_type_ids):
        weights = attention_mask.unsqueeze(-1).float()
        pooled = (self.table(input_ids % 101) * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return F.normalize(pooled + 0.0 * token_type_ids.sum(), dim=-1)


class Scorer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(48, DIM)

    def forward(self, images):
        return F.normalize(self.head(F.adaptive_avg_pool2d(images, 4).flatten(1)), dim=-1)


class Detector(nn.Module):
    """Four fixed boxes (the quadrants' centres), scored by pooled colour against the texts."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, DIM)
        self.register_buffer("boxes", torch.tensor([[[0.25, 0.25, 0.3, 0.3], [0.75, 0.25, 0.3, 0.3],
                                                     [0.25, 0.75, 0.3, 0.3], [0.75, 0.75, 0.3, 0.3]]]))

    def forward(self, images, text_embeddings):
        features = self.head(F.adaptive_avg_pool2d(images, 2).flatten(2).transpose(1, 2))  # (1, 4, DIM)
        return 10.0 * features @ text_embeddings.T, self.boxes


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 8, stride=8)

    def forward(self, images):
        return self.conv(images)


class Decoder(nn.Module):
    """The box (points labelled 2, 3 in S×S input pixels) as mask logits at the original size."""

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size):
        scale = orig_im_size.max() / SIZE
        box = point_coords[0] * scale  # (2, 2): top-left, bottom-right in image pixels
        ys = torch.arange(orig_im_size[0].to(torch.int64)).float()[:, None]
        xs = torch.arange(orig_im_size[1].to(torch.int64)).float()[None, :]
        inside = (xs >= box[0, 0]) & (xs < box[1, 0]) & (ys >= box[0, 1]) & (ys < box[1, 1])
        masks = (inside.float() * 2.0 - 1.0)[None, None] + 0.0 * image_embeddings.mean() + 0.0 * point_labels.sum()
        low = mask_input + 0.0 * has_mask_input
        return masks, torch.ones(1, 1), low


def export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic: dict) -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)


def write_components(directory: Path) -> Path:
    """Every stand-in ONNX file in ``directory`` and ``components.yaml`` naming them; returns the YAML."""
    torch.manual_seed(0)
    ids = torch.ones(2, 5, dtype=torch.int64)
    export(Text(), (ids, ids, ids * 0), directory / "text.onnx", ["input_ids", "attention_mask", "token_type_ids"], ["embeddings"],
           {n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids")} | {"embeddings": {0: "batch"}})
    image = torch.rand(1, 3, SIZE, SIZE)
    export(Scorer(), (image,), directory / "scorer.onnx", ["images"], ["embeddings"], {"images": {0: "batch"}, "embeddings": {0: "batch"}})
    export(Detector(), (image, torch.rand(3, DIM)), directory / "detector.onnx", ["images", "text_embeddings"],
           ["logits", "pred_boxes"], {"text_embeddings": {0: "queries"}, "logits": {2: "queries"}})
    export(Encoder(), (image,), directory / "encoder.onnx", ["images"], ["image_embeddings"], {})
    decoder_args = (torch.rand(1, 8, 8, 8), torch.tensor([[[4.0, 4.0], [20.0, 30.0]]]), torch.tensor([[2.0, 3.0]]),
                    torch.zeros(1, 1, 32, 32), torch.zeros(1), torch.tensor([48.0, 64.0]))
    export(Decoder(), decoder_args, directory / "decoder.onnx",
           ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"],
           ["masks", "iou_predictions", "low_res_masks"],
           {"point_coords": {1: "n"}, "point_labels": {1: "n"}, "masks": {2: "H", 3: "W"}})
    config = directory / "components.yaml"
    config.write_text(
        "text_encoder: text.onnx\n"
        f"scorer: {{onnx: scorer.onnx, input_size: {SIZE}}}\n"
        f"detector: {{onnx: detector.onnx, input_size: {SIZE}, threshold: 0.0}}\n"
        f"segmenter: {{encoder: encoder.onnx, decoder: decoder.onnx, input_size: {SIZE}}}\n"
        "backend: onnxruntime-cpu\n"
    )
    return config
