"""Where a strategy comes from: a built-in name, an import path, or a file (one home for every caller).

A *strategy reference* is one of

* a built-in name (``sma_cross``; :data:`sniperbot.strategies.STRATEGIES`),
* an import path ``package.module:Class`` (an installed package, or a module on ``PYTHONPATH``),
* a file ``path/to/file.py:Class`` (relative paths are taken from the current directory, as the
  node's actor processes share it).

The config (``[[strategies]] strategy``), ``backtest``, ``optimize``, ``admin add-strategy`` and the
strategy actor all resolve references here, so a strategy a config accepts is the strategy the node
runs. A reference that cannot be used raises :class:`StrategyLoadError` naming the file, the line
and the reason (a syntax error, an import error, a missing class, a class that is not a
:class:`~sniperbot.strategies.base.Strategy`, or one without ``decide``), so ``sniperbot run``
exits 2 before anything starts. A strategy file needs nothing but
``from sniperbot.strategies import Param, Strategy``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType

from sniperbot.strategies.base import Strategy


class StrategyLoadError(ValueError):
    """A strategy reference that cannot be used; the message names the file, line and reason."""


def _builtins() -> dict[str, type[Strategy]]:
    from sniperbot.strategies import STRATEGIES

    return STRATEGIES


def is_file_reference(ref: str) -> bool:
    """Whether ``ref`` names a file (``path.py:Class``) rather than a module or a built-in."""
    path = ref.rpartition(":")[0] if ":" in ref else ref
    return path.endswith(".py")


def _where(exc: BaseException, file: Path) -> str:
    """``file:line`` of the innermost frame of ``exc`` inside ``file`` (else the file alone)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == file:
            line = frame.lineno
    return f"{file}:{line}" if line else str(file)


def _load_file(path_text: str) -> ModuleType:
    file = Path(path_text).expanduser().resolve()
    if not file.is_file():
        raise StrategyLoadError(f"{path_text}: no such strategy file")
    # One module per file content: a file edited between two loads is loaded again, never mixed.
    digest = hashlib.blake2b(f"{file}:{file.stat().st_mtime_ns}".encode(), digest_size=8).hexdigest()
    name = f"sniperbot_user_strategy_{digest}"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise StrategyLoadError(f"{file}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look their module up while it runs
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        del sys.modules[name]
        raise StrategyLoadError(f"{file}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:
        del sys.modules[name]
        raise StrategyLoadError(f"{_where(e, file)}: {type(e).__name__}: {e}") from None
    return module


def _load_module(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except SyntaxError as e:
        raise StrategyLoadError(f"{e.filename}:{e.lineno}: syntax error: {e.msg}") from None
    except ImportError as e:
        raise StrategyLoadError(f"{module_name}: cannot import: {e}") from None
    except Exception as e:
        origin = getattr(importlib.util.find_spec(module_name), "origin", None) or module_name
        raise StrategyLoadError(f"{_where(e, Path(origin).resolve())}: {type(e).__name__}: {e}") from None


def load_strategy(ref: str) -> type[Strategy]:
    """The strategy class ``ref`` names (see the module docstring); :class:`StrategyLoadError` if unusable."""
    if not isinstance(ref, str) or not ref.strip():
        raise StrategyLoadError(f"strategy reference must be a non-empty string, got {ref!r}")
    builtin = _builtins().get(ref)
    if builtin is not None:
        return builtin
    where, sep, class_name = ref.rpartition(":")
    if not sep or not where or not class_name:
        known = ", ".join(sorted(_builtins()))
        raise StrategyLoadError(
            f"unknown strategy {ref!r} (built-in: {known}; or package.module:Class, or path/file.py:Class)"
        )
    module = _load_file(where) if is_file_reference(ref) else _load_module(where)
    source = getattr(module, "__file__", None) or where
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(
            n
            for n, v in vars(module).items()
            if inspect.isclass(v) and issubclass(v, Strategy) and v is not Strategy
        )
        raise StrategyLoadError(
            f"{source}: no class {class_name!r} (strategies defined there: {', '.join(found) or 'none'})"
        )
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise StrategyLoadError(f"{source}: {class_name} is not a subclass of sniperbot.strategies.Strategy")
    if cls.decide is Strategy.decide:
        line = inspect.getsourcelines(cls)[1] if inspect.getsourcefile(cls) else 0
        raise StrategyLoadError(f"{source}:{line}: {class_name} does not implement decide(bar)")
    return cls


def strategy_label(cls: type[Strategy], ref: str) -> str:
    """How reports name a strategy: its ``name``, else the reference it was loaded by."""
    return cls.name or ref
