"""BCL's balanced supervised contrastive loss, written naively from its definition (a baseline).

Not product code, and not copied from either implementation: the independent yardstick of
``benchmarks/loss_speed.py``. Zhu et al. 2022 ("Balanced Contrastive Learning for Long-Tailed
Visual Recognition", CVPR, Sec. 3) define, for the views ``B`` of a batch together with one
prototype per class (``B_j``: the members of class ``j``, an anchor's own class counted without
the anchor itself)::

    L_i = -1 / (|B_{y_i}| - 1) * sum_{p in B_{y_i} \\ {i}} log(
              exp(z_i . z_p / tau)
              / sum_{j in Y} 1 / |B_j| * sum_{k in B_j} exp(z_i . z_k / tau) )

averaged over the views (the anchors; prototypes are candidates only). Here each anchor is one
iteration of a Python loop, and within it the denominator is the sum over the candidates other
than the anchor of ``exp(z_i . z_k / tau) / |B_{y_k}|`` (the class sums, each divided by its
class size, summed again in one pass), with no log-sum-exp shift: in float32 the largest term
is ``exp(1 / tau)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def naive_balscl(
    views: Tensor, labels: Tensor, prototypes: Tensor, *, temperature: float
) -> Tensor:
    """BCL's loss of ``views`` ``[N, D]`` and ``prototypes`` ``[C, D]``, one anchor at a time.

    ``labels`` ``[N]`` are the views' classes in ``[0, C - 1]``; prototype ``j`` is of class
    ``j``. Features are used as given (the caller normalises them). Returns the scalar loss.
    """
    n, num_classes = views.shape[0], prototypes.shape[0]
    candidates = torch.cat([views, prototypes])
    candidate_labels = torch.cat([labels, torch.arange(num_classes, device=labels.device)])
    per_anchor = []
    for i in range(n):
        others = torch.ones(n + num_classes, dtype=torch.bool, device=views.device)
        others[i] = False
        similarity = (candidates @ views[i])[others] / temperature
        y = candidate_labels[others]
        class_size = torch.bincount(y, minlength=num_classes).to(views.dtype)  # |B_j|, i left out
        denominator = (torch.exp(similarity) / class_size[y]).sum()
        positive = y == labels[i]
        log_ratio = similarity[positive] - torch.log(denominator)
        per_anchor.append(-log_ratio.sum() / positive.sum())
    return torch.stack(per_anchor).mean()
