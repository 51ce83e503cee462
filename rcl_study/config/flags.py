"""Command-line flags refused as the schema refuses values: one line, exit 2.

:class:`OneLineParser` is argparse whose usage errors are one line; :func:`number` is the type of
every numeric flag: a number of its kind, finite, within its range, or the flag is refused.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit 2), not the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``error: <prog>: <message>`` and exit 2."""
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def number(
    kind: type[int] | type[float] = float,
    low: float | None = None,
    high: float | None = None,
    above: bool = False,
) -> Callable[[str], int | float]:
    """An argparse ``type``: a finite ``kind`` in ``[low, high]`` (``(low, high]`` if ``above``).

    Anything else is the flag's one-line refusal (``argparse.ArgumentTypeError``).
    """

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            whole = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {whole}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if low is not None and (value <= low if above else value < low):
            raise argparse.ArgumentTypeError(
                f"expected a number {'above' if above else 'at least'} {low:g}, got {text!r}"
            )
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"expected a number at most {high:g}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse
