"""The trainer: one trial (``loop``) or a pack of trials (``pack``) trained to their metrics.

Stages, one module each: ``setup`` (data, network, schedule, random streams), ``batches`` (the
epoch's order and its batches), ``loop`` (the step and the epoch), ``evaluation`` and ``metrics``
(test metrics, best evaluation, the result), ``checkpoint`` (atomic save, safe load), ``models``
(the backbones and BCL's heads). Nothing here knows of Ray, Optuna or study folders.
"""

from collections.abc import Callable
from typing import Any

#: the trainer's callback, called with the metrics dict of every evaluation (and, on the other
#: processes of a data-parallel run, with ``{"epoch": n}``)
Report = Callable[[dict[str, Any]], None]
