"""``sniperbot check-lookahead`` (issue #11 point 6): a peeking strategy is caught, the shipped ones pass.

Real CLI processes on a seeded candle file; the peeking strategies are ordinary strategy files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sniperbot.strategies import STRATEGIES
from tests.candles import random_walk_csv
from tests.conftest import sniperbot

# Those with a vectorised form to compare (a strategy that reads signals has none).
PRICE_STRATEGIES = sorted(name for name, cls in STRATEGIES.items() if not cls.uses_signals())

PEEKING_VECTORISED = '''
import numpy as np
from sniperbot.strategies import Param, Strategy


class Peek(Strategy):
    """Long when the NEXT close is higher: decide() is honest, decide_all() peeks one bar ahead."""

    name = "peek"
    params = {"lag": Param(1, min=1)}

    def setup(self):
        self.last = None

    def decide(self, bar):
        up = self.last is not None and bar.close > self.last
        self.last = bar.close
        return 1.0 if up else 0.0

    @classmethod
    def decide_all(cls, open, high, low, close, volume, **params):
        nxt = np.append(close[1:], close[-1])
        return np.where(nxt > close, 1.0, 0.0)
'''

PEEKING_STREAMING = '''
from sniperbot.strategies import Param, Strategy


class Peek(Strategy):
    """A streaming strategy that remembers, across instances, which close followed which: a global."""

    name = "peek_global"
    params = {"lag": Param(1, min=1)}
    seen = {}  # class-level: survives from one run to the next, as a module global would

    def setup(self):
        self.last = None

    def decide(self, bar):
        if self.last is not None:
            Peek.seen[self.last] = bar.close
        self.last = bar.close
        nxt = Peek.seen.get(bar.close)
        return None if nxt is None else (1.0 if nxt > bar.close else 0.0)
'''


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 one-minute bars."""
    path = tmp_path_factory.mktemp("look") / "X_1m.csv"
    return random_walk_csv(path, 2_000, seed=11, start=100.0, vol=0.003, wick=0.002)


def check(csv_file: Path, ref: str, *extra: str) -> tuple[int, dict[str, object]]:
    """``check-lookahead --json``: exit status and report."""
    done = sniperbot(
        "check-lookahead", "--data", str(csv_file), "--strategy", ref, "--json", *extra, timeout=120
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("name", PRICE_STRATEGIES)
def test_the_shipped_strategies_do_not_peek(csv_file: Path, name: str) -> None:
    """Exit 0, ``ok``, and their two forms agree bar for bar."""
    code, report = check(csv_file, name)
    assert code == 0 and report["ok"] is True and report["first_bad_bar"] is None, report
    assert report["parity_bar"] is None and report["cuts"] > 10, report


def test_a_vectorised_form_that_peeks_is_caught_at_its_first_bad_bar(csv_file: Path, tmp_path: Path) -> None:
    """``decide_all`` looks at the next close: the last bar of a cut changes when the next bar goes."""
    file = tmp_path / "peek.py"
    file.write_text(PEEKING_VECTORISED)
    code, report = check(csv_file, f"{file}:Peek")
    assert code == 1 and report["ok"] is False and report["form"] == "vectorised", report
    # Removing the bars after cut t changes the decision at t itself (it read close[t + 1]).
    assert report["first_bad_bar"] == report["cut"], report
    assert report["parity_bar"] is not None  # and its streaming form disagrees with it
    text = sniperbot("check-lookahead", "--data", str(csv_file), "--strategy", f"{file}:Peek")
    assert text.returncode == 1 and "LOOK-AHEAD: the vectorised decision at bar" in text.stdout


def test_a_streaming_strategy_that_peeks_through_a_global_is_caught(csv_file: Path, tmp_path: Path) -> None:
    """``decide`` learns from an earlier run which close comes next: the cut runs decide differently."""
    file = tmp_path / "peek_global.py"
    file.write_text(PEEKING_STREAMING)
    code, report = check(csv_file, f"{file}:Peek", "--streaming-cuts", "4")
    assert code == 1 and report["ok"] is False and report["form"] == "streaming", report
    assert report["vectorised"] is False and report["first_bad_bar"] <= report["cut"], report


def test_bad_input_exits_2(csv_file: Path) -> None:
    """An unknown strategy or a missing file: exit 2 naming it."""
    done = sniperbot("check-lookahead", "--data", str(csv_file), "--strategy", "nope")
    assert done.returncode == 2 and "nope" in done.stderr
    done = sniperbot("check-lookahead", "--data", "/nonexistent.csv", "--strategy", "sma_cross")
    assert done.returncode == 2 and "--data" in done.stderr
