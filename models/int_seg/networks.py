"""The small INT components trained here: scorer, open-vocabulary detector, SAM-contract encoder/decoder.

Small CNNs (a few hundred thousand parameters each) sized for 1 CPU thread; each module's
``forward`` is exactly its ONNX contract (see ``components.py``), so ``edgerun export`` traces
it as is. Images come in letterboxed to S×S, RGB in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgerun.models.language.minilm import EMBED_DIM


@dataclass(frozen=True)
class NetworkConfig:
    scorer_size: int = 128
    detector_size: int = 128
    segmenter_size: int = 128
    width: int = 24  # channels of the first stage; later stages are multiples
    sam_channels: int = 32  # C of image_embeddings (1, C, S/4, S/4)

    def to_dict(self) -> dict:
        return asdict(self)


def conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Scorer(nn.Module):
    """images (B, 3, S, S) → embeddings (B, 384): unit vectors in MiniLM's text space (the CLIP role).

    The detector's dense trunk (same layers and names, so it starts from the detector's weights, as
    OWL-ViT starts from CLIP's) with attention pooling: per-location embeddings averaged with softmax
    weights over the locations. A globally pooled CNN trained from scratch did not see camouflaged
    animals at all (removing one left its embedding unchanged); the detector's trunk, trained with
    dense supervision, does, and the pooling keeps one small object able to move the image's embedding.
    """

    def __init__(self, config: NetworkConfig = NetworkConfig()) -> None:
        super().__init__()
        w = config.width
        self.stem = nn.Sequential(conv(3, w, 2), conv(w, 2 * w, 2), conv(2 * w, 2 * w), conv(2 * w, 4 * w, 2), conv(4 * w, 4 * w))
        self.context = nn.Sequential(conv(4 * w, 5 * w, 2), conv(5 * w, 5 * w, dilation=2))
        self.fuse = nn.Sequential(nn.Conv2d(9 * w, 4 * w, 1), conv(4 * w, 4 * w))
        self.embed = nn.Conv2d(4 * w, EMBED_DIM, 1)
        self.attend = nn.Conv2d(4 * w, 1, 1)
        self.logit_scale = nn.Parameter(torch.tensor(2.3))  # log of the softmax temperature's inverse (trained)

    def start_from_detector(self, detector: "Detector") -> None:
        """Copy the detector's trunk (and its objectness as the attention logits)."""
        state = {k: v for k, v in detector.state_dict().items() if k.split(".")[0] in ("stem", "context", "fuse", "embed")}
        state.update({f"attend.{k}": v for k, v in detector.shift.state_dict().items()})
        self.load_state_dict(state, strict=False)

    def forward(self, images: Tensor) -> Tensor:
        fine = self.stem(images)
        coarse = F.interpolate(self.context(fine), size=fine.shape[-2:], mode="nearest")
        features = self.fuse(torch.cat([fine, coarse], 1))
        embeddings = F.normalize(self.embed(features).flatten(2), dim=1)  # (B, 384, P)
        weights = torch.softmax(self.attend(features).flatten(2), dim=-1)  # (B, 1, P)
        return F.normalize((embeddings * weights).sum(-1), dim=-1)


class Detector(nn.Module):
    """OWL-ViT-like: per-location embeddings scored against text embeddings, plus a box per location.

    images (1, 3, S, S), text_embeddings (Q, 384) → logits (1, P, Q) with P = (S/8)², pred_boxes
    (1, P, 4) normalised (cx, cy, w, h). logit = scale · cos(location, text) + shift(location).
    """

    def __init__(self, config: NetworkConfig = NetworkConfig()) -> None:
        super().__init__()
        w = config.width
        self.stem = nn.Sequential(conv(3, w, 2), conv(w, 2 * w, 2), conv(2 * w, 2 * w), conv(2 * w, 4 * w, 2), conv(4 * w, 4 * w))
        self.context = nn.Sequential(conv(4 * w, 5 * w, 2), conv(5 * w, 5 * w, dilation=2))  # stride 16: whole large objects
        self.fuse = nn.Sequential(nn.Conv2d(9 * w, 4 * w, 1), conv(4 * w, 4 * w))
        self.embed = nn.Conv2d(4 * w, EMBED_DIM, 1)
        self.shift = nn.Conv2d(4 * w, 1, 1)
        self.box = nn.Conv2d(4 * w, 4, 1)
        # MiniLM's "a frog" and "a bird" share most of their direction; a residual map (starting at the
        # identity) lets the detector spread the queries apart before the cosine.
        self.text_projection = nn.Linear(EMBED_DIM, EMBED_DIM)
        nn.init.zeros_(self.text_projection.weight)
        nn.init.zeros_(self.text_projection.bias)
        nn.init.constant_(self.shift.bias, -4.6)  # focal loss prior: 1 % of locations × queries are positive
        self.log_scale = nn.Parameter(torch.tensor(3.0))
        self.grid = config.detector_size // 8

    def forward(self, images: Tensor, text_embeddings: Tensor) -> tuple[Tensor, Tensor]:
        fine = self.stem(images)
        coarse = F.interpolate(self.context(fine), size=fine.shape[-2:], mode="nearest")
        features = self.fuse(torch.cat([fine, coarse], 1))
        embeddings = F.normalize(self.embed(features).flatten(2).transpose(1, 2), dim=-1)  # (B, P, 384)
        text = F.normalize(text_embeddings + self.text_projection(text_embeddings), dim=-1)
        logits = self.log_scale.exp() * embeddings @ text.T + self.shift(features).flatten(2).transpose(1, 2)
        raw = self.box(features).flatten(2).transpose(1, 2)  # (B, P, 4)
        g = self.grid
        ys, xs = torch.meshgrid(torch.arange(g, dtype=images.dtype), torch.arange(g, dtype=images.dtype), indexing="ij")
        centres = torch.stack([xs.flatten(), ys.flatten()], -1).add(0.5).div(g)  # (P, 2)
        cxcy = centres + torch.tanh(raw[..., :2]) * (2.0 / g)
        wh = torch.sigmoid(raw[..., 2:])
        return logits, torch.cat([cxcy, wh], -1)


class SamEncoder(nn.Module):
    """images (1, 3, S, S) → image_embeddings (1, C, S/4, S/4)."""

    def __init__(self, config: NetworkConfig = NetworkConfig()) -> None:
        super().__init__()
        w = config.width
        self.down4 = nn.Sequential(conv(3, w, 2), conv(w, 2 * w, 2), conv(2 * w, 2 * w))
        self.down16 = nn.Sequential(conv(2 * w, 3 * w, 2), conv(3 * w, 4 * w, 2), conv(4 * w, 4 * w, dilation=2))
        self.out = nn.Sequential(nn.Conv2d(6 * w, 3 * w, 1), conv(3 * w, 3 * w), nn.Conv2d(3 * w, config.sam_channels, 1))

    def forward(self, images: Tensor) -> Tensor:
        fine = self.down4(images)
        coarse = F.interpolate(self.down16(fine), size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(torch.cat([fine, coarse], 1))


class SamDecoder(nn.Module):
    """SAM's ONNX decoder contract over a small convolutional decoder.

    Prompts become maps on the embedding grid: a soft box and its four edge distances (from the
    label 2/3 corner points), Gaussian blobs for positive (1) and negative (0) points (label −1 is
    padding), and the previous low-res mask when ``has_mask_input``. Output masks are
    post-processed as SAM's: low-res (S×S) → crop to the letterboxed image → ``orig_im_size``.
    """

    def __init__(self, config: NetworkConfig = NetworkConfig()) -> None:
        super().__init__()
        w, c = config.width, config.sam_channels
        self.size = config.segmenter_size
        self.body = nn.Sequential(conv(c + 8, 2 * w), conv(2 * w, 2 * w, dilation=2), conv(2 * w, 2 * w, dilation=4), conv(2 * w, 2 * w))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 2, 2), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, w // 2, 2, 2), nn.BatchNorm2d(w // 2), nn.ReLU(inplace=True),
            nn.Conv2d(w // 2, 1, 3, padding=1),
        )
        self.iou = nn.Sequential(nn.Linear(2 * w, w), nn.ReLU(inplace=True), nn.Linear(w, 1))

    def prompt_maps(self, point_coords: Tensor, point_labels: Tensor, h: int, w: int) -> Tensor:
        cell = self.size / w
        ys, xs = torch.meshgrid(torch.arange(h, dtype=point_coords.dtype), torch.arange(w, dtype=point_coords.dtype), indexing="ij")
        gx, gy = (xs + 0.5) * cell, (ys + 0.5) * cell  # (h, w) grid-cell centres in input pixels
        coords, labels = point_coords[0], point_labels[0]  # (n, 2), (n,)

        def corner(label: float) -> tuple[Tensor, Tensor]:
            weight = (labels == label).to(coords.dtype)
            count = weight.sum()
            return (coords * weight[:, None]).sum(0) / count.clamp_min(1.0), (count > 0).to(coords.dtype)

        (top_left, has_tl), (bottom_right, has_br) = corner(2.0), corner(3.0)
        has_box = has_tl * has_br
        x0, y0, x1, y1 = top_left[0], top_left[1], bottom_right[0], bottom_right[1]
        inside = torch.sigmoid((gx - x0) / cell) * torch.sigmoid((x1 - gx) / cell) * torch.sigmoid((gy - y0) / cell) * torch.sigmoid((y1 - gy) / cell)
        edges = torch.stack([gx - x0, x1 - gx, gy - y0, y1 - gy]) / self.size
        d2 = (gx[None] - coords[:, 0, None, None]) ** 2 + (gy[None] - coords[:, 1, None, None]) ** 2  # (n, h, w)
        blobs = torch.exp(-d2 / (2 * (2 * cell) ** 2))
        positive = (blobs * (labels == 1.0).to(coords.dtype)[:, None, None]).sum(0)
        negative = (blobs * (labels == 0.0).to(coords.dtype)[:, None, None]).sum(0)
        return torch.cat([(inside * has_box)[None], edges * has_box, positive[None], negative[None]])[None]  # (1, 7, h, w)

    def low_res(self, image_embeddings: Tensor, prompts: Tensor, mask_input: Tensor, has_mask_input: Tensor) -> tuple[Tensor, Tensor]:
        h, w = image_embeddings.shape[-2:]
        prior = F.adaptive_avg_pool2d(mask_input, (h, w)) * has_mask_input.reshape(-1, 1, 1, 1)
        features = self.body(torch.cat([image_embeddings, prompts, prior], 1))
        return self.up(features), self.iou(features.mean((2, 3)))

    def forward(self, image_embeddings: Tensor, point_coords: Tensor, point_labels: Tensor, mask_input: Tensor,
                has_mask_input: Tensor, orig_im_size: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h, w = image_embeddings.shape[-2:]
        prompts = self.prompt_maps(point_coords, point_labels, h, w)
        low_res_masks, iou_predictions = self.low_res(image_embeddings, prompts, mask_input, has_mask_input)
        masks = F.interpolate(low_res_masks, size=(self.size, self.size), mode="bilinear", align_corners=False)
        scale = self.size / orig_im_size.max()
        letterboxed = (orig_im_size * scale + 0.5).to(torch.int64)  # the image's extent inside the padded input
        masks = masks[..., : letterboxed[0], : letterboxed[1]]
        orig = orig_im_size.to(torch.int64)
        masks = F.interpolate(masks, size=(orig[0], orig[1]), mode="bilinear", align_corners=False)
        return masks, iou_predictions, low_res_masks


def build(kind: str, config: NetworkConfig = NetworkConfig()) -> nn.Module:
    return {"scorer": Scorer, "detector": Detector, "sam_encoder": SamEncoder, "sam_decoder": SamDecoder}[kind](config)
