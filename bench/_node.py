"""Run a real :class:`sniperbot.node.Node` whose supervision tree comes from a bench factory.

``python -c "import sys; from bench._node import main; sys.exit(main())" --tree bench.MODULE:FUNCTION
[--tree-args JSON] --config C --run-dir D [--duration S]`` (see bench._common.NodeProcess for why
not ``-m``).

``FUNCTION(config, **tree_args) -> ChildSpec`` builds the root spec. The node is otherwise
exactly what ``sniperbot run`` starts (same Node, supervisors, bus, journal);
only ``Node.tree_spec`` is replaced before ``run()``, because the config cannot
express a custom tree (sniperbot/topology.py builds it from fixed sections).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", required=True, help="bench.module:function(config, **args) -> ChildSpec")
    parser.add_argument("--tree-args", default="{}", help="JSON object of keyword arguments")
    parser.add_argument("--config", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--duration", type=float, default=None)
    args = parser.parse_args()

    from sniperbot.config import load_config
    from sniperbot.logs import configure_logging
    from sniperbot.node import Node

    config = load_config(args.config)
    configure_logging(config.node.log_level)
    module_name, _, function = args.tree.partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    node = Node(config, args.run_dir, enable_chaos=True)  # benches inject faults
    node.tree_spec = factory(config, **json.loads(args.tree_args))
    return node.run(args.duration)


if __name__ == "__main__":
    sys.exit(main())
