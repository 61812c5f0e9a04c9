"""A dependency-free progress bar on stderr (one line, redrawn at most once per percent)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``Progress("reading", size, unit="MB", scale=1e-6)`` counts bytes and shows megabytes."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        enabled: bool = True,
        out: TextIO | None = None,
        unit: str = "",
        scale: float = 1.0,
    ):
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.enabled = enabled
        self.out = out or sys.stderr
        self.unit = f" {unit}" if unit else ""
        self.scale = scale
        self.started = time.monotonic()
        self._shown = -1

    def _amount(self, value: int) -> str:
        return f"{round(value * self.scale):,}"

    def __call__(self, advance: int) -> None:
        self.done = min(self.total, self.done + advance)
        percent = self.done * 100 // self.total
        if self.enabled and percent != self._shown:
            self._shown = percent
            bar = "#" * (percent // 4) + "-" * (25 - percent // 4)
            self.out.write(
                f"\r{self.label:<10} [{bar}] {percent:3d}% "
                f"{self._amount(self.done)}/{self._amount(self.total)}{self.unit}"
            )
            self.out.flush()

    def finish(self) -> None:
        self.done = self.total
        if self.enabled:
            seconds = time.monotonic() - self.started
            bar = "#" * 25
            total = self._amount(self.total)
            self.out.write(
                f"\r{self.label:<10} [{bar}] 100% {total}/{total}{self.unit} ({seconds:.1f} s)\n"
            )
            self.out.flush()
