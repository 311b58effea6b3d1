"""Time FIRE on the Nature CNN: batched paper mode vs a per-kernel-position loop (same run), and the exact mode.

    OMP_NUM_THREADS=1 python scripts/bench/bench_fire.py [--repeats 20]

The paper mode orthogonalises every kernel position of a conv layer in one batched Newton-Schulz call; the
baseline loops over positions the way the authors' code does. Target: batched at least 2x faster, outputs equal
to 1e-6. The exact mode (SVD polar factor) and the 512x3136 fc1 layer (projected only by `policy: project_all`)
are timed for reference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from agents.networks import QNetwork
from fire_rl.resets.isometry import fire_project, fire_scale, newton_schulz

CONVS = ("conv1", "conv2", "conv3")


def fire_loop(weight: torch.Tensor, iters: int = 10, contiguous: bool = False) -> torch.Tensor:
    """The baseline: Newton-Schulz on each W[:, :, i, j] in a Python loop (as the authors' code), then FIRE's scale.

    contiguous=True copies each slice first, so the ratio then measures batching alone, not memory layout.
    """
    out = torch.empty_like(weight)
    for i in range(weight.shape[2]):
        for j in range(weight.shape[3]):
            piece = weight[:, :, i, j]
            out[:, :, i, j] = newton_schulz(piece.contiguous() if contiguous else piece, iters=iters)
    return out * fire_scale(weight.shape)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of fn() in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def conv_table(weights: dict[str, torch.Tensor], repeats: int) -> tuple[dict[str, float], float]:
    """Print loop / batched / exact times per conv layer; return the summed times and the worst |batched - loop|."""
    print(f"{'layer':<7}{'shape':<18}{'loop ms':>9}{'batched ms':>12}{'ratio':>7}{'max |diff|':>12}{'exact ms':>10}")
    totals = {"loop": 0.0, "batched": 0.0, "exact": 0.0}
    worst = 0.0
    for name in CONVS:
        w = weights[name]
        diff = float((fire_loop(w) - fire_project(w)).abs().max())
        worst = max(worst, diff)
        ms = {
            "loop": median_ms(lambda w=w: fire_loop(w), repeats),
            "batched": median_ms(lambda w=w: fire_project(w), repeats),
            "exact": median_ms(lambda w=w: fire_project(w, method="exact"), repeats),
        }
        for key in totals:
            totals[key] += ms[key]
        shape = "x".join(map(str, w.shape))
        ratio = ms["loop"] / ms["batched"]
        print(f"{name:<7}{shape:<18}{ms['loop']:9.2f}{ms['batched']:12.2f}{ratio:7.2f}{diff:12.1e}{ms['exact']:10.2f}")
    ratio = totals["loop"] / totals["batched"]
    print(
        f"{'convs':<25}{totals['loop']:9.2f}{totals['batched']:12.2f}{ratio:7.2f}{worst:12.1e}{totals['exact']:10.2f}"
    )
    return totals, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement (median reported)")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = QNetwork(num_actions=18)
    weights = {name: getattr(net, name).weight.detach().clone() for name in (*CONVS, "fc1")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, 10 Newton-Schulz iterations")
    totals, worst = conv_table(weights, args.repeats)
    ratio = totals["loop"] / totals["batched"]
    convs = [weights[name] for name in CONVS]
    loop_contiguous = median_ms(lambda: [fire_loop(w, contiguous=True) for w in convs], args.repeats)
    print(
        f"loop over contiguous copies of the slices: {loop_contiguous:.2f} ms for the convs (batching alone: "
        f"{loop_contiguous / totals['batched']:.2f}x)"
    )
    fc1 = weights["fc1"]
    ns_ms = median_ms(lambda: fire_project(fc1), max(3, args.repeats // 4))
    exact_ms = median_ms(lambda: fire_project(fc1, method="exact"), max(3, args.repeats // 4))
    print(f"fc1 512x3136 (project_all only): newton_schulz {ns_ms:.1f} ms, exact {exact_ms:.1f} ms")
    verdict = "PASS" if ratio >= 2.0 and worst <= 1e-6 else "FAIL"
    print(
        f"paper mode on the convs: batched {ratio:.2f}x faster than the per-position loop (target >= 2x); "
        f"max |batched - loop| = {worst:.1e} (target <= 1e-6): {verdict}"
    )


if __name__ == "__main__":
    main()
