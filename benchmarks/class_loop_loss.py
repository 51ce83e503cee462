"""BCL's class-averaged contrastive loss built with a Python loop over classes (a reference).

Not product code: the vectorised :func:`rcl_study.losses.contrastive_loss` replaces it. Kept as
an independent, naive reference that the loss tests compare against (with the RCL components,
which ``benchmarks/naive_balscl.py``, the yardstick of ``benchmarks/loss_speed.py``, leaves out).
"""

from __future__ import annotations

import torch
from torch import Tensor


def naive_class_loop_loss(
    features: Tensor,
    labels: Tensor,
    class_counts: Tensor,
    prototypes: Tensor | None = None,
    *,
    temperature: float,
    scale: float = 1.0,
    balance: float = 0.0,
    margin: float = 0.0,
) -> Tensor:
    """Class-averaged loss with a Python loop over classes (a naive construction of BCL's loss).

    The naive reference of ``tests/losses/test_losses.py``; same maths and shapes as
    :func:`rcl_study.losses.contrastive_loss` with ``class_averaging=True``.
    """
    dtype = features.dtype
    num_classes = class_counts.shape[0]
    cand = features if prototypes is None else torch.cat([features, prototypes])
    cand_labels = (
        labels
        if prototypes is None
        else torch.cat([labels, torch.arange(num_classes, device=labels.device)])
    )
    n = features.shape[0]
    logits = (scale**2 / temperature) * features @ cand.T
    counts = class_counts.to(dtype)
    if balance:
        logits = logits + balance * torch.log(counts / counts.sum())[cand_labels][None, :]
    same = labels[:, None] == cand_labels[None, :]
    if margin:
        logits = logits - (margin * ((counts.min() / counts) ** 0.25)[labels])[:, None] * same
    self_mask = torch.ones_like(same)
    self_mask[torch.arange(n), torch.arange(n)] = False
    exp = torch.exp(logits - logits.max(dim=1, keepdim=True).values.detach()) * self_mask
    denom = torch.zeros(n, dtype=dtype, device=features.device)
    for j in range(num_classes):
        cols = torch.nonzero(cand_labels == j).flatten()
        if cols.numel() == 0:
            continue
        keep = self_mask[:, cols]
        count = keep.sum(dim=1).clamp_min(1)
        denom = denom + (exp[:, cols] * keep).sum(dim=1) / count
    shifted = logits - logits.max(dim=1, keepdim=True).values.detach()
    pos = same & self_mask
    log_prob = shifted - torch.log(denom)[:, None]
    n_pos = pos.sum(dim=1)
    per_anchor = -(log_prob * pos).sum(dim=1) / n_pos.clamp_min(1)
    return per_anchor[n_pos > 0].mean()
