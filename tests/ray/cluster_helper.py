"""A local Ray cluster (``ray.cluster_utils.Cluster``) in a process of its own,
driven over stdin, so the pytest process never imports Ray or holds its threads.

    python cluster_helper.py '{"head": {"num_cpus": 2, "num_gpus": 2}, "w1": {"num_cpus": 1}}'

Answers are JSON lines prefixed ``@@ ``; the first gives the address, each
node's id and the session folder. Commands, one a line: ``remove NAME`` (kill
that node's processes at once, as a machine that dies) and ``quit`` (end of
input quits too). Ray's own reaper ends the nodes if this process dies.
"""
from __future__ import annotations

import json
import sys


def answer(value) -> None:
    sys.stdout.write("@@ " + json.dumps(value) + "\n")
    sys.stdout.flush()


def main() -> int:
    from ray.cluster_utils import Cluster

    layout = json.loads(sys.argv[1])
    cluster = Cluster(initialize_head=True, head_node_args={"include_dashboard": False, **layout.pop("head", {})})
    nodes = {"head": cluster.head_node}
    try:
        for name, args in layout.items():
            nodes[name] = cluster.add_node(**args)
        cluster.wait_for_nodes()
        answer({"address": cluster.address, "nodes": {name: n.node_id for name, n in nodes.items()},
                "session_dir": cluster.head_node.get_session_dir_path()})
        for line in sys.stdin:
            command, _, rest = line.strip().partition(" ")
            if not command:
                continue
            if command == "quit":
                break
            if command == "remove":
                cluster.remove_node(nodes.pop(rest), allow_graceful=False)
                answer({"removed": rest})
            else:
                answer({"error": f"unknown command {line.strip()!r}"})
    finally:
        cluster.shutdown()
    answer({"bye": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
