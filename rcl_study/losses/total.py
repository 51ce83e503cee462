"""The total loss of a trial: ``alpha * L_cls + beta * L_con`` as its :class:`LossSpec` says."""

from __future__ import annotations

from torch import Tensor

from rcl_study.losses.classification import cross_entropy, logit_adjusted_cross_entropy
from rcl_study.losses.contrastive import contrastive_loss
from rcl_study.losses.presets import LossSpec


def total_loss(
    spec: LossSpec,
    logits: Tensor,
    cls_labels: Tensor,
    features: Tensor | None,
    con_labels: Tensor | None,
    class_counts: Tensor,
    prototypes: Tensor | None = None,
) -> dict[str, Tensor]:
    """``alpha * L_cls + beta * L_con``, returned with its components.

    Shape:
        - logits: ``[B, C]`` classifier logits of the classifier view; cls_labels: ``[B]``.
        - features: ``[N, D]`` normalised contrastive views; con_labels: ``[N]``.
        - class_counts: ``[C]``; prototypes: ``[C, D]`` or None.

    Returns:
        ``{"loss", "loss_cls", "loss_con"}`` scalars.

    """
    if spec.classification is not None:
        from rcl_study.registry import get

        loss_fn = get("losses", spec.classification)
        l_cls = loss_fn(logits, cls_labels, class_counts, **spec.classification_params)
    elif spec.logit_adjust:
        l_cls = logit_adjusted_cross_entropy(logits, cls_labels, class_counts, spec.tau_la)
    else:
        l_cls = cross_entropy(logits, cls_labels)
    out = {"loss_cls": l_cls}
    total = spec.alpha * l_cls
    if spec.contrastive and spec.beta > 0 and features is not None:
        con_fn = contrastive_loss
        if spec.contrastive_loss is not None:
            from rcl_study.registry import get

            con_fn = get("contrastive", spec.contrastive_loss)
        l_con = con_fn(
            features,
            con_labels,
            class_counts,
            prototypes if spec.prototypes else None,
            temperature=spec.temperature,
            scale=spec.scale,
            balance=spec.balance,
            margin=spec.margin,
            class_averaging=spec.class_averaging,
            scale_on=spec.scale_on,
            **spec.contrastive_params,
        )
        out["loss_con"] = l_con
        total = total + spec.beta * l_con
    else:
        out["loss_con"] = l_cls.new_zeros(())
    out["loss"] = total
    return out
