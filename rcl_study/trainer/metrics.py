"""Evaluation metrics of a long-tail paper, from predictions and features (pure functions)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rcl_study.data.longtail import shot_groups


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, C]`` counts, rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class, ``[C]``; NaN for a class absent from the test set."""
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, train_counts: np.ndarray, mask: np.ndarray | None = None
) -> dict:
    """Top-1, balanced accuracy (mean per-class recall), per-class and many/medium/few accuracy.

    Shot-group accuracy is the mean per-class accuracy over the group's classes (None when the
    group is empty). ``mask`` (bool ``[N]``) adds ``top1_lossless`` / ``balanced_acc_lossless``.
    """
    num_classes = len(train_counts)
    cm = confusion_matrix(y_true, y_pred, num_classes)
    pc = per_class_accuracy(cm)
    out: dict = {
        "top1": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "balanced_acc": float(np.nanmean(pc)),
        "per_class_acc": [None if np.isnan(v) else float(v) for v in pc],
    }
    for name, classes in shot_groups(train_counts).items():
        vals = pc[classes] if len(classes) else np.array([])
        vals = vals[~np.isnan(vals)]
        out[f"{name}_acc"] = float(vals.mean()) if len(vals) else None
    if mask is not None and np.any(mask):
        sub = classification_metrics(
            np.asarray(y_true)[mask], np.asarray(y_pred)[mask], train_counts
        )
        out["top1_lossless"] = sub["top1"]
        out["balanced_acc_lossless"] = sub["balanced_acc"]
    return out


def feature_measures(features: Tensor, labels: Tensor, num_classes: int) -> dict:
    """Feature-space measures the RCL paper argues about.

    - ``compactness``: mean cosine of each (test) feature to its class mean (1 = collapsed).
    - ``equiangular_gap_deg``: standard deviation, in degrees, of the pairwise angles between
      the normalised class means (0 when all angles are equal, as on a regular simplex; lower is
      better; called ``balancedness`` in older records).

    Shape: features ``[N, D]``, labels ``[N]``.
    """
    f = F.normalize(features.double(), dim=1)
    present = torch.unique(labels)
    means = torch.stack([f[labels == c].mean(0) for c in present])  # [C', D]
    means_n = F.normalize(means, dim=1)
    lookup = torch.full((num_classes,), -1, dtype=torch.long, device=labels.device)
    lookup[present] = torch.arange(len(present), device=labels.device)
    cos_to_mean = (f * means_n[lookup[labels]]).sum(1)
    out = {"compactness": float(cos_to_mean.mean())}
    if len(present) >= 3:
        cos = (means_n @ means_n.T).clamp(-1, 1)
        iu = torch.triu_indices(len(present), len(present), offset=1)
        angles = torch.rad2deg(torch.arccos(cos[iu[0], iu[1]]))
        out["equiangular_gap_deg"] = float(angles.std(unbiased=False))
    else:
        out["equiangular_gap_deg"] = None
    return out


def _class_means(z: Tensor, labels: Tensor, classes: Tensor) -> Tensor:
    """The L2-normalised mean of the rows of ``z`` of each class in ``classes``, ``[K, D]``."""
    return F.normalize(torch.stack([z[labels == c].mean(0) for c in classes]), dim=1)


def projection_measures(
    z: Tensor, labels: Tensor, train_counts: np.ndarray, train_means: Tensor | None = None
) -> dict:
    """Measures of the normalised projections, the space where the contrastive loss acts.

    - ``proj_compactness``: the class-balanced mean, over classes, of each class's mean cosine
      between its (test) projections and their normalised class mean (1 = each class collapsed
      to a point; within-class variability, NC1 of Papyan et al. 2020); ``proj_compactness_many``,
      ``_medium``, ``_few``: the same over the classes of each shot group (None when empty).
    - ``proj_min_angle_deg`` / ``proj_mean_angle_deg``: the smallest and the mean angle between
      two normalised class means (separation; a regular simplex of C classes has every angle at
      ``arccos(-1 / (C - 1))``, 96.4 degrees for C = 10; NC2).
    - ``proj_ncm_balanced_acc``: balanced accuracy of the nearest-class-mean classifier (highest
      cosine to a class mean of the TRAINING projections, ``train_means``; Mensink et al. 2013,
      NC4); None when ``train_means`` is not given.

    Shapes: ``z`` ``[N, D]`` (L2-normalised), ``labels`` ``[N]``, ``train_counts`` ``[C]``,
    ``train_means`` ``[C, D]`` (L2-normalised; a class without training images is never chosen
    when its row is NaN).
    """
    z = F.normalize(z.double(), dim=1)
    labels = labels.long()
    num_classes = len(train_counts)
    present = torch.unique(labels)
    means = _class_means(z, labels, present)
    per_class = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for k, c in enumerate(present.tolist()):
        per_class[c] = (z[labels == c] @ means[k]).mean()
    pc = per_class.numpy()
    out: dict = {"proj_compactness": float(np.nanmean(pc))}
    for name, classes in shot_groups(train_counts).items():
        vals = pc[classes] if len(classes) else np.array([])
        vals = vals[~np.isnan(vals)]
        out[f"proj_compactness_{name}"] = float(vals.mean()) if len(vals) else None
    if len(present) >= 2:
        cos = (means @ means.T).clamp(-1, 1)
        iu = torch.triu_indices(len(present), len(present), offset=1)
        angles = torch.rad2deg(torch.arccos(cos[iu[0], iu[1]]))
        out["proj_min_angle_deg"] = float(angles.min())
        out["proj_mean_angle_deg"] = float(angles.mean())
    else:
        out["proj_min_angle_deg"] = out["proj_mean_angle_deg"] = None
    out["proj_ncm_balanced_acc"] = None
    if train_means is not None:
        scores = z @ train_means.double().T  # [N, C]
        pred = torch.nan_to_num(scores, nan=-2.0).argmax(1)
        cm = confusion_matrix(labels.numpy(), pred.numpy(), num_classes)
        out["proj_ncm_balanced_acc"] = float(np.nanmean(per_class_accuracy(cm)))
    return out


def train_class_means(z: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """The normalised mean projection of each class, ``[C, D]`` (a NaN row for an absent class)."""
    z = F.normalize(z.double(), dim=1)
    out = torch.full((num_classes, z.shape[1]), float("nan"), dtype=torch.float64)
    present = torch.unique(labels.long())
    out[present] = _class_means(z, labels.long(), present)
    return out
