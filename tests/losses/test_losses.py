"""The contrastive loss against the equations of docs/loss.md, term by term."""

import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import brentq

from rcl_study.losses import (
    PRESETS,
    check_loss_inputs,
    contrastive_loss,
    cross_entropy,
    logit_adjusted_cross_entropy,
    resolve_loss,
    total_loss,
)
from tests.helpers.syncs import SyncCounter


def reference_loss(u, y, n, protos, tau, s, gamma, m, class_averaging, s_proto=None):
    """Loop-by-loop transcription of the page's equations, in Python floats (float64).

    ``s_proto``: the factor of view-prototype similarities (``s * s`` when None, i.e. ``scale_on:
    all``; ``s`` for ``scale_on: views``).
    """
    s_proto = s * s if s_proto is None else s_proto
    u = u.tolist()
    y = y.tolist()
    n = [float(v) for v in n.tolist()]
    cand = [(vec, lab) for vec, lab in zip(u, y)]
    if protos is not None:
        cand += [(vec, j) for j, vec in enumerate(protos.tolist())]
    pi = [v / sum(n) for v in n]
    delta = [(min(n) / v) ** 0.25 for v in n]
    per_anchor = []
    for a in range(len(u)):
        others = [k for k in range(len(cand)) if k != a]

        def logit(k, a=a):
            dot = sum(p * q for p, q in zip(u[a], cand[k][0]))
            yk = cand[k][1]
            factor = s * s if k < len(u) else s_proto
            return factor * dot / tau + gamma * math.log(pi[yk]) - m * delta[y[a]] * (yk == y[a])

        def weight(k, others=others):
            if not class_averaging:
                return 1.0
            return float(sum(1 for j in others if cand[j][1] == cand[k][1]))

        log_d = math.log(sum(math.exp(logit(k) - math.log(weight(k))) for k in others))
        pos = [k for k in others if cand[k][1] == y[a]]
        if not pos:
            continue
        per_anchor.append(-sum(logit(p) - log_d for p in pos) / len(pos))
    return sum(per_anchor) / len(per_anchor) if per_anchor else 0.0


def supcon_matrix_form(u, y, tau):
    """SupCon L_out written the SupContrast way: log-softmax over a masked similarity matrix."""
    sim = u @ u.T / tau
    eye = torch.eye(len(y), dtype=torch.bool)
    log_prob = sim - torch.logsumexp(sim.masked_fill(eye, -torch.inf), dim=1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~eye
    has = pos.any(1)
    mean_log_prob = (log_prob * pos).sum(1)[has] / pos.sum(1)[has]
    return -mean_log_prob.mean()


def _batch(seed, n=12, d=5, c=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    u = F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    y = torch.randint(0, c, (n,), generator=g)
    counts = torch.randint(3, 200, (c,), generator=g)
    protos = F.normalize(torch.randn(c, d, generator=g, dtype=dtype), dim=1)
    return u, y, counts, protos


GRID = list(
    itertools.product([0.1, 0.5], [1.0, 1.7], [0.0, 1.0], [0.0, 0.8], [False, True], [False, True])
)


@pytest.mark.parametrize("tau,s,gamma,m,ca,use_protos", GRID)
def test_equals_loop_reference(tau, s, gamma, m, ca, use_protos):
    u, y, counts, protos = _batch(seed=hash((tau, s, gamma, m, ca, use_protos)) % 1000)
    p = protos if use_protos else None
    got = contrastive_loss(
        u, y, counts, p, temperature=tau, scale=s, balance=gamma, margin=m, class_averaging=ca
    )
    want = reference_loss(u, y, counts, p, tau, s, gamma, m, ca)
    assert got.dtype == torch.float64
    assert abs(got.item() - want) < 1e-10


def test_supcon_special_case():
    u, y, counts, _ = _batch(1, n=16)
    got = contrastive_loss(u, y, counts, temperature=0.2)
    assert torch.allclose(got, supcon_matrix_form(u, y, 0.2), atol=1e-12)


def _class_loop_loss():
    """``benchmarks/class_loop_loss.py``'s naive class loop (an independent construction)."""
    root = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        from class_loop_loss import naive_class_loop_loss
    finally:
        sys.path.remove(str(root / "benchmarks"))
    return naive_class_loop_loss


def test_bcl_special_case_matches_class_loop_form():
    naive_class_loop_loss = _class_loop_loss()
    u, y, counts, protos = _batch(2, n=20, c=5)
    got = contrastive_loss(u, y, counts, protos, temperature=0.1, class_averaging=True)
    loop = naive_class_loop_loss(u, y, counts, protos, temperature=0.1)
    assert torch.allclose(got, loop, atol=1e-10)
    assert abs(got.item() - reference_loss(u, y, counts, protos, 0.1, 1, 0, 0, True)) < 1e-10


@pytest.mark.parametrize("s", [0.5, 1.3, 2.0])
def test_scale_equals_temperature_over_s_squared(s):
    u, y, counts, protos = _batch(3)
    a = contrastive_loss(u, y, counts, protos, temperature=0.3, scale=s, class_averaging=True)
    b = contrastive_loss(u, y, counts, protos, temperature=0.3 / s**2, class_averaging=True)
    assert torch.allclose(a, b, atol=1e-12)


VIEWS_GRID = list(itertools.product([0.7, 1.7], [0.0, 1.0], [0.0, 0.8], [False, True]))


@pytest.mark.parametrize("s,gamma,m,ca", VIEWS_GRID)
def test_scale_on_views_equals_loop_reference(s, gamma, m, ca):
    # docs/loss.md, "Where the scale applies": views-views by s^2, view-prototype by s
    u, y, counts, protos = _batch(seed=hash((s, gamma, m, ca)) % 1000)
    kw = dict(temperature=0.2, scale=s, balance=gamma, margin=m, class_averaging=ca)
    got = contrastive_loss(u, y, counts, protos, scale_on="views", **kw)
    want = reference_loss(u, y, counts, protos, 0.2, s, gamma, m, ca, s_proto=s)
    assert abs(got.item() - want) < 1e-10
    # and it is a different loss from scale_on: all whenever s != 1 and prototypes are there
    other = contrastive_loss(u, y, counts, protos, scale_on="all", **kw)
    assert abs(got.item() - other.item()) > 1e-4


@pytest.mark.parametrize("ca", [False, True])
def test_scale_on_readings_coincide_without_prototypes(ca):
    # docs/loss.md: "Without prototypes the two readings coincide."
    u, y, counts, _ = _batch(8)
    kw = dict(temperature=0.1, scale=1.6, balance=1.0, margin=0.5, class_averaging=ca)
    a = contrastive_loss(u, y, counts, None, scale_on="all", **kw)
    v = contrastive_loss(u, y, counts, None, scale_on="views", **kw)
    assert a.item() == v.item()


def test_scale_on_views_is_no_temperature():
    # With prototypes, scale_on: views is not the loss at any temperature t (scale 1). Every t
    # that matches its value on batch A is found (sign changes of L_t(A) - L_views(A) over
    # t in [1e-3, 1e3], refined by brentq); each fails on batch B.
    kw = dict(class_averaging=True)
    a, b = _batch(9, n=10, d=3, c=3), _batch(10, n=10, d=3, c=3)

    def views(batch):
        u, y, counts, protos = batch
        return contrastive_loss(
            u, y, counts, protos, temperature=0.1, scale=2.0, scale_on="views", **kw
        ).item()

    def at_t(batch, t):
        u, y, counts, protos = batch
        return contrastive_loss(u, y, counts, protos, temperature=t, **kw).item()

    target_a, target_b = views(a), views(b)
    ts = torch.logspace(-3, 3, 1201, dtype=torch.float64).tolist()
    gap = [at_t(a, t) - target_a for t in ts]
    roots = [
        brentq(lambda t: at_t(a, t) - target_a, t0, t1, xtol=1e-14)
        for t0, t1, g0, g1 in zip(ts, ts[1:], gap, gap[1:])
        if g0 * g1 <= 0
    ]
    assert roots, "L_t(A) crosses the views loss somewhere; the check below needs a crossing"
    for t in roots:
        assert abs(at_t(a, t) - target_a) < 1e-8
        assert abs(at_t(b, t) - target_b) > 1e-3, t
    # the all reading, by contrast, is exactly the temperature tau / s^2 on both batches
    for u, y, counts, protos in (a, b):
        full = contrastive_loss(u, y, counts, protos, temperature=0.1, scale=2.0, **kw)
        assert abs(full.item() - at_t((u, y, counts, protos), 0.1 / 4)) < 1e-12


def test_gradcheck_float64_scale_on_views():
    u, y, counts, protos = _batch(11, n=6, d=3, c=3)
    u.requires_grad_(True)
    protos.requires_grad_(True)

    def f(a, p):
        return contrastive_loss(
            a,
            y,
            counts,
            p,
            temperature=0.5,
            scale=1.4,
            balance=1.0,
            margin=0.3,
            class_averaging=True,
            scale_on="views",
        )

    assert torch.autograd.gradcheck(f, (u, protos))


def test_hand_computed_2d_case():
    # u0 at 0 deg and u1 at 60 deg are class 0, u2 at 180 deg is class 1; tau = 1, all knobs off.
    # anchor 0: l01 = cos 60 = 0.5, l02 = cos 180 = -1 -> L0 = -(0.5 - log(e^0.5 + e^-1))
    # anchor 1: l10 = 0.5, l12 = cos 120 = -0.5   -> L1 = -(0.5 - log(e^0.5 + e^-0.5))
    # anchor 2 has no positive and is left out: L = (L0 + L1) / 2
    #   log(1.648721 + 0.367879) = log(2.016600) = 0.701413 -> L0 = 0.201413
    #   log(1.648721 + 0.606531) = log(2.255252) = 0.813262 -> L1 = 0.313262;  L = 0.257337
    ang = torch.tensor([0.0, 60.0, 180.0], dtype=torch.float64).deg2rad()
    u = torch.stack([ang.cos(), ang.sin()], 1)
    y = torch.tensor([0, 0, 1])
    got = contrastive_loss(u, y, torch.tensor([10, 10]), temperature=1.0)
    assert abs(got.item() - 0.257337) < 1e-6
    # margin m = 1 with counts [16, 1]: Delta_0 = (1/16)^0.25 = 0.5, so positives of class-0
    # anchors lose 0.5: anchor 0: l01 = 0.0, l02 = -1 -> L0 = -(0 - log(1 + e^-1)) = 0.313262
    # anchor 1: l10 = 0.0, l12 = -0.5 -> L1 = log(1 + e^-0.5) = 0.474077; L = 0.393670
    got = contrastive_loss(u, y, torch.tensor([16, 1]), temperature=1.0, margin=1.0)
    assert abs(got.item() - 0.393670) < 1e-6


def test_gradcheck_float64():
    u, y, counts, protos = _batch(4, n=6, d=3, c=3)
    u.requires_grad_(True)
    protos.requires_grad_(True)

    def f(a, p):
        return contrastive_loss(
            a,
            y,
            counts,
            p,
            temperature=0.5,
            scale=1.2,
            balance=1.0,
            margin=0.3,
            class_averaging=True,
        )

    assert torch.autograd.gradcheck(f, (u, protos))


def test_permutation_invariance():
    u, y, counts, protos = _batch(5, n=16)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    kw = dict(temperature=0.1, scale=1.4, balance=1.0, margin=0.5, class_averaging=True)
    a = contrastive_loss(u, y, counts, protos, **kw)
    b = contrastive_loss(u[perm], y[perm], counts, protos, **kw)
    assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_loss_falls_for_every_preset(preset):
    from rcl_study.config import LossConfig

    spec = resolve_loss(LossConfig(preset=preset), alpha=2.0, beta=0.6)
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(24, 8, generator=g, requires_grad=True)
    logits = torch.randn(12, 4, generator=g, requires_grad=True)
    protos = torch.randn(4, 8, generator=g, requires_grad=True)
    y = torch.randint(0, 4, (12,), generator=g)
    counts = torch.tensor([100, 40, 10, 3])
    opt = torch.optim.SGD([feats, logits, protos], lr=0.5)

    def step():
        out = total_loss(
            spec,
            logits,
            y,
            F.normalize(feats, dim=1),
            torch.cat([y, y]),
            counts,
            F.normalize(protos, dim=1),
        )
        return out["loss"]

    first = step().item()
    for _ in range(10):
        opt.zero_grad()
        step().backward()
        opt.step()
    assert step().item() < first - 1e-3


def _finite_with_grad(u, y, counts, protos=None, **kw):
    u = u.clone().requires_grad_(True)
    loss = contrastive_loss(u, y, counts, protos, temperature=0.1, **kw)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(u.grad).all()
    return loss, u.grad


@pytest.mark.parametrize("ca", [False, True])
def test_edge_cases_finite(ca):
    u, _, counts, _ = _batch(6, n=6, c=4)
    # one class with a single view
    _finite_with_grad(u, torch.tensor([0, 0, 1, 1, 2, 3]), counts, class_averaging=ca)
    # no anchor has a positive: loss 0 with zero gradient
    loss, grad = _finite_with_grad(u[:4], torch.tensor([0, 1, 2, 3]), counts, class_averaging=ca)
    assert loss.item() == 0 and grad.abs().max() == 0
    # a single view, no candidate at all
    loss, grad = _finite_with_grad(u[:1], torch.tensor([2]), counts, class_averaging=ca)
    assert loss.item() == 0
    # C much larger than the batch, with prototypes, all knobs on
    big = torch.randint(1, 500, (1000,))
    protos = F.normalize(torch.randn(1000, u.shape[1], dtype=u.dtype), dim=1)
    _finite_with_grad(
        u,
        torch.tensor([5, 5, 999, 3, 3, 700]),
        big,
        protos,
        class_averaging=ca,
        scale=2.0,
        balance=1.0,
        margin=1.0,
    )
    # extreme temperature and scale
    _finite_with_grad(u, torch.tensor([0, 0, 1, 1, 2, 2]), counts, class_averaging=ca, scale=5.0)


def test_precisions_agree():
    u, y, counts, protos = _batch(7, n=32, d=16, c=5)
    kw = dict(temperature=0.1, scale=1.2, balance=1.0, margin=0.5, class_averaging=True)
    ref = contrastive_loss(u, y, counts, protos, **kw)
    f32 = contrastive_loss(u.float(), y, counts, protos.float(), **kw)
    assert f32.dtype == torch.float32 and abs(f32.item() - ref.item()) < 1e-5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf = contrastive_loss(u.bfloat16(), y, counts, protos.bfloat16(), **kw)
    assert bf.dtype == torch.float32 and abs(bf.item() - ref.item()) < 0.05
    half = contrastive_loss(u.half(), y, counts, protos.half(), **kw)
    assert half.dtype == torch.float32 and abs(half.item() - ref.item()) < 0.02


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        (dict(labels=torch.tensor([0, 1])), "labels"),
        (dict(labels=torch.tensor([0, 1, 2, 7])), "labels must lie in"),
        (dict(class_counts=torch.tensor([3, 0, 2, 1])), "class_counts"),
        (dict(temperature=0.0), "temperature"),
        (dict(scale=-1.0), "scale"),
        (dict(margin=-0.1), "margin"),
        (dict(prototypes=torch.zeros(3, 2)), "prototypes"),
        (dict(features=torch.zeros(4)), "features"),
    ],
)
def test_bad_input(kwargs, needle):
    args = dict(
        features=torch.zeros(4, 2),
        labels=torch.tensor([0, 1, 2, 3]),
        class_counts=torch.tensor([3, 4, 2, 1]),
        prototypes=None,
        temperature=0.1,
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle) as err:
        contrastive_loss(
            args.pop("features"),
            args.pop("labels"),
            args.pop("class_counts"),
            args.pop("prototypes"),
            validate=True,
            **args,
        )
    assert "got" in str(err.value)


@pytest.mark.parametrize(
    "counts,labels,needle",
    [
        (torch.tensor([3, 0, 2, 1]), torch.tensor([0, 1, 2, 3]), "non-positive at classes \\[1\\]"),
        (torch.tensor([3, 4, 2, 1]), torch.tensor([0, 1, 2, 7]), "labels must lie in"),
        (torch.tensor([3, 4, 2, 1]), torch.tensor([-1, 1, 2, 3]), "got range \\[-1, 3\\]"),
        (torch.tensor([[3, 4]]), torch.tensor([0, 1]), "class_counts must be \\[C\\]"),
        (torch.tensor([3, 4]), torch.tensor([0.0, 1.0]), "integer"),
    ],
)
def test_once_per_trial_check(counts, labels, needle):
    # the value checks the step no longer makes, run once per trial (docs/loss.md, "Checks")
    with pytest.raises(ValueError, match=needle) as err:
        check_loss_inputs(counts, labels)
    assert "got" in str(err.value)
    check_loss_inputs(torch.tensor([3, 4, 2, 1]), torch.tensor([0, 1, 2, 3, 3]))  # passes


def test_step_path_reads_no_device_value():
    # without validate, bad values are not looked at (that is the point): no error, no host read
    u = F.normalize(torch.randn(4, 2), dim=1)
    with SyncCounter() as syncs:
        contrastive_loss(u, torch.tensor([0, 1, 1, 0]), torch.tensor([3, 0, 2, 1]), temperature=0.1)
    assert not syncs.calls, syncs.calls


def _preset_batch(seed=0, b=12, d=8, c=4):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(2 * b, d, generator=g, requires_grad=True)
    logits = torch.randn(b, c, generator=g, requires_grad=True)
    protos = torch.randn(c, d, generator=g, requires_grad=True)
    y = torch.randint(0, c, (b,), generator=g)
    return feats, logits, protos, y, torch.tensor([100, 40, 10, 3][:c])


@pytest.mark.parametrize("scale_on", ["all", "views"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_no_host_device_sync_per_step(preset, scale_on):
    # the step's losses, forward and backward, make no synchronising call
    from rcl_study.config import LossConfig

    spec = resolve_loss(LossConfig(preset=preset, scale_on=scale_on), alpha=2.0, beta=0.6)
    feats, logits, protos, y, counts = _preset_batch()
    with SyncCounter() as syncs:
        u, p = F.normalize(feats, dim=1), F.normalize(protos, dim=1)
        out = total_loss(spec, logits, y, u, torch.cat([y, y]), counts, p)
        out["loss"].backward(retain_graph=True)
        la = logit_adjusted_cross_entropy(logits, y, counts)
        con = contrastive_loss(
            u,
            torch.cat([y, y]),
            counts,
            p,
            temperature=0.1,
            scale=1.3,
            balance=1.0,
            margin=0.5,
            class_averaging=True,
            scale_on=scale_on,
        )
        (la + con).backward()
    assert not syncs.calls, syncs.calls
    assert feats.grad is not None and torch.isfinite(feats.grad).all()


def test_classification_losses():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    # CE by hand: mean(log(1 + e^-2), log(1 + e^-1))
    want = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert abs(cross_entropy(logits, y).item() - want) < 1e-6
    # logit adjustment with counts [3, 1]: logits + log([0.75, 0.25])
    adj = logits + torch.log(torch.tensor([0.75, 0.25]))
    want = F.cross_entropy(adj, y).item()
    assert abs(logit_adjusted_cross_entropy(logits, y, torch.tensor([3, 1])).item() - want) < 1e-6
    with pytest.raises(ValueError, match="class_counts"):
        logit_adjusted_cross_entropy(logits, y, torch.tensor([3, 1, 2]))
    with pytest.raises(ValueError, match="class_counts must all be positive"):
        logit_adjusted_cross_entropy(logits, y, torch.tensor([3, 0]), validate=True)
    with pytest.raises(ValueError, match="labels must lie in"):
        logit_adjusted_cross_entropy(
            logits, torch.tensor([0, 2]), torch.tensor([3, 1]), validate=True
        )
