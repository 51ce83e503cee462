"""Loss presets (``ce``, ``la``, ``supcon``, ``bcl``, ``rcl``, ``bcl+rcl``) and the total loss."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import Tensor

from rcl_study.losses.classification import cross_entropy, logit_adjusted_cross_entropy
from rcl_study.losses.contrastive import contrastive_loss

# The RCL paper does not publish its scale and margin; these starting values are ours, chosen so
# that
# each knob is clearly "on" without dominating the logits (s = 1.2 sharpens tau = 0.1 to about
# 0.07; m = 0.5 logit units on the rarest class). Studies sweep both.
DEFAULT_RCL_SCALE = 1.2
DEFAULT_RCL_MARGIN = 0.5

#: preset -> (logit-adjusted CE, contrastive on, class averaging, prototypes, balance, scale,
#: margin)
PRESETS: dict[str, tuple[bool, bool, bool, bool, float, float, float]] = {
    "ce": (False, False, False, False, 0.0, 1.0, 0.0),
    "la": (True, False, False, False, 0.0, 1.0, 0.0),
    "supcon": (True, True, False, False, 0.0, 1.0, 0.0),
    "bcl": (True, True, True, True, 0.0, 1.0, 0.0),
    "rcl": (True, True, False, False, 1.0, DEFAULT_RCL_SCALE, DEFAULT_RCL_MARGIN),
    "bcl+rcl": (True, True, True, True, 1.0, DEFAULT_RCL_SCALE, DEFAULT_RCL_MARGIN),
}

#: the value of each ablation component when it is switched off
OFF_VALUES: dict[str, float | bool] = {
    "balance": 0.0,
    "scale": 1.0,
    "margin": 0.0,
    "class_averaging": False,
    "prototypes": False,
    "logit_adjust": False,
}


@dataclass(frozen=True)
class LossSpec:
    """The fully resolved loss of one trial."""

    logit_adjust: bool
    contrastive: bool
    class_averaging: bool
    prototypes: bool
    balance: float
    scale: float
    margin: float
    temperature: float
    tau_la: float
    alpha: float
    beta: float
    scale_on: str = "all"
    #: a registered classification loss (``rcl_study.registry``) replacing CE / LA-CE, and its
    #: keyword arguments
    classification: str | None = None
    classification_params: dict[str, float] = field(default_factory=dict)
    #: a registered contrastive loss (``rcl_study.registry``, kind ``contrastive``) replacing
    #: the built-in one, and its extra keyword arguments
    contrastive_loss: str | None = None
    contrastive_params: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float | bool]:
        """Plain dict, for records."""
        return asdict(self)


def resolve_loss(loss_cfg, alpha: float, beta: float) -> LossSpec:
    """Resolve a ``LossConfig`` (preset plus explicit knobs) into a :class:`LossSpec`."""
    la, con, ca, protos, bal, scale, margin = PRESETS[loss_cfg.preset]

    def pick(value, default):
        return default if value is None else value

    return LossSpec(
        logit_adjust=pick(loss_cfg.logit_adjust, la),
        contrastive=con,
        class_averaging=pick(loss_cfg.class_averaging, ca),
        prototypes=pick(loss_cfg.prototypes, protos),
        balance=float(pick(loss_cfg.balance, bal)),
        scale=float(pick(loss_cfg.scale, scale)),
        margin=float(pick(loss_cfg.margin, margin)),
        temperature=loss_cfg.temperature,
        tau_la=loss_cfg.tau_la,
        alpha=alpha,
        beta=beta if con else 0.0,
        scale_on=loss_cfg.scale_on,
        classification=getattr(loss_cfg, "classification", None),
        classification_params=dict(getattr(loss_cfg, "classification_params", {}) or {}),
        contrastive_loss=getattr(loss_cfg, "contrastive", None),
        contrastive_params=dict(getattr(loss_cfg, "contrastive_params", {}) or {}),
    )


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
