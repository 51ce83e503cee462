"""Per-step host-device syncs and CPU time of one checkout's trainer.

Runs the trainer of the checkout at ``--repo`` (default: this one), so an older commit can be
measured beside the current one in the same session (``git worktree add /tmp/before <commit>``)::

    python benchmarks/step_speed.py --repo /tmp/before --recipe bcl
    python benchmarks/step_speed.py --recipe bcl
    python benchmarks/step_speed.py --recipe autoaugment
    python benchmarks/step_speed.py --tiny      # the embedded digits, small_cnn, 2 steps (tests)

Syncs per step: the count of one 3-step trial minus that of a 2-step trial
(``tests/helpers/syncs.py``; one-time work such as a cached table built on first use can make this
difference meaningless for the first recipe measured in a process). Time per step: the last of 3
epochs of ``--steps`` steps, divided by ``--steps`` (one thread). Prints one JSON line.
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", default=str(HERE), help="checkout whose rcl_study is measured")
    ap.add_argument("--recipe", default="autoaugment", help="data.augment")
    ap.add_argument("--arch", default="resnet32")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--preset", default="bcl+rcl")
    ap.add_argument("--data-root", default=str(HERE.parent / "shared/data/cifar10"))
    ap.add_argument("--tiny", action="store_true", help="embedded digits, small_cnn (tests)")
    a = ap.parse_args()
    if a.tiny:
        a.arch, a.width, a.batch, a.steps = "small_cnn", 8, 16, 2
    sys.path.insert(0, a.repo)
    sys.path.insert(0, str(HERE / "tests" / "helpers"))
    import torch
    from syncs import SyncCounter

    from rcl_study.config import parse_study
    from rcl_study.trainer.loop import train_trial

    torch.set_num_threads(1)

    def cfg(steps: int, epochs: int):
        data = {"dataset": "cifar10_lt", "root": a.data_root, "imbalance_ratio": 100}
        data.update(test_limit=50, augment=a.recipe)
        if a.tiny:  # no download: the digits ship with the package
            data = {"dataset": "digits_lt", "test_limit": 50}
        train = {"epochs": epochs, "batch_size": a.batch, "max_steps_per_epoch": steps}
        train.update(warmup_epochs=0, progress=False, threads=1, eval_every=epochs)
        model = {"arch": a.arch, "width": a.width, "proj_hidden": 32, "proj_dim": 16}
        raw = {"name": "b", "data": data, "model": model, "loss": {"preset": a.preset}}
        return parse_study({**raw, "train": train})

    counts = []
    for k in (2, 3):
        with SyncCounter() as s:
            train_trial(cfg(k, 1), log=lambda m: None)
        counts.append(sum(s.calls.values()))
    r = train_trial(cfg(a.steps, 3), log=lambda m: None)
    print(
        json.dumps(
            {
                "repo": a.repo,
                "recipe": a.recipe,
                "syncs_per_step": counts[1] - counts[0],
                "ms_per_step": 1e3 * r.metrics["epoch_seconds"] / a.steps,
            }
        )
    )


if __name__ == "__main__":
    main()
