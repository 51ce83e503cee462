"""SupCon, BCL and RCL as one vectorised function (definition: ``docs/loss.md``)."""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import Tensor

from rcl_study.losses.checks import check_class_counts, check_labels

SCALE_ON = ("all", "views")


def _check_inputs(
    features: Tensor,
    labels: Tensor,
    class_counts: Tensor,
    prototypes: Tensor | None,
    temperature: float,
    scale: float,
    balance: float,
    margin: float,
    scale_on: str,
    validate: bool,
) -> None:
    """Shape, dtype and knob checks (no device read); value checks only when ``validate``."""
    if features.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    if labels.dim() != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"labels must be [N] with N = features.shape[0] = {features.shape[0]}, "
            f"got shape {tuple(labels.shape)}"
        )
    if labels.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if class_counts.dim() != 1 or class_counts.numel() < 1:
        raise ValueError(f"class_counts must be [C], got shape {tuple(class_counts.shape)}")
    num_classes = class_counts.shape[0]
    if validate:
        check_class_counts(class_counts)
        check_labels(labels, num_classes)
    if prototypes is not None and (
        prototypes.dim() != 2 or prototypes.shape != (num_classes, features.shape[1])
    ):
        raise ValueError(
            f"prototypes must be [C, D] = [{num_classes}, {features.shape[1]}], "
            f"got shape {tuple(prototypes.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if not balance >= 0:
        raise ValueError(f"balance must be >= 0, got {balance}")
    if scale_on not in SCALE_ON:
        raise ValueError(f"scale_on must be one of {SCALE_ON}, got {scale_on!r}")


def _gather_views(
    features: Tensor, labels: Tensor, validate: bool = False
) -> tuple[Tensor, Tensor, Tensor, int]:
    """All processes' views (gradients flow back to the local part) and the local anchors' rows.

    Every process must hold the same number of views (the trainer's batches do); ``validate``
    checks it with an extra collective and a host read.
    """
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return features, labels, torch.arange(features.shape[0], device=features.device), 1
    import torch.distributed.nn.functional as dist_fn

    world, rank = dist.get_world_size(), dist.get_rank()
    if validate:
        _check_same_size(features, world)
    with warnings.catch_warnings():  # deprecated in favour of a private API; still correct
        warnings.simplefilter("ignore", FutureWarning)
        all_feats = torch.cat(dist_fn.all_gather(features), dim=0)
    all_labels = [torch.empty_like(labels) for _ in range(world)]
    dist.all_gather(all_labels, labels.contiguous())
    n = features.shape[0]
    anchors = torch.arange(rank * n, (rank + 1) * n, device=features.device)
    return all_feats, torch.cat(all_labels), anchors, world


def _check_same_size(features: Tensor, world: int) -> None:
    sizes = [torch.zeros(1, dtype=torch.long, device=features.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([features.shape[0]], device=features.device))
    if len({int(s) for s in sizes}) != 1:
        raise ValueError(
            f"every process must hold the same number of views, got {[int(s) for s in sizes]}"
        )


def contrastive_loss(
    features: Tensor,
    labels: Tensor,
    class_counts: Tensor,
    prototypes: Tensor | None = None,
    *,
    temperature: float,
    scale: float = 1.0,
    balance: float = 0.0,
    margin: float = 0.0,
    class_averaging: bool = False,
    scale_on: str = "all",
    gather: bool = True,
    validate: bool = False,
) -> Tensor:
    r"""The SupCon / BCL / RCL contrastive loss of ``docs/loss.md``.

    For anchor view ``a`` and candidate ``k`` in ``K \ {a}`` (``K`` = views, plus one prototype
    per class when ``prototypes`` is given)::

        l_ak     = sigma_k <u_a, u_k> / tau + gamma log(pi_{y_k}) - m Delta_{y_a} [y_k == y_a]
        log D_a  = logsumexp_{k in K \ {a}} (l_ak - log w_{a, y_k})
        L_a      = -(1 / |P(a)|) sum_{p in P(a)} (l_ap - log D_a)
        L        = mean of L_a over anchors with |P(a)| > 0 (0, with zero gradient, if none)

    with ``pi = n / sum(n)``, ``Delta_y = (min(n) / n_y) ** 0.25``, ``P(a)`` the candidates sharing
    the anchor's label, and ``w_{a,j}`` the number of candidates of class ``j`` in ``K \ {a}`` when
    ``class_averaging`` (BCL) is on, else 1. The similarity factor ``sigma_k`` is ``s^2`` for
    every candidate when ``scale_on="all"`` (then the scale is exactly temperature ``tau / s^2``),
    and ``s^2`` for views but ``s`` for prototypes when ``scale_on="views"`` (prototypes stay unit
    length; ``docs/loss.md``, "Where the scale applies").

    Special cases: SupCon "L_out" (Khosla et al. 2020) with everything off; BCL's balanced
    contrastive loss (Zhu et al. 2022) with ``class_averaging=True`` and prototypes; the three RCL
    components (arXiv 2312.01753) are ``balance`` (gamma), ``scale`` (s) and ``margin`` (m).

    Under ``torch.distributed`` with several processes (and ``gather=True``), the views of all
    processes are candidates and the local views are anchors; the returned value is scaled so that
    the mean over processes equals the loss of one process holding the whole batch, and
    data-parallel gradient averaging gives that process's gradients. Every process must hold the
    same number of views.

    Computed in float32 (or float64 if the features are float64), also under autocast. No host
    read of a device value happens unless ``validate=True``: shapes, dtypes and knobs are always
    checked; positive counts, labels in range (and equal view counts across processes) only with
    ``validate=True``, or once per trial through :func:`rcl_study.losses.check_loss_inputs`.

    Shape:
        - features: ``[N, D]``, L2-normalised embeddings of all contrastive views stacked.
        - labels: ``[N]`` integer class of each view, in ``[0, C - 1]``.
        - class_counts: ``[C]`` training-set images per class (all positive).
        - prototypes: ``[C, D]`` L2-normalised class prototypes, or ``None``.
        - output: scalar.

    Example:
        >>> u = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
        >>> y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
        >>> loss = contrastive_loss(u, y, torch.tensor([50, 20, 5]), temperature=0.1)

    """
    _check_inputs(
        features,
        labels,
        class_counts,
        prototypes,
        temperature,
        scale,
        balance,
        margin,
        scale_on,
        validate,
    )
    device_type = features.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
        views = features.to(dtype)
        labels = labels.long()
        counts = class_counts.to(device=features.device, dtype=dtype)
        num_classes = counts.shape[0]

        views, cand_labels, anchor_rows, world = (
            _gather_views(views, labels, validate)
            if gather
            else (views, labels, torch.arange(views.shape[0], device=views.device), 1)
        )
        anchors = views[anchor_rows]
        # [A, M] logits of every anchor against every candidate (views, then prototypes)
        logits = (scale * scale / temperature) * (anchors @ views.T)
        if prototypes is not None:
            proto_factor = scale * scale if scale_on == "all" else scale
            proto_logits = (proto_factor / temperature) * (anchors @ prototypes.to(dtype).T)
            logits = torch.cat([logits, proto_logits], dim=1)
            cand_labels = torch.cat(
                [cand_labels, torch.arange(num_classes, device=views.device)], dim=0
            )
        anchor_labels = cand_labels[anchor_rows]
        same = anchor_labels[:, None] == cand_labels[None, :]
        if balance != 0.0:
            log_prior = torch.log(counts / counts.sum())
            logits = logits + balance * log_prior[cand_labels][None, :]
        if margin != 0.0:
            delta = (counts.min() / counts) ** 0.25
            logits = logits - (margin * delta[anchor_labels])[:, None] * same

        not_self = torch.ones_like(same)
        not_self[torch.arange(anchor_rows.shape[0], device=views.device), anchor_rows] = False
        positives = same & not_self

        denom_terms = logits
        if class_averaging:
            # candidates per class, shape-static (no bincount): [C]
            per_class = torch.zeros(num_classes, dtype=dtype, device=views.device).index_add_(
                0, cand_labels, torch.ones_like(cand_labels, dtype=dtype)
            )
            # w_{a, y_k}: candidates of class y_k in K \ {a}
            weight = per_class[cand_labels][None, :] - same.to(dtype)
            denom_terms = logits - torch.log(weight.clamp_min(1.0))
        denom_terms = denom_terms.masked_fill(~not_self, float("-inf"))
        # a lone view with no candidate at all (N = 1, no prototypes): keep logsumexp finite
        denom_terms = torch.where(not_self.any(dim=1, keepdim=True), denom_terms, 0.0)
        log_denom = torch.logsumexp(denom_terms, dim=1)

        n_pos = positives.sum(dim=1)
        has_pos = n_pos > 0
        pos_logit_sum = (logits * positives).sum(dim=1)
        per_anchor = log_denom - pos_logit_sum / n_pos.clamp_min(1)
        per_anchor = torch.where(has_pos, per_anchor, torch.zeros_like(per_anchor))

        valid = has_pos.sum().to(dtype)
        if world > 1:
            valid = valid.detach().clone()
            dist.all_reduce(valid)
        return per_anchor.sum() * world / valid.clamp_min(1.0)
