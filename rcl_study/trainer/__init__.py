"""The trainer: one trial (``loop``) or a pack of trials (``pack``) trained to their metrics.

Stages, one module each: ``setup`` (data, network, schedule, random streams), ``batches`` (the
epoch's order and its batches), ``loop`` (the step and the epoch), ``evaluation`` and ``metrics``
(test metrics, best evaluation), ``result`` (the status, the result and each evaluation, typed),
``checkpoint`` (atomic save, safe load), ``models`` (the backbones and BCL's heads).
Nothing here knows of Ray, Optuna or study folders.
"""

from collections.abc import Callable

from rcl_study.trainer.result import Evaluation

#: the trainer's callback, called with each :class:`~.result.Evaluation` (a trial's or a
#: pack's; on the other processes of a data-parallel run, one without metrics)
Report = Callable[[Evaluation], None]
