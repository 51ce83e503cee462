"""An example rcl_study plugin: a focal-loss variant, a contrastive loss, data and a backbone.

Installed with ``pip install ./examples/rcl_study_example``, its entry points (pyproject.toml)
register ``example_focal`` (``loss.classification``), ``example_supcon`` (``loss.contrastive``),
``example_blobs`` (``data.dataset``) and ``example_mlp`` (``model.arch``); ``study.yaml``
beside this package uses all four. Each part
follows the contract in rcl_study's ``docs/plugins.md``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def focal_loss(
    logits: Tensor, labels: Tensor, class_counts: Tensor, gamma: float = 2.0, tau: float = 0.0
) -> Tensor:
    """Focal loss (Lin et al. 2017) on logit-adjusted logits (``tau`` 0: plain focal loss).

    Shape:
        - logits: ``[B, C]``; labels: ``[B]`` int64; class_counts: ``[C]``; output: scalar.
    """
    z = logits.float()
    if tau:
        prior = class_counts.to(z.device, torch.float32)
        z = z + tau * torch.log(prior / prior.sum())
    logp = F.log_softmax(z, dim=1).gather(1, labels[:, None]).squeeze(1)
    return (-((1 - logp.exp()) ** gamma) * logp).mean()


def supcon_loss(
    features: Tensor,
    labels: Tensor,
    class_counts: Tensor,
    prototypes: Tensor | None = None,
    *,
    temperature: float,
    negative_weight: float = 1.0,
    **knobs: object,
) -> Tensor:
    """SupCon's L_out (Khosla et al. 2020) with the negatives' share of the denominator weighted.

    ``negative_weight`` 1 is plain SupCon; below 1 the negatives push less. The prototypes and
    RCL's knobs (``balance``, ``scale``, ``margin``, ``class_averaging``, ``scale_on``, in
    ``knobs``) are not used: a contrastive plugin may ignore what it does not model.

    Shape:
        - features: ``[N, D]`` L2-normalised; labels: ``[N]`` int64; class_counts: ``[C]``;
          output: scalar.
    """
    z = features.float()
    sim = z @ z.T / temperature
    self_mask = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    weight = torch.where(positive, 1.0, negative_weight).masked_fill(self_mask, 0.0)
    log_denominator = torch.logsumexp(sim + torch.log(weight), dim=1, keepdim=True)
    log_prob = sim - log_denominator
    n_pos = positive.sum(1)
    per_anchor = -(log_prob.masked_fill(~positive, 0.0).sum(1)) / n_pos.clamp(min=1)
    has_pos = n_pos > 0
    return per_anchor[has_pos].mean() if has_pos.any() else z.sum() * 0.0


def read_blobs(cfg) -> object:
    """Four classes of 8x8 grey images: a bright quadrant per class, plus noise (seed 0).

    ``cfg`` is rcl_study's ``DataConfig``; returns an ``rcl_study.data.types.Split`` (not yet
    long-tailed: rcl_study applies ``data.imbalance_ratio``).
    """
    from rcl_study.data.types import Split

    rng = np.random.default_rng(0)

    def make(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for c in range(4):
            img = rng.normal(60, 25, size=(n_per_class, 8, 8, 1))
            r, q = divmod(c, 2)
            img[:, 4 * r : 4 * r + 4, 4 * q : 4 * q + 4] += 120
            xs.append(np.clip(img, 0, 255).astype(np.uint8))
            ys.append(np.full(n_per_class, c, dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    train_x, train_y = make(100)
    test_x, test_y = make(25)
    return Split(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)


class MLP(nn.Module):
    """Flatten, one hidden layer of ``width`` units: ``[B, C, S, S]`` -> ``[B, width]``."""

    def __init__(self, in_features: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.ReLU())
        self.out_dim = width

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, S, S]`` -> ``[B, width]``."""
        return self.net(x)


def mlp(in_channels: int, image_size: int, width: int = 32, norm: str = "batch") -> nn.Module:
    """The backbone builder (``norm`` unused: the MLP has no normalisation layer)."""
    return MLP(in_channels * image_size * image_size, width)
