"""Restart intensity: the OTP rule that turns a crash loop into an escalation.

**Crash loop or independent faults** (issue #14 point 6). OTP counts every restart: at one
fault every 2 s spread over a node's actors, unrelated crashes that each recover in
milliseconds add up in the window and take a healthy subtree down as if it were crash
looping. A crash loop is a child that dies again *right after it starts*; so, as PM2's
``min_uptime`` and supervisord's ``startsecs`` do (and Kubernetes' CrashLoopBackOff, which
keys on a container dying shortly after its start), a restart counts only when the child
did not survive ``min_uptime_s`` since it was last ready: it died while starting, or within
``min_uptime_s`` of becoming ready. A child that ran longer proved that its start works;
its death is an independent fault, restarted at once and not counted. ``min_uptime_s = 0``
is OTP's rule (every restart counts; the default of :class:`SupFlags`); the node's tree uses
``[supervisor] min_uptime_s`` (1 s by default, PM2's and supervisord's default too: well above
an actor's restart time, well below the spacing of independent faults worth riding out).

A child that crashes again and again but each time only after ``min_uptime_s`` is not
stopped by this rule: each incarnation did work, and the node keeps restarting it; the
restart-storm alert (``[alerts] restart_storm_count`` within ``restart_storm_window_s``)
tells the operator.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class RestartIntensity:
    """Counts restarts in a sliding window; ``allow()`` is False once there are too many.

    OTP's rule: keep restart times ``t >= now - period``, add ``now``; if more than
    ``intensity`` remain, give up. The window is closed at both ends. With
    ``min_uptime_s > 0``, only the restarts of a child that lived less than that count.
    """

    def __init__(
        self, intensity: int, period_s: float, clock: Callable[[], float], min_uptime_s: float = 0.0
    ) -> None:
        self.intensity = intensity
        self.period_s = period_s
        self.min_uptime_s = min_uptime_s
        self._clock = clock
        self._restarts: deque[float] = deque()

    def counts(self, uptime_s: float | None) -> bool:
        """Whether the restart of a child that was up ``uptime_s`` (None: never ready) counts."""
        return self.min_uptime_s <= 0 or uptime_s is None or uptime_s < self.min_uptime_s

    def allow(self, uptime_s: float | None = None) -> bool:
        """Record one restart now (unless it does not count); True if it stays within the intensity.

        ``uptime_s``: how long the child ran since it was last ready (None: it never was).
        """
        if not self.counts(uptime_s):
            return True
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
