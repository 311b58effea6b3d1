"""How two runs' metrics rows are compared: structure exactly, numbers within a tolerance per kind of quantity.

Structure (events, steps, tasks, the set of keys of every row, strings, booleans, layer lists and integer counts)
must be equal. A float may differ by a relative amount that depends on what it is, because the same run on another
machine (another BLAS or convolution kernel, chosen by the CPU's instruction set) rounds differently and some
quantities amplify rounding more than others. Ranks that count singular values past a threshold (srank, PCA rank,
feature rank) are integers that a value sitting on the threshold can move by one, so they may differ by one.
The tolerances sit above the largest difference measured between legitimate environments (4x to 300x; 1x and 1.6x
for the threshold ranks and dormant ratios, which move in whole units) and below what a real behaviour change
produces; `python scripts/dev/golden_drift.py` measures both (docs/testing.md has the
numbers). A trajectory that diverges chaotically (SAC on MuJoCo: a last-bit difference in an action changes the
physics, and the difference grows about 10x every 50 steps) is compared in numbers only before it diverges.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

VOLATILE = {"time_s", "charts/sps", "reset/wall_time_s"}

# (kind, pattern on the key, relative tolerance, absolute tolerance). The first matching pattern decides; a value
# passes when it is within either tolerance.
KINDS: list[tuple[str, str, float, float]] = [
    # Counts of singular values past a threshold: one value on the threshold moves them by one.
    ("threshold rank", r"/(srank|feature_rank|pca99_rank)/", 0.0, 1.0),
    # Percentages of units past a threshold: a unit near it flips (measured: two of conv3's 64 channels, 3.1 points).
    ("dormant ratio", r"/dormant_", 0.0, 5.0),
    # The smallest singular value of FIRE's result: its error is the weights' relative error times the condition
    # number of the matrix it came from.
    ("singular value", r"sv_min$", 2e-2, 1e-9),
    # Distances a reset moved and deviations before it: small differences of large weights.
    ("reset distance", r"(/sfe|/sfe_normalised|/dfi_before|/dfi_raw_before|^reset/sfe_total)$", 2e-2, 1e-9),
    # Deviation from isometry after a projection.
    ("isometry deviation", r"/dfi(_raw)?_after$", 1e-3, 1e-9),
    # Statistics of probe features: units near zero activity move them most.
    ("feature statistic", r"/(effective_rank|feature_norm)/", 2e-2, 1e-9),
    # Losses after many updates: rounding accumulates through every update.
    ("loss", r"^losses/", 5e-4, 1e-9),
    ("return", r"^(eval/|charts/episodic)", 1e-3, 1e-9),
    # Everything else: weight norms, epsilon, the values a switch records.
    ("other", r"", 1e-4, 1e-9),
]


ABSOLUTE_KINDS = ("threshold rank", "dormant ratio")  # compared by absolute difference (counts, percentage points)


def kind_of(key: str) -> tuple[str, float, float]:
    """The kind of a numeric key and its relative and absolute tolerances."""
    for kind, pattern, rel_tol, abs_tol in KINDS:
        if re.search(pattern, key):
            return kind, rel_tol, abs_tol
    raise AssertionError("the last pattern matches every key")


def read_rows(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl, without the keys that hold timings."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def compared_numerically(key: str, a, b) -> bool:
    """Floats, and the integer counts that may move by one; every other value is structure."""
    if not (is_number(a) and is_number(b)):
        return False
    return isinstance(a, float) or isinstance(b, float) or kind_of(key)[0] in ABSOLUTE_KINDS


def difference(key: str, a: float, b: float) -> float:
    """The difference in the kind's own unit: absolute for threshold ranks, relative otherwise (0 when equal)."""
    kind, _, abs_tol = kind_of(key)
    if kind in ABSOLUTE_KINDS:
        return abs(a - b)
    if abs(a - b) <= abs_tol:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def within(key: str, a: float, b: float) -> bool:
    kind, rel_tol, abs_tol = kind_of(key)
    return difference(key, a, b) <= (abs_tol if kind in ABSOLUTE_KINDS else rel_tol)  # NaN is never within


def structure_differences(golden: list[dict], rows: list[dict]) -> list[str]:
    """Events, keys and every value that is not compared numerically (steps, tasks, counts) must be equal."""
    if [r["event"] for r in golden] != [r["event"] for r in rows]:
        return [f"events differ: golden {[r['event'] for r in golden]}, now {[r['event'] for r in rows]}"]
    found = []
    for i, (want, got) in enumerate(zip(golden, rows, strict=True)):
        where = f"row {i} ({want['event']} @ {want.get('step')})"
        if set(want) != set(got):
            found.append(f"{where} keys: missing {sorted(set(want) - set(got))}, new {sorted(set(got) - set(want))}")
        for key in sorted(set(want) & set(got)):
            a, b = want[key], got[key]
            if not compared_numerically(key, a, b) and a != b:
                found.append(f"{where} {key}: golden {a!r}, now {b!r}")
    return found


def numeric_differences(
    golden: list[dict], rows: list[dict], until_step: float = math.inf
) -> list[tuple[str, str, float, bool]]:
    """(where, key, difference, within tolerance) of every numerically compared value of the rows up to
    `until_step`; call once the structure is equal."""
    found = []
    for i, (want, got) in enumerate(zip(golden, rows, strict=True)):
        if want.get("step", 0) > until_step:
            break
        where = f"row {i} ({want['event']} @ {want.get('step')})"
        for key, a in want.items():
            b = got.get(key)
            if compared_numerically(key, a, b):
                found.append((where, key, difference(key, a, b), within(key, a, b)))
    return found


def differences(golden: list[dict], rows: list[dict], until_step: float = math.inf) -> list[str]:
    """Why the rows are not the golden ones (first 10), or [] when they are: the structure of every row, the
    numbers of the rows up to `until_step` (where a chaotic trajectory has not yet diverged)."""
    found = structure_differences(golden, rows)
    if not found:
        found = [
            f"{where} {key}: difference {diff:.3g} past the {kind_of(key)[0]} tolerance"
            for where, key, diff, ok in numeric_differences(golden, rows, until_step)
            if not ok
        ]
    return found[:10]


def largest_by_kind(golden: list[dict], rows: list[dict], until_step: float = math.inf) -> dict[str, float]:
    """The largest difference of each kind up to `until_step`, in its own unit; {} when the structure differs."""
    if structure_differences(golden, rows):
        return {}
    largest = {kind: 0.0 for kind, *_ in KINDS}
    for _, key, diff, _ in numeric_differences(golden, rows, until_step):
        kind = kind_of(key)[0]
        largest[kind] = max(largest[kind], diff)
    return largest
