"""Packed trials: K trials that differ only in loss knobs, trained together in one process.

``train_pack(cfgs, names)`` is ``[train_trial(c) for c in cfgs]`` done at once: one setup, one
data set on the device, one epoch order and one set of augmented views per step (common random
numbers), then each member's own forward, loss, backward and SGD step. Each member is a
:class:`~rcl_study.trainer.setup.Trial` of its own (weights, BatchNorm statistics, optimiser, loss,
history) that shares the data, schedule and random streams of the pack. Every member's network is
built from the random state ``train_trial`` builds it from, so a member's weights, batches, losses
and gradients are those of its separate run (``tests/trainer/test_pack.py``).

Mechanism (``resources.pack_mechanism``): ``loop`` calls the members' modules one after another on
each batch (exact by construction); ``batched`` trains them as one
:class:`~rcl_study.trainer.stacked.StackedNet` (grouped convolutions, per-member BatchNorm, one
SGD step over the stacked parameters), stacked at the start of each epoch and written back to the
members at its end, equal to the loop in float64 and within float32 rounding otherwise
(``tests/trainer/test_stacked.py``). ``auto`` picks the loop where
``benchmarks/pack_mechanism.py`` did not measure the batched pack faster (figures in
``docs/results.md``). What a pack saves on a CPU is each trial's start-up, data loading and
augmentation.

A member whose loss turns non-finite is marked ``diverged`` at the end of that epoch (as
``train_trial`` does) and the others go on. One checkpoint holds the whole pack.

Stopping (:mod:`rcl_study.trainer.budget`): with a :class:`~.budget.PackBudget` the members are in
priority order; the deciding epoch is timed and evaluated (whatever ``train.eval_every``), the
members that do not fit are ``stopped`` there, and before an epoch that would not end in time
every member left is evaluated and ``stopped``. On SIGTERM or Ctrl-C the pack raises
:class:`~.budget.TrialsStopped` with every member's result (``stopped`` members: their last
evaluation and ``epochs_trained``). A resumed pack trains again the members stopped at its
checkpoint's epoch; one stopped earlier stays stopped (it cannot rejoin the pack's batches; a
later run trains it afresh).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rcl_study.config import StudyFile, to_dict
from rcl_study.losses import LossSpec, resolve_loss, total_loss
from rcl_study.losses.presets import PACKABLE_KEYS
from rcl_study.trainer import Report
from rcl_study.trainer import evaluation as ev
from rcl_study.trainer.batches import epoch_order, gather_batch
from rcl_study.trainer.budget import PackBudget, TrialsStopped
from rcl_study.trainer.checkpoint import (
    CheckpointError,
    CheckpointMismatch,
    atomic_save,
    plain,
    read_checkpoint,
)
from rcl_study.trainer.loop import batch_inputs, update
from rcl_study.trainer.result import Evaluation, TrialResult, TrialStatus
from rcl_study.trainer.setup import (
    Trial,
    build_network,
    make_generators,
    make_schedule,
    prepare_data,
    setup_start,
)
from rcl_study.trainer.stacked import StackedSGD, stack, why_not_stackable


@dataclass
class Member:
    """One packed trial: its name, its :class:`Trial` and where it stands."""

    name: str
    trial: Trial
    status: TrialStatus = TrialStatus.OK
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    #: epochs this member has trained (its last evaluation may be older)
    epochs_trained: int = 0

    def stop(self, why: str) -> None:
        """Mark the member ``stopped`` (it keeps its weights, history and epochs trained)."""
        self.status, self.reason = TrialStatus.STOPPED, why


def _fixed_part(cfg: StudyFile) -> dict[str, Any]:
    raw = to_dict(cfg)
    for key in PACKABLE_KEYS:
        section, _, leaf = key.partition(".")
        raw.get(section, {}).pop(leaf, None)
    return raw


def check_packable(cfgs: list[StudyFile]) -> None:
    """Raise ``ValueError`` naming the first key outside ``PACKABLE_KEYS`` where members differ."""
    if not cfgs:
        raise ValueError("a pack needs at least one member")
    first = _fixed_part(cfgs[0])
    for cfg in cfgs[1:]:
        other = _fixed_part(cfg)
        for section in sorted(set(first) | set(other)):
            a, b = first.get(section), other.get(section)
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
                section = f"{section}.{key}"
            raise ValueError(
                f"members of a pack may differ only in {', '.join(PACKABLE_KEYS)}; "
                f"they differ in '{section}'"
            )


def setup_pack(cfgs: list[StudyFile], names: list[str]) -> list[Member]:
    """One shared setup (as :func:`rcl_study.trainer.setup.setup`), one network per member.

    Each network is built from the random state the single trial builds its network from, so
    the members start from the weights of their separate runs (equal weights for equal seeds).
    """
    cfg = cfgs[0]
    _, acc, raw = setup_start(cfg)
    if acc.num_processes > 1:
        raise ValueError("a pack trains in one process; it cannot be data-parallel")
    state = torch.get_rng_state()
    nets, specs = [], []
    for c in cfgs:
        torch.set_rng_state(state)
        nets.append(build_network(c, raw, acc))
        specs.append(resolve_loss(c.loss, c.train.alpha, c.train.beta))
    data = prepare_data(cfg, raw, acc.device)
    sched = make_schedule(cfg, len(raw.train_y), 1)
    gens = make_generators(cfg.train.seed, acc.device)
    return [
        Member(name, Trial(c, s, net, data, sched, gens))
        for name, c, s, net in zip(names, cfgs, specs, nets)
    ]


def train_pack_epoch(
    members: list[Member], epoch: int, mechanism: str = "loop"
) -> dict[str, torch.Tensor]:
    """One epoch of every member on the same batches and views; each member's mean losses.

    ``mechanism``: ``loop`` (each member's own forward, backward and step in turn) or
    ``batched`` (the members as one :class:`~.stacked.StackedNet`, written back to each member at
    the end of the epoch; :func:`batching_refusal` says when it cannot be used).

    A member with a non-finite loss in the epoch is marked ``diverged`` (read once, at the end
    of the epoch, like :func:`rcl_study.trainer.loop.train_epoch`).
    """
    lead = members[0].trial
    data, sched, gens, device = lead.data, lead.sched, lead.gens, lead.device
    sums = torch.zeros(len(members), len(ev.LOSS_KEYS), device=device)
    bad = torch.full((len(members),), -1, dtype=torch.long, device=device)
    steps = _BatchedSteps(members) if mechanism == "batched" else _LoopedSteps(members)
    order = epoch_order(data, sched, gens.perm, 0)
    for step in range(sched.steps):
        xb, yb = gather_batch(data, order, step)
        # laid out once for all members (forward_loss then finds it so)
        inp = batch_inputs(xb, gens.aug, data).contiguous(memory_format=lead.net.memory_format)
        losses = steps.update(inp, yb, data.counts, sched.lr(epoch, step))  # [K, LOSS_KEYS]
        bad = torch.where((bad < 0) & ~torch.isfinite(losses[:, _LOSS]), step, bad)
        sums += losses
    steps.finish()
    first_bad = bad.tolist()  # one device read
    for m, step_bad in zip(members, first_bad):
        if step_bad >= 0:
            m.status = TrialStatus.DIVERGED
            m.reason = f"non-finite loss at epoch {epoch + 1}, step {step_bad + 1}"
    return {m.name: sums[i] / sched.steps for i, m in enumerate(members)}


_LOSS = ev.LOSS_KEYS.index("loss")


class _LoopedSteps:
    """Each member's :func:`~rcl_study.trainer.loop.update` in turn; losses ``[K, LOSS_KEYS]``."""

    def __init__(self, members: list[Member]) -> None:
        self.trials = [m.trial for m in members]

    def update(
        self, inp: torch.Tensor, yb: torch.Tensor, counts: torch.Tensor, lr: float
    ) -> torch.Tensor:
        rows = []
        for t in self.trials:
            losses = update(t.net, t.spec, inp, yb, counts, lr)
            rows.append(torch.stack([losses[k].float() for k in ev.LOSS_KEYS]))
        return torch.stack(rows)

    def finish(self) -> None:
        """Nothing to write back: the members trained their own modules."""


class _BatchedSteps:
    """The members' steps as one stacked forward, backward, SGD step: losses ``[K, LOSS_KEYS]``."""

    def __init__(self, members: list[Member]) -> None:
        self.specs = [m.trial.spec for m in members]
        lead = members[0].trial.net
        self.acc = lead.acc
        self.net = stack([m.trial.net.core for m in members], lead.memory_format)
        self.net.train()
        self.opt = StackedSGD(self.net, [m.trial.net.opt for m in members])

    def update(
        self, inp: torch.Tensor, yb: torch.Tensor, counts: torch.Tensor, lr: float
    ) -> torch.Tensor:
        b = len(yb)
        with self.acc.autocast():
            _, logits, proj = self.net(inp)
            protos = self.net.prototypes() if any(s.prototypes for s in self.specs) else None
        logits, proj = logits.float(), proj.float()
        con_labels = torch.cat([yb, yb])
        rows, total = [], None
        for k, spec in enumerate(self.specs):
            p = None if protos is None else protos[k].float()
            losses = total_loss(spec, logits[:b, k], yb, proj[b:, k], con_labels, counts, p)
            total = losses["loss"] if total is None else total + losses["loss"]
            rows.append(torch.stack([losses[key].detach().float() for key in ev.LOSS_KEYS]))
        self.opt.zero_grad()
        self.acc.backward(total)
        self.opt.step(lr)
        return torch.stack(rows)

    def finish(self) -> None:
        """Write weights, BatchNorm statistics and momentum back to the members."""
        self.net.write_back()
        self.opt.write_back()


def pack_mechanism(setting: str, members: list[Member], emit: Callable[[str], None]) -> str:
    """``loop`` or ``batched`` for ``resources.pack_mechanism`` (``auto``, ``loop``, ``batched``).

    ``auto`` batches only where ``benchmarks/pack_mechanism.py`` measured the batched pack faster
    than the loop (:data:`BATCHED_WINS`). ``batched`` where stacking is refused
    (:func:`batching_refusal`) trains in a loop, and says why once.
    """
    if setting == "loop" or len(members) == 1:
        return "loop"
    why = batching_refusal(members)
    if setting == "batched":
        if why:
            emit(f"[pack] trained in a loop, not batched: {why}")
        return "batched"
    lead = members[0].trial
    wins = (lead.device.type, lead.cfg.model.arch) in BATCHED_WINS
    return "batched" if wins and why is None else "loop"


#: (device type, architecture) where the batched pack measured faster than the loop: none yet.
#: On the CPU (2 cores, 1 thread, quiet) it was not, at K = 2, 4 and 8 for ``small_cnn``,
#: ``small_cnn_s2`` and ``resnet32`` (``docs/results.md``, "Packs as one network"); on a GPU
#: it is unmeasured (``scripts/gpu/ablation.sh`` times both).
BATCHED_WINS: frozenset[tuple[str, str]] = frozenset()


def batching_refusal(members: list[Member]) -> str | None:
    """Why these members cannot train as one stacked network (None when they can).

    Stacking needs networks :func:`~.stacked.stack` knows and members that use the same parts of
    them: a part one member trains and another leaves without a gradient would be updated (weight
    decay, momentum) in the stack but not alone.
    """
    why = why_not_stackable(members[0].trial.net.core)
    if why:
        return why
    uses = {_parts_used(m.trial.spec) for m in members}
    if len(uses) > 1:
        return "members differ in which heads their losses train"
    return None


def _parts_used(spec: LossSpec) -> tuple[bool, bool]:
    contrastive = spec.contrastive and spec.beta > 0
    return contrastive, contrastive and spec.prototypes


def save_pack(
    path: Path, members: list[Member], epoch: int, config_hashes: list[str] | None = None
) -> None:
    """Every member's model, optimiser, history and status plus the shared random streams.

    ``config_hashes``: each member's configuration hash, stored (checked by :func:`load_pack`).
    """
    gens = members[0].trial.gens
    atomic_save(
        {
            "members": {
                m.name: {
                    "model": m.trial.net.core.state_dict(),
                    "optimizer": m.trial.net.opt.state_dict(),
                    "history": [plain(h) for h in m.trial.history],
                    "status": m.status.value,
                    "reason": m.reason,
                    "epochs_trained": m.epochs_trained,
                }
                for m in members
            },
            "perm_gen": gens.perm.get_state(),
            "aug_gen": gens.aug.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": int(epoch),
            "config_hash": dict(zip([m.name for m in members], config_hashes or [])) or None,
        },
        path,
    )


def load_pack(path: Path, members: list[Member], config_hashes: list[str] | None = None) -> int:
    """Restore a pack saved by :func:`save_pack`; the epoch it had finished.

    Raises:
        CheckpointError: unreadable, or saved for other members (or configurations).

    """
    state = read_checkpoint(path)
    want = dict(zip([m.name for m in members], config_hashes or []))
    if config_hashes is not None and state.get("config_hash") != want:  # as save_pack stores
        raise CheckpointMismatch(
            f"{path}: a pack checkpoint of other configurations than its members' "
            f"({state.get('config_hash') or 'it carries no hash'}); it is never resumed"
        )
    stored = state.get("members", {})
    if sorted(stored) != sorted(m.name for m in members):
        raise CheckpointError(
            f"{path}: a checkpoint of members {sorted(stored)}, not of this pack; "
            "delete it to start the pack afresh"
        )
    gens = members[0].trial.gens
    for m in members:
        s = stored[m.name]
        m.trial.net.core.load_state_dict(s["model"])
        m.trial.net.opt.load_state_dict(s["optimizer"])
        m.trial.history = list(s["history"])
        m.status, m.reason = TrialStatus(s["status"]), s["reason"]
        m.epochs_trained = int(s.get("epochs_trained", state["epoch"]))
        if m.status is TrialStatus.STOPPED and m.epochs_trained == int(state["epoch"]):
            m.status, m.reason = TrialStatus.OK, ""  # stopped with the pack: it trains on
        m.metrics = m.trial.history[-1] if m.trial.history else {}
    gens.perm.set_state(state["perm_gen"])
    gens.aug.set_state(state["aug_gen"].to(gens.aug.get_state().device))
    torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"])


def train_pack(
    cfgs: list[StudyFile],
    names: list[str],
    report: Report | None = None,
    *,
    workdir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    budget: PackBudget | None = None,
    config_hashes: list[str] | None = None,
) -> list[TrialResult]:
    """Train the members of a pack together; one result per member, as ``train_trial``'s.

    Args:
        cfgs: the members' resolved configurations (equal but for ``PACKABLE_KEYS``).
        names: one distinct name per member (checkpoint keys, log lines).
        report: called after each evaluation with an :class:`~.result.Evaluation`: the
            metrics of the members evaluated by name, the members still training.
        workdir: folder of the pack's ``checkpoint.pt``; an existing one is resumed from.
        log: where plain progress lines go (default: stderr).
        budget: the pack's time budget (module docstring); ``cfgs`` in priority order.
        config_hashes: the members' configuration hashes: stored in the checkpoint, and one
            that does not carry them is refused (``CheckpointMismatch``).

    Returns:
        Per member, in order, what :func:`rcl_study.trainer.loop.train_trial` returns
        (``seconds_per_epoch`` is the pack's: all members' steps); a ``stopped`` member's also
        holds ``epochs_trained``.

    Raises:
        ValueError: members that differ in more than their loss knobs.
        CheckpointError: the checkpoint in ``workdir`` cannot be loaded or is another pack's.
        TrialsStopped: SIGTERM or Ctrl-C; it carries every member's result by name.

    """
    check_packable(cfgs)
    if len(set(names)) != len(names) or len(names) != len(cfgs):
        raise ValueError("a pack needs one distinct name per member")
    members = setup_pack(cfgs, names)
    tc = cfgs[0].train
    emit = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    mechanism = pack_mechanism(cfgs[0].resources.pack_mechanism, members, emit)
    ckpt = Path(workdir) / "checkpoint.pt" if workdir else None
    start = load_pack(ckpt, members, config_hashes) if ckpt and ckpt.exists() else 0
    for m in members:
        m.trial.start_epoch = start
        if m.status is TrialStatus.OK:
            m.epochs_trained = start
        m.trial.net.model.train()
    clock = _PackClock(emit)
    try:
        for epoch in range(start, tc.epochs):
            active = [m for m in members if m.status is TrialStatus.OK]
            if not active:
                break
            if budget and not clock.next_epoch_fits(budget, active):
                clock.stop_all(active, f"budget end after epoch {epoch} of {tc.epochs}")
                if ckpt:
                    save_pack(ckpt, members, epoch, config_hashes)
                break
            batched = mechanism == "batched" and batching_refusal(active) is None
            how = "batched" if batched else "loop"
            means, epoch_seconds = ev.timed(
                lambda a=active, e=epoch, h=how: train_pack_epoch(a, e, h)
            )
            done = epoch + 1
            for m in active:
                m.epochs_trained = done
            clock.elapsed += epoch_seconds
            clock.last_epoch = (epoch_seconds, len(active))
            clock.means.update(means)
            deciding = budget is not None and done == start + budget.decide_after
            if ev.evaluates_after(done, tc.epochs, tc.eval_every) or deciding:
                evaluated = [m for m in active if m.status is TrialStatus.OK]
                clock.evaluate(evaluated, means, done, epoch_seconds)
                if report:
                    report(
                        Evaluation(
                            done,
                            {m.name: dict(m.metrics) for m in active if m.metrics},
                            sum(m.status is TrialStatus.OK for m in members),
                        )
                    )
            if deciding and budget is not None and done < tc.epochs:
                clock.drop_beyond_budget(budget, members, done, tc.epochs, tc.eval_every)
            if ckpt and (done % tc.checkpoint_every == 0 or done == tc.epochs or deciding):
                save_pack(ckpt, members, done, config_hashes)
    except KeyboardInterrupt as err:
        why = f"stopped by {err or 'Ctrl-C or SIGTERM'}"
        for m in members:
            if m.status is TrialStatus.OK:
                m.stop(f"{why} after epoch {m.epochs_trained} of {tc.epochs}")
        raise TrialsStopped({m.name: _result(m) for m in members}, why) from None
    return [_result(m) for m in members]


def _result(m: Member) -> TrialResult:
    """A member's result as ``train_trial``'s (a stopped one with ``epochs_trained``)."""
    stopped = m.status is TrialStatus.STOPPED
    return ev.finish_result(
        m.trial,
        m.metrics,
        m.status,
        m.reason,
        epochs_trained=m.epochs_trained if stopped else None,
    )


class _PackClock:
    """The pack's timings in this run and the budget's decisions made from them.

    Training seconds so far, the last epoch (seconds, members), one member's evaluation.
    """

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.elapsed = 0.0
        self.last_epoch: tuple[float, int] | None = None  # (seconds, members trained)
        self.eval_s = 0.0  # one member's evaluation, the latest measured
        self.means: dict[str, torch.Tensor] = {}  # each member's mean losses of its last epoch

    def evaluate(
        self, members: list[Member], means: dict[str, torch.Tensor], done: int, epoch_s: float
    ) -> None:
        """Evaluate ``members`` after epoch ``done``; time one evaluation."""
        t0 = time.perf_counter()
        for m in members:
            m.metrics = ev.evaluation(m.trial, means[m.name], done, self.elapsed, epoch_s)
            self.emit(ev.progress_line(m.name, m.trial.cfg.train.epochs, m.metrics))
        if members:
            self.eval_s = (time.perf_counter() - t0) / len(members)

    def drop_beyond_budget(
        self, budget: PackBudget, members: list[Member], done: int, epochs: int, eval_every: int
    ) -> None:
        """After the deciding epoch: keep the first members that fit, stop the rest."""
        active = [m for m in members if m.status is TrialStatus.OK]
        if self.last_epoch is None or not active:
            return
        epoch_s, trained = self.last_epoch
        later = range(done + 1, epochs + 1)
        evals_left = sum(ev.evaluates_after(e, epochs, eval_every) for e in later)
        keep = budget.keep(trained, epoch_s, self.eval_s, epochs - done, evals_left)
        keep = min(keep, len(active))
        self.emit(f"[pack] budget: {keep} of {len(active)} members fit ({budget.decisions[-1]})")
        for m in active[keep:]:
            m.stop(f"dropped after epoch {done}: only {keep} member(s) fit the budget")
        if keep < len(active):  # the predicted epoch of the members kept
            share = budget.shared + (1 - budget.shared) * keep / trained
            self.last_epoch = (epoch_s * share, keep)

    def next_epoch_fits(self, budget: PackBudget, active: list[Member]) -> bool:
        """Whether one more epoch and the members' final evaluation end before the deadline."""
        if self.last_epoch is None:
            return True  # nothing timed yet: the first epochs always run
        epoch_s, trained = self.last_epoch
        epoch_s *= len(active) / max(1, trained)  # fewer when a member diverged
        return budget.next_epoch_fits(epoch_s, self.eval_s * len(active))

    def stop_all(self, active: list[Member], why: str) -> None:
        """The budget's end: evaluate members whose last evaluation is older, stop them all."""
        for m in active:
            if m.name in self.means and (
                not m.trial.history or m.trial.history[-1]["epoch"] < m.epochs_trained
            ):
                m.metrics = ev.evaluation(
                    m.trial, self.means[m.name], m.epochs_trained, self.elapsed, 0.0
                )
                self.emit(ev.progress_line(m.name, m.trial.cfg.train.epochs, m.metrics))
            m.stop(why)
