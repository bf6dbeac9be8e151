"""Restart intensity: the OTP rule that turns a crash loop into an escalation."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class RestartIntensity:
    """Counts restarts in a sliding window; ``allow()`` is False once there are too many.

    OTP's rule: keep restart times ``t >= now - period``, add ``now``; if more than
    ``intensity`` remain, give up. The window is closed at both ends.
    """

    def __init__(self, intensity: int, period_s: float, clock: Callable[[], float]) -> None:
        self.intensity = intensity
        self.period_s = period_s
        self._clock = clock
        self._restarts: deque[float] = deque()

    def allow(self) -> bool:
        """Record one restart now; True if it stays within the intensity."""
        now = self._clock()
        while self._restarts and self._restarts[0] < now - self.period_s:
            self._restarts.popleft()
        self._restarts.append(now)
        return len(self._restarts) <= self.intensity

    @property
    def recent(self) -> int:
        """Restarts inside the current window."""
        now = self._clock()
        return sum(1 for t in self._restarts if t >= now - self.period_s)
