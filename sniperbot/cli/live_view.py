"""The terminal views: the live dashboard of ``sniperbot run`` and the admin printouts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.tree import Tree

if TYPE_CHECKING:
    from sniperbot.node import Node


def _tree_renderable(node: dict[str, Any]) -> Tree:
    def label(n: dict[str, Any]) -> str:
        if n["kind"] == "supervisor":
            return f"[bold]{n['id']}[/] [dim]{n.get('strategy', '')} {n['state']}[/]"
        colour = "green" if n["state"] == "running" else "yellow"
        return (
            f"{n['id']} [{colour}]{n['state']}[/] {n['placement']} pid={n['pid']} "
            f"inc={n['incarnation']} restarts={n['restarts']} up={n['uptime_s']:.0f}s"
        )

    tree = Tree(label(node))

    def add(parent: Tree, n: dict[str, Any]) -> None:
        for child in n["children"]:
            add(parent.add(label(child)), child)

    add(tree, node)
    return tree


def _status_renderable(status: dict[str, Any]) -> Group:
    summary = Table.grid(padding=(0, 2))
    pnl = status["pnl"]
    summary.add_row(
        f"trading [bold]{status['trading_state']}[/]",
        f"orders {status['orders']}",
        f"fills {status['fills']}",
        f"rejected {status['rejected']}",
        f"P&L net {pnl['net']:+.2f} (realised {pnl['realized']:+.2f}, "
        f"unrealised {pnl['unrealized']:+.2f}, fees {pnl['fees']:.2f})",
    )
    positions = Table("venue:symbol", "position", box=None)
    for key, quantity in sorted(status["positions"].items()):
        positions.add_row(key, f"{quantity:+.6f}")
    return Group(summary, positions)


class LiveView:
    """A compact dashboard refreshed from the node's own loop."""

    def __init__(self) -> None:
        self._live = Live(auto_refresh=False, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(*exc)  # type: ignore[arg-type]

    def refresh(self, node: Node) -> None:
        """Redraw from the node's current tree and status."""
        status = node.status()
        header = (
            f"[bold]sniperbot[/] run dir {node.rundir.path}  up {status['uptime_s']:.0f}s  "
            f"actors {status['actors']}  restarts {status['restarts']}  [dim]Ctrl-C stops[/]"
        )
        self._live.update(
            Group(header, _tree_renderable(node.tree()), _status_renderable(status)), refresh=True
        )

    def print_summary(self, node: Node) -> None:
        """One last line after the node stopped."""
        Console().print(f"node stopped (exit code {node.exit_code})")


def print_tree(tree: dict[str, Any]) -> None:
    """Print ``admin tree``."""
    Console().print(_tree_renderable(tree))


def print_status(status: dict[str, Any]) -> None:
    """Print ``admin status``."""
    Console().print(_status_renderable(status))
