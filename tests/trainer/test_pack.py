"""Packed trials equal separate ``train_trial`` runs; a pack resumes; one member may diverge."""

import pytest
import torch

import rcl_study.trainer.batches as batches
import rcl_study.trainer.loop as train
import rcl_study.trainer.pack as pack
import rcl_study.trainer.setup as trial_setup
from rcl_study.trainer.checkpoint import CheckpointError
from rcl_study.trainer.result import TrialStatus
from tests.conftest import DROP, TINY_STUDY

#: this file's tiny study: one trial of 2 epochs x 3 steps; the loss is each member's knobs
TINY_HERE = {
    "name": "p",
    "data": {"imbalance_ratio": DROP},
    "train": {"epochs": 2, "max_steps_per_epoch": 3, "progress": False},
    "loss": DROP,
    "study": DROP,
    "resources": DROP,
}
#: three members spanning the packable knobs (BCL, BCL+RCL, RCL-ish without prototypes)
KNOBS = [
    {"balance": 0.0, "scale": 1.0, "margin": 0.0},
    {"balance": 1.0, "scale": 1.2, "margin": 0.5},
    {"balance": 1.0, "scale": 1.0, "margin": 0.5, "prototypes": False, "class_averaging": False},
]
#: final metrics of a pack member and of its separate run agree to this (they are computed by
#: the same operations on the same inputs, so on the CPU they are in fact bit-identical)
TOL = 1e-6


def _cfg(knobs=None, mechanism="auto", **train_cfg):
    resources = {"pack_mechanism": mechanism}
    return TINY_STUDY.parse(TINY_HERE, loss=knobs or {}, train=train_cfg, resources=resources)


def _quiet(msg):
    pass


def _close(a, b, keys=("top1", "balanced_acc", "loss", "loss_cls", "loss_con", "compactness")):
    for k in keys:
        assert a.metrics[k] == pytest.approx(b.metrics[k], abs=TOL), k
    assert [h["loss"] for h in a.history] == pytest.approx([h["loss"] for h in b.history], abs=TOL)


def test_first_step_weights_losses_and_gradients_equal_separate_runs():
    cfgs = [_cfg(k) for k in KNOBS]
    members = pack.setup_pack(cfgs, ["a", "b", "c"])
    lead = members[0].trial
    order = batches.epoch_order(lead.data, lead.sched, lead.gens.perm, 0)
    xb, yb = batches.gather_batch(lead.data, order, 0)
    inp = train.batch_inputs(xb, lead.gens.aug, lead.data)
    for cfg, m in zip(cfgs, members):
        single = trial_setup.setup(cfg)
        a = single.net.core.state_dict()
        b = m.trial.net.core.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)  # same initial weights
        o = batches.epoch_order(single.data, single.sched, single.gens.perm, 0)
        sx, sy = batches.gather_batch(single.data, o, 0)
        s_inp = train.batch_inputs(sx, single.gens.aug, single.data)
        assert torch.equal(s_inp, inp) and torch.equal(sy, yb)  # same batch, same views
        # float64 copies of both networks: the loss and gradients of the first step
        for net in (single.net, m.trial.net):
            net.core.double()
        ls = train.forward_loss(single.net, single.spec, s_inp.double(), sy, single.data.counts)
        lp = train.forward_loss(m.trial.net, m.trial.spec, inp.double(), yb, lead.data.counts)
        ls["loss"].backward()
        lp["loss"].backward()
        assert float(ls["loss"].detach()) == pytest.approx(float(lp["loss"].detach()), abs=1e-12)
        for (name, p), q in zip(single.net.core.named_parameters(), m.trial.net.core.parameters()):
            if p.grad is None:
                assert q.grad is None, name
            else:
                assert torch.allclose(p.grad, q.grad, atol=1e-12, rtol=0), name
    # the members differ in their loss only: different knobs, different losses
    losses = [
        float(
            train.forward_loss(m.trial.net, m.trial.spec, inp.double(), yb, lead.data.counts)[
                "loss"
            ]
        )
        for m in members
    ]
    assert len(set(losses)) == 3


def test_pack_equals_separate_train_trial_runs():
    cfgs = [_cfg(k) for k in KNOBS]
    separate = [train.train_trial(c, log=_quiet) for c in cfgs]
    packed = pack.train_pack(cfgs, ["a", "b", "c"], log=_quiet)
    for s, p in zip(separate, packed):
        assert p.status is s.status is TrialStatus.OK
        assert p.metrics["epoch"] == s.metrics["epoch"] == 2
        _close(p, s)
        assert p.metrics["per_class_acc"] == pytest.approx(s.metrics["per_class_acc"], abs=TOL)
        assert p.loss_spec == s.loss_spec
    assert packed[0].metrics["loss"] != packed[1].metrics["loss"]


def test_one_member_diverges_the_others_go_on(monkeypatch):
    real = train.total_loss

    def nan_for_margin_half(spec, *args, **kwargs):
        out = real(spec, *args, **kwargs)
        if spec.scale == 1.2:  # member "b" only
            out["loss"] = out["loss"] * float("nan")
        return out

    cfgs = [_cfg(k) for k in KNOBS]
    separate = [train.train_trial(c, log=_quiet) for c in (cfgs[0], cfgs[2])]
    monkeypatch.setattr(train, "total_loss", nan_for_margin_half)
    packed = pack.train_pack(cfgs, ["a", "b", "c"], log=_quiet)
    assert packed[1].status is TrialStatus.DIVERGED
    assert packed[1].reason == "non-finite loss at epoch 1, step 1"
    assert packed[1].history == []
    for s, p in zip(separate, (packed[0], packed[2])):
        assert p.status is TrialStatus.OK
        _close(p, s)


@pytest.mark.parametrize("mechanism", ["loop", "batched"])
def test_pack_resume_equals_uninterrupted(tmp_path, mechanism):
    cfgs = [_cfg(k, mechanism, epochs=3, checkpoint_every=1) for k in KNOBS[:2]]
    full = pack.train_pack(cfgs, ["a", "b"], workdir=tmp_path / "a", log=_quiet)

    class Stop(Exception):
        pass

    def crash_at_epoch_2(evaluation):
        if evaluation.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        pack.train_pack(cfgs, ["a", "b"], crash_at_epoch_2, workdir=tmp_path / "b", log=_quiet)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    resumed = pack.train_pack(cfgs, ["a", "b"], workdir=tmp_path / "b", log=_quiet)
    for r, f in zip(resumed, full):
        assert r.status is TrialStatus.OK and len(r.history) == 3
        for k in ("top1", "balanced_acc", "loss", "compactness"):
            assert r.metrics[k] == f.metrics[k], k
        assert [h["loss"] for h in r.history] == [h["loss"] for h in f.history]
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["members"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["members"]
    for name in ("a", "b"):
        assert all(torch.equal(a[name]["model"][k], b[name]["model"][k]) for k in a[name]["model"])
    # another pack's checkpoint is refused, not silently mixed in
    with pytest.raises(CheckpointError, match="not of this pack"):
        pack.train_pack(cfgs, ["a", "x"], workdir=tmp_path / "b", log=_quiet)


def test_members_differing_in_other_keys_are_refused():
    with pytest.raises(ValueError, match="'train.lr'"):
        pack.check_packable([_cfg(), _cfg(lr=0.5)])
    with pytest.raises(ValueError, match="'train.seed'"):
        pack.check_packable([_cfg(), _cfg(seed=3)])
    pack.check_packable([_cfg(k) for k in KNOBS])
