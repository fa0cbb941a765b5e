#!/usr/bin/env python3
"""Checks the documented layering of fieldlink's targets (docs/architecture.md):
every dependency between two of the project's libraries points to a lower room,
and the firmware and the gateway share nothing but the protocol.

  check_layers.py SOURCE_DIR WORK_DIR      configure a fresh build there, read its --graphviz output
  check_layers.py --dot FILE               check an existing graph (for the negative test)
"""
import re
import subprocess
import sys
from pathlib import Path

# (side, rank): a target may depend on one of lower rank on its own side, or on a shared one.
ROOMS = {
    "fieldlink_protocol": ("shared", 0),
    "fieldlink_link": ("shared", 1),  # the serial link: the reader's transport and the bridge
    "fieldlink_link_transport": ("firmware", 2),
    "fieldlink_hal": ("firmware", 0),
    "fieldlink_reader_store": ("firmware", 1),
    "fieldlink_reader_core": ("firmware", 2),
    "fieldlink_spool": ("firmware", 2),
    "fieldlink_board_host": ("firmware", 3),
    "fieldlink-reader": ("firmware", 4),
    "fieldlink_gateway_store": ("gateway", 1),
    "fieldlink_gateway_ingest": ("gateway", 2),
    "fieldlink_gateway_forward": ("gateway", 3),  # upstream cursors and read-ahead; ingest for its Logger, Clock
    "fieldlink_upstream_mqtt": ("gateway", 4),
    "fieldlink_upstream_postgres": ("gateway", 4),
    "fieldlink_gateway_http": ("gateway", 4),  # /metrics, /healthz, the status page: reads ingest, store, forward
    "fieldlink_gateway_app": ("gateway", 5),
    "fieldlink-gateway": ("gateway", 6),
    "fieldlink_gateway_bridge": ("gateway", 3),
    "fieldlink-serial-bridge": ("gateway", 4),
    "fieldlink_cli_core": ("gateway", 1),
    "fieldlink": ("gateway", 6),
}


def edges(dot_text):
    names = dict(re.findall(r'"(node\d+)" \[ label = "([^"\\]+)', dot_text))
    for a, b in re.findall(r'"(node\d+)" -> "(node\d+)"', dot_text):
        yield names.get(a, a), names.get(b, b)


def violations(dot_text):
    found, seen = [], set()
    for a, b in edges(dot_text):
        if a not in ROOMS or b not in ROOMS:
            continue  # tests, benchmarks, third-party libraries
        seen.update((a, b))
        (side_a, rank_a), (side_b, rank_b) = ROOMS[a], ROOMS[b]
        if side_b != "shared" and side_b != side_a:
            found.append(f"{a} ({side_a}) depends on {b} ({side_b})")
        elif rank_b >= rank_a:
            found.append(f"{a} (rank {rank_a}) depends on {b} (rank {rank_b}), which is not below it")
    return found, seen


def main(argv):
    whole_project = True
    if len(argv) == 3 and argv[1] == "--dot":
        dot_text = Path(argv[2]).read_text()
        whole_project = False
    elif len(argv) == 3:
        source, work = Path(argv[1]), Path(argv[2])
        work.mkdir(parents=True, exist_ok=True)
        dot = work / "targets.dot"
        subprocess.run(["cmake", "-S", str(source), "-B", str(work / "build"), "-DFIELDLINK_BUILD_TESTS=OFF",
                        f"--graphviz={dot}"], check=True, stdout=subprocess.DEVNULL)
        dot_text = dot.read_text()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    found, seen = violations(dot_text)
    missing = set(ROOMS) - seen
    if whole_project and missing:
        print(f"targets missing from the graph (renamed? update ROOMS and docs): {sorted(missing)}")
        return 1
    for line in found:
        print(f"layering violation: {line}")
    if not found:
        print(f"layers ok: {len(seen)} targets, every dependency points down")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
