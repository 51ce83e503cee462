"""Loss presets (``ce``, ``la``, ``supcon``, ``bcl``, ``rcl``, ``bcl+rcl``) as values.

Also the resolved loss of a trial (:class:`LossSpec`) and the keys a pack's members may differ in.
No torch here: the study file's schema, the planner and the report read these, and a driver that
trains nothing (a Ray study's) then never imports torch. The loss itself is
:func:`rcl_study.losses.total.total_loss`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# The RCL paper does not publish its scale and margin; these starting values are ours, chosen so
# that each knob is clearly "on" without dominating the logits (s = 1.2 sharpens tau = 0.1 to about
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

#: dotted keys in which the members of one pack may differ (the loss knobs; everything else, the
#: data, the network, the schedule and the seed, is shared)
PACKABLE_KEYS = (
    "loss.balance",
    "loss.scale",
    "loss.margin",
    "loss.class_averaging",
    "loss.prototypes",
    "loss.logit_adjust",
    "loss.scale_on",
)


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
