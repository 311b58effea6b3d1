"""`python -m fire_rl.compare`: statistics against hand computations on metrics files the tests write, the bad
inputs it must refuse or report, and one end-to-end compare over a tiny real sweep (slow)."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, TINY, TINY_SWEEP, run_train

from envs.sequence import build_sequence
from fire_rl.compare import RunRecord, load_run, load_runs, main, runs_table
from fire_rl.compare import stats as st
from fire_rl.compare.atari_scores import REFERENCE_SCORES, human_normalised, reference_for
from fire_rl.compare.figures import PAPER_LABEL, eval_figure
from fire_rl.compare.pack import main as pack_main
from fire_rl.compare.runs import PACK_FORMAT, PACK_VERSION, rows_from_history
from fire_rl.compare.series import eval_series
from fire_rl.compare.tables import final_value, plasticity_rows
from fire_rl.logging import read_rows_checked

GAMES = ("Asterix", "BeamRider", "DemonAttack")
OUTPUTS = (
    "report.md",
    "eval_curves.png",
    "train_curves.png",
    "plasticity.png",
    "summary.csv",
    "summary.md",
    "aggregate.csv",
    "aggregate.md",
    "continual.csv",
    "continual.md",
    "plasticity.csv",
    "plasticity.md",
    "skipped.txt",
)


def write_run(
    run_dir: Path,
    method: str,
    seed: int,
    evals: dict[int, dict[str, float]],
    games=GAMES,
    steps: int = 100,
    tail: str = "",
) -> Path:
    """A run directory as fire_rl.train writes it: resolved config and metrics rows (switches, evals, resets)."""
    run_dir.mkdir(parents=True)
    config = {"seed": seed, "agent": {"name": "dqn"}, "eval_every": 50}
    config["env"] = {"cycles": 1, "tasks": [{"env_id": f"ALE/{g}-v5", "steps": steps} for g in games]}
    if method != "none":
        config["reset"] = {"name": method, "c": 0.8}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [{"event": "switch", "step": i * steps, "task": g, "visit": i} for i, g in enumerate(games)]
    rows += [{"event": "reset", "step": i * steps, "task": g} for i, g in enumerate(games) if i and method != "none"]
    rows += [
        {"event": "eval", "step": s, **{f"eval/{g}/return": v for g, v in values.items()}}
        for s, values in evals.items()
    ]
    rows.sort(key=lambda r: r["step"])
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    return run_dir


def final_evals(scores: dict[str, float], steps: int = 100, n_games: int = 3) -> dict[int, dict[str, float]]:
    """Evaluations every 50 steps, all equal to the given scores (so final = average = the score)."""
    return {s: dict(scores) for s in range(50, steps * n_games + 1, 50)}


def hns(game: str, fraction: float) -> float:
    """The raw score whose HNS is `fraction`."""
    random, human = REFERENCE_SCORES[game]
    return random + fraction * (human - random)


def run_compare(*args: str) -> None:
    main([str(a) for a in args])


# --- statistics against hand computations ------------------------------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])  # 2 runs x 4 tasks: middle four are 3..6
    iqm, low, high = st.iqm_with_ci({"a": scores}, reps=200)["a"]
    assert iqm == pytest.approx(4.5)
    assert low <= iqm <= high


def test_probability_of_improvement_on_constructed_cases():
    better, worse = np.array([[5.0, 6.0], [7.0, 8.0]]), np.array([[1.0, 2.0], [3.0, 4.0]])
    result = st.improvement_with_ci({"up": (better, worse), "down": (worse, better), "tie": (worse, worse)}, reps=200)
    assert result["up"][0] == pytest.approx(1.0)
    assert result["down"][0] == pytest.approx(0.0)
    assert result["tie"][0] == pytest.approx(0.5)


def test_rliable_intervals_are_reproducible_and_leave_the_global_rng_alone():
    """rliable draws its resamples from numpy's global RNG whatever random_state it is given; a report run twice must
    print the same intervals, and computing them must not move a caller's global stream."""
    rng = np.random.default_rng(1)
    scores = {g: rng.normal(size=(5, 1)) for g in "ab"}
    pairs = {g: (rng.normal(size=(5, 1)), rng.normal(size=(5, 1))) for g in "ab"}
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    first = (st.iqm_with_ci(scores, reps=200), st.improvement_with_ci(pairs, reps=200))
    assert np.random.random() == expected
    np.random.seed(7)  # another global state before the second call: the intervals must not depend on it
    assert (st.iqm_with_ci(scores, reps=200), st.improvement_with_ci(pairs, reps=200)) == first


def test_bootstrap_band_contains_the_mean_and_collapses_for_identical_seeds():
    values = np.random.default_rng(0).normal(size=(5, 12))
    mean, low, high = st.bootstrap_band(values, reps=500, seed=1)
    assert np.allclose(mean, values.mean(axis=0))
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(high - low > 0)
    same = np.tile(values[:1], (4, 1))
    mean, low, high = st.bootstrap_band(same, reps=500)
    assert np.allclose(low, mean) and np.allclose(high, mean) and np.allclose(mean, values[0])
    mean, low, high = st.bootstrap_band(values[:1], reps=500)  # one seed: the band is the line
    assert np.array_equal(low, mean) and np.array_equal(high, mean)


def test_bootstrap_band_skips_seeds_without_a_point():
    values = np.array([[1.0, 2.0], [3.0, np.nan]])
    mean, low, high = st.bootstrap_band(values, reps=200)
    assert mean.tolist() == [2.0, 2.0] and low[1] == high[1] == 2.0


def test_human_normalised_score_for_known_scores():
    assert len(REFERENCE_SCORES) == 57
    assert human_normalised(8503.3, "ALE/Asterix-v5") == pytest.approx(1.0)
    assert human_normalised(210.0, "ALE/Asterix-v5") == pytest.approx(0.0)
    assert human_normalised(363.9 + 0.5 * (16926.5 - 363.9), "BeamRiderNoFrameskip-v4") == pytest.approx(0.5)
    assert human_normalised(1971.0 * 2 - 152.1, "ALE/DemonAttack-v5") == pytest.approx(2.0)
    assert math.isnan(human_normalised(100.0, "ALE/Breakout-v5", {"mode": 4}))  # not the mode humans played
    assert math.isnan(human_normalised(100.0, "ALE/Tetris-v5"))  # no reference scores: missing, not guessed
    assert math.isnan(human_normalised(100.0, "HalfCheetah-v5"))


def constructed_curves():
    """Three tasks of 100 steps, evaluated every 50 steps; p already normalised."""
    steps = np.arange(50.0, 301.0, 50.0)
    curves = {
        "A": (steps, np.array([0.2, 0.6, 0.5, 0.4, 0.3, 0.1])),
        "B": (steps, np.array([0.0, 0.1, 0.5, 0.9, 0.7, 0.6])),
        "C": (steps, np.array([0.1, 0.1, 0.2, 0.3, 0.6, 1.0])),
    }
    sequence = build_sequence([{"env_id": f"Toy/{t}-v0", "steps": 100} for t in "ABC"])
    return curves, sequence


def test_continual_world_metrics_on_a_constructed_sequence():
    curves, sequence = constructed_curves()
    cw = st.continual_world(curves, sequence)
    assert {t: cw[t]["final"] for t in "ABC"} == pytest.approx({"A": 0.1, "B": 0.6, "C": 1.0})
    assert np.mean([cw[t]["final"] for t in "ABC"]) == pytest.approx(1.7 / 3)  # average performance
    # F_i = p_i(end of task i) - p_i(T): A 0.6 - 0.1, B 0.9 - 0.6, C (trained last) 0
    assert {t: cw[t]["forgetting"] for t in "ABC"} == pytest.approx({"A": 0.5, "B": 0.3, "C": 0.0})
    assert {t: cw[t]["auc"] for t in "ABC"} == pytest.approx({"A": 0.4, "B": 0.7, "C": 0.8})
    assert st.forward_transfer(0.7, 0.5) == pytest.approx(0.4)  # (0.7 - 0.5) / (1 - 0.5)
    assert math.isnan(st.forward_transfer(0.7, 1.0))


def test_cora_metrics_on_a_constructed_sequence():
    curves, sequence = constructed_curves()
    cora = st.cora(curves, sequence)
    # A loses 0.6 -> 0.4 while B trains and 0.4 -> 0.1 while C trains; B loses 0.9 -> 0.6 while C trains
    assert cora["A"]["forgetting"] == pytest.approx(0.25)
    assert cora["B"]["forgetting"] == pytest.approx(0.3)
    assert math.isnan(cora["C"]["forgetting"]) and math.isnan(cora["A"]["zero_shot"])
    # B gains 0.0 -> 0.1 while A trains; C gains 0.1 -> 0.1 (A) and 0.1 -> 0.3 (B)
    assert cora["B"]["zero_shot"] == pytest.approx(0.1)
    assert cora["C"]["zero_shot"] == pytest.approx(0.1)


def test_value_at_takes_the_last_evaluation_at_or_before_the_step():
    series = (np.array([50.0, 100.0]), np.array([1.0, 2.0]))
    assert st.value_at(series, 100) == 2.0 and st.value_at(series, 99) == 1.0
    assert math.isnan(st.value_at(series, 10)) and st.value_at(series, 10, first_before_start=True) == 1.0


# --- whole command on written runs --------------------------------------------------------------------------------


@pytest.fixture
def small_sweep(tmp_path) -> Path:
    """Two methods x two seeds on the three paper games; FIRE beats no-reset on every game and seed."""
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        write_run(sweep / f"none_{seed}", "none", seed, final_evals({g: hns(g, 0.1 + 0.1 * seed) for g in GAMES}))
        write_run(sweep / f"fire_{seed}", "fire", seed, final_evals({g: hns(g, 0.5 + 0.1 * seed) for g in GAMES}))
    return sweep


def read_csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_compare_writes_every_output_with_hand_checked_numbers(small_sweep, tmp_path):
    out = tmp_path / "out"
    run_compare(small_sweep, "--out", out, "--reps", "200")
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    aggregate = {row["group"]: row for row in read_csv(out / "aggregate.csv")}
    assert list(aggregate) == ["none", "fire"]  # the baseline first
    assert float(aggregate["fire"]["iqm"]) == pytest.approx(0.55)  # HNS 0.5 (seed 0) and 0.6 (seed 1) on 3 games
    assert float(aggregate["none"]["iqm"]) == pytest.approx(0.15)
    assert float(aggregate["fire"]["p_improvement"]) == pytest.approx(1.0)
    assert aggregate["fire"]["score"] == "HNS" and aggregate["fire"]["baseline"] == "none"
    summary = [r for r in read_csv(out / "summary.csv") if r["group"] == "fire" and r["task"] == "Asterix"][0]
    assert float(summary["final_return"]) == pytest.approx(hns("Asterix", 0.55))
    assert float(summary["final_hns"]) == pytest.approx(0.55)
    continual = {(r["group"], r["task"]): r for r in read_csv(out / "continual.csv")}
    assert float(continual["fire", "all tasks"]["cw_final"]) == pytest.approx(0.55)
    assert float(continual["fire", "Asterix"]["cw_forgetting"]) == pytest.approx(0.0)
    report = (out / "report.md").read_text()
    for name in OUTPUTS[1:]:
        assert f"({name})" in report, name
    assert "nothing skipped" in (out / "skipped.txt").read_text()


def test_gap_to_a_group_writes_its_table_into_the_report(small_sweep, tmp_path):
    """--gap-to none: fire's final return averaged over the three games, against none's, and the same after fire's
    first reset (at 100: every evaluation holds the final scores); no gap row for none itself."""
    out = tmp_path / "out"
    run_compare(small_sweep, "--out", out, "--reps", "50", "--gap-to", "none")
    (row,) = read_csv(out / "gap.csv")
    finals = {g: [hns(g, 0.5 + 0.1 * s) - hns(g, 0.1 + 0.1 * s) for s in (0, 1)] for g in GAMES}
    assert row["group"] == "fire" and row["step"] == "100"
    expected = np.mean([np.mean(v) for v in finals.values()])
    assert float(row["final_gap"]) == pytest.approx(expected) and float(row["after_gap"]) == pytest.approx(expected)
    assert "## The gap to `none` ([gap.csv](gap.csv)" in (out / "report.md").read_text()


def test_default_output_folder_and_group_by_another_key(small_sweep):
    run_compare(small_sweep, "--group-by", "reset.c", "--reps", "50")
    groups = [row["group"] for row in read_csv(small_sweep / "compare" / "aggregate.csv")]
    assert groups == ["none", "c=0.8"]  # runs without a reset group are method none


def test_forward_transfer_against_single_task_reference(tmp_path):
    evals = {s: {"Asterix": hns("Asterix", 0.4), "BeamRider": hns("BeamRider", 0.2)} for s in (50, 100, 150, 200)}
    write_run(tmp_path / "runs" / "fire_0", "fire", 0, evals, games=("Asterix", "BeamRider"))
    write_run(tmp_path / "ref" / "asterix", "none", 0, {50: {"Asterix": hns("Asterix", 0.1)}}, games=("Asterix",))
    write_run(tmp_path / "ref" / "asterix2", "none", 1, {50: {"Asterix": hns("Asterix", 0.3)}}, games=("Asterix",))
    run_compare(tmp_path / "runs", "--reference-dir", tmp_path / "ref", "--reps", "50")
    rows = {r["task"]: r for r in read_csv(tmp_path / "runs" / "compare" / "continual.csv")}
    # AUC = 0.4 (both evaluations of the first visit); AUC^b = mean(0.1, 0.3) = 0.2 -> (0.4 - 0.2) / 0.8
    assert float(rows["Asterix"]["cw_forward_transfer"]) == pytest.approx(0.25)
    assert rows["BeamRider"]["cw_forward_transfer"] == ""  # no reference for it


def test_paper_overlay_only_for_the_papers_tasks(tmp_path):
    run = write_run(tmp_path / "r", "fire", 0, {50: {"Asterix": 1.0, "Pong": 2.0}}, games=("Asterix", "Pong"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    sequence = build_sequence(config["env"]["tasks"])
    record = RunRecord(str(run), config, "fire", sequence, read_rows_checked(run)[0])
    assert set(eval_figure({"fire": [record]}, sequence, paper_overlay=True).overlay) == {"Asterix"}
    assert eval_figure({"fire": [record]}, sequence, paper_overlay=False).overlay == {}
    run_compare(tmp_path, "--paper-overlay", "--reps", "20")
    assert PAPER_LABEL in (tmp_path / "compare" / "report.md").read_text()


def test_wandb_history_becomes_metrics_rows():
    sequence = build_sequence([{"env_id": "ALE/Asterix-v5", "steps": 100}, {"env_id": "ALE/Pong-v5", "steps": 100}])
    history = [
        {"_step": 100, "eval/Asterix/return": 5.0, "eval/Pong/return": -21.0},
        {"_step": 120, "charts/episodic_return": 7.0},
        {"_step": 100, "reset/sfe_total": 1.5, "plasticity/q/srank/fc1": 3},
    ]
    rows = rows_from_history(history, sequence)
    assert [r["event"] for r in rows] == ["switch", "switch", "eval", "plasticity", "reset", "episode"]
    assert rows[-1]["task"] == "Pong" and eval_series(rows)["Asterix"][1].tolist() == [5.0]


# --- bad input --------------------------------------------------------------------------------------------------


def test_partial_last_line_is_skipped_and_reported(small_sweep, tmp_path):
    run = write_run(
        small_sweep / "fire_2", "fire", 2, final_evals({g: hns(g, 0.7) for g in GAMES}), tail='{"event": "ev'
    )
    rows, problems = read_rows_checked(run)
    assert len(problems) == 1 and "line" in problems[0] and "cut off" in problems[0]
    assert rows[-1]["event"] == "eval"  # every complete line is used
    out = tmp_path / "out"
    run_compare(small_sweep, "--out", out, "--reps", "50")
    skipped = (out / "skipped.txt").read_text()
    assert "fire_2" in skipped and "cut off mid-line" in skipped
    assert "cut off mid-line" in (out / "report.md").read_text()
    assert [r["runs"] for r in read_csv(out / "aggregate.csv") if r["group"] == "fire"] == ["3"]


def test_killed_run_is_drawn_but_left_out_of_the_tables(small_sweep, tmp_path):
    write_run(small_sweep / "fire_9", "fire", 9, {50: {g: 0.0 for g in GAMES}})  # stopped after one evaluation
    run_compare(small_sweep, "--out", tmp_path / "out", "--reps", "50")
    assert "fire_9: no final evaluation" in (tmp_path / "out" / "skipped.txt").read_text()
    assert [r["runs"] for r in read_csv(tmp_path / "out" / "aggregate.csv") if r["group"] == "fire"] == ["2"]


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_compare(tmp_path)
    assert "no run directories" in str(exit_info.value.code) and str(tmp_path) in str(exit_info.value.code)


def test_mismatched_task_sequences_in_one_group_are_an_error(small_sweep):
    write_run(small_sweep / "fire_short", "fire", 5, final_evals({"Asterix": 1.0}, n_games=1), games=("Asterix",))
    with pytest.raises(SystemExit) as exit_info:
        run_compare(small_sweep)
    message = str(exit_info.value.code)
    assert "group 'fire' mixes task sequences" in message and "fire_short" in message and "Asterix(100)" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--group-by", "reset.nope"], "'reset.nope' is not a key"),
        (["--baseline", "dash"], "--baseline 'dash' is not a group; groups: fire, none"),
        (["--gap-to", "unprimed"], "--gap-to 'unprimed' is not a group; groups: fire, none"),
        (["--reps", "0"], "--reps must be a positive integer"),
    ],
)
def test_bad_option_values_are_named(small_sweep, extra, expected):
    with pytest.raises(SystemExit) as exit_info:
        run_compare(small_sweep, *extra)
    assert expected in str(exit_info.value.code)


def test_cli_exits_non_zero_with_one_line_naming_the_path(tmp_path):
    missing = tmp_path / "does-not-exist"
    result = subprocess.run(
        [sys.executable, "-m", "fire_rl.compare", str(missing)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"fire_rl.compare: error: no such directory: {missing}"]


# --- end to end over a tiny real sweep ----------------------------------------------------------------------------

SWEEP = ["-m", "+reset=none,fire", "seed=0,1", *TINY_SWEEP]


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("sweep") / "multirun"
    result = run_train(*SWEEP, f"hydra.sweep.dir={sweep}", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return sweep


@pytest.mark.slow
def test_compare_over_a_tiny_real_sweep(real_sweep):
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "fire_rl.compare", str(real_sweep), "--paper-overlay"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    print(f"compare wall time over the tiny sweep: {time.perf_counter() - started:.1f} s")
    out = real_sweep / "compare"
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    aggregate = {row["group"]: row for row in read_csv(out / "aggregate.csv")}
    assert set(aggregate) == {"none", "fire"} and aggregate["fire"]["runs"] == "2"
    summary = read_csv(out / "summary.csv")
    assert {(r["group"], r["task"]) for r in summary} == {(m, g) for m in ("none", "fire") for g in GAMES}
    report = (out / "report.md").read_text()
    assert "![eval_curves](eval_curves.png)" in report and "| fire | 2 | 2 | 0, 1 |" in report


def test_stage_one_runs_of_a_branch_protocol_are_skipped(tmp_path):
    """A run stopped with stop_at_step is stage 1 of the midpoint protocol, not a 'none' method run."""
    from fire_rl.compare import SkipRun, load_run

    (tmp_path / "config.yaml").write_text("stop_at_step: 1250000\nseed: 0\n")
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(SkipRun, match="stage 1"):
        load_run(tmp_path, "reset.name")


# --- the sequence a run trained on --------------------------------------------------------------------------------

ANT_DRAWS = {"key": "floor_friction", "count": 3, "low": 0.02, "high": 2.0, "log": True, "seed": 0}


def test_compare_builds_the_drawn_sequence_when_env_json_is_missing(tmp_path):
    """Runs from before env.json recorded the sequence: the MuJoCo suite redraws the frictions from the config."""
    run = tmp_path / "old"
    run.mkdir()
    env = {"kind": "mujoco", "cycles": 1, "tasks": [{"env_id": "Ant-v5", "steps": 300}], "draws": ANT_DRAWS}
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "agent": {"name": "sac"}, "env": env}))
    (run / "metrics.jsonl").write_text("")
    record, _ = load_run(run, "reset.name")
    names = [t.name for t in record.sequence.visits]
    assert len(names) == 3 and all(n.startswith("Ant-floor_friction") for n in names)


def test_compare_reads_the_sequence_back_from_env_json(tmp_path):
    run = write_run(tmp_path / "r", "fire", 0, {50: {"Asterix": 1.0}}, games=("Asterix",))
    recorded = [{"name": "Asterix-as-run", "env_id": "ALE/Asterix-v5", "steps": 100, "kwargs": {}, "dynamics": {}}]
    (run / "env.json").write_text(json.dumps({"kind": "atari", "sequence": recorded}))
    record, _ = load_run(run, "reset.name")
    assert [t.name for t in record.sequence.visits] == ["Asterix-as-run"]


ANT_SWEEP = [
    "-m",
    "+experiment=slippery_ant",
    "+reset=none,fire",
    "env.tasks.0.steps=300",
    "env.draws.count=3",
    "agent.learning_starts=100",
    "loop.batch_size=32",
    "loop.buffer_size=2000",
    "eval_every=300",
    "eval_max_episode_steps=20",
    "metrics_every=150",
    "metrics_probe_size=32",
    "log_every=150",
]


@pytest.mark.slow
def test_compare_over_a_tiny_slippery_ant_sweep(tmp_path):
    """The design's third command, then compare: one eval panel per drawn friction, every output written."""
    sweep = tmp_path / "ant"
    result = run_train(*ANT_SWEEP, f"hydra.sweep.dir={sweep}", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "out"
    run_compare(sweep, "--out", out, "--reps", "50")
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    runs, _ = load_runs([sweep], "reset.name")
    frictions = [t.name for t in runs[0].sequence.distinct_tasks]
    assert len(frictions) == 3 and all(n.startswith("Ant-floor_friction") for n in frictions)
    groups = {"none": [r for r in runs if r.group == "none"], "fire": [r for r in runs if r.group == "fire"]}
    assert eval_figure(groups, runs[0].sequence, paper_overlay=False).panels == frictions
    assert {r["task"] for r in read_csv(out / "summary.csv")} == set(frictions)


def test_runs_are_grouped_by_reset_and_regularizer_together(tmp_path):
    for method, regularizer in (("fire", None), ("fire", "l2_init"), ("none", "parseval")):
        run = write_run(tmp_path / f"{method}_{regularizer}", method, 0, final_evals({g: 1.0 for g in GAMES}))
        if regularizer:
            config = yaml.safe_load((run / "config.yaml").read_text())
            config["regularizer"] = {"name": regularizer, "coef": 1e-3}
            (run / "config.yaml").write_text(yaml.safe_dump(config))
    runs, _ = load_runs([tmp_path], "reset.name")
    assert sorted(r.group for r in runs) == ["fire", "fire+l2_init", "none+parseval"]


@pytest.mark.slow
def test_branched_curves_start_from_their_stage_one_prefix(tmp_path):
    """The midpoint protocol's figure covers 0 to the end, like Fig. 4a; the tables keep the branch's own rows."""
    stage1, runs = tmp_path / "stage1", tmp_path / "runs"
    common = [*TINY, "eval_every=100", "torch_threads=1"]
    assert run_train(*common, "stop_at_step=300", f"hydra.run.dir={stage1}").returncode == 0
    checkpoint = stage1 / "checkpoints" / "step_000000000300"
    branched = run_train(*common, "+reset=fire", f"branch_from={checkpoint}", f"hydra.run.dir={runs / 'fire'}")
    assert branched.returncode == 0, branched.stderr[-2000:]
    (record,), _ = load_runs([runs], "reset.name")
    assert min(record.evals["Asterix"][0]) > 300  # the branch's own rows start after the branch
    steps = eval_figure({"fire": [record]}, record.sequence, paper_overlay=False).data["fire"]["Asterix"][0]
    assert steps.min() == 100 and steps.max() == 600 and 300 in steps  # stitched: stage 1's evaluations first
    run_compare(runs, "--reps", "20")
    assert {r["group"] for r in read_csv(runs / "compare" / "summary.csv")} == {"fire"}


def test_a_copied_sweep_finds_each_branch_stage_one_beside_it(tmp_path):
    """A sweep copied off its machine (carried/seedN/{stage1,fire}) keeps the absolute branch_from of the machine
    that ran it; the branch still finds its own seed's stage 1 (not another seed's) from the path's tail."""
    from fire_rl.compare.runs import branch_prefix

    for seed in (0, 1):
        stage1 = tmp_path / "carried" / f"seed{seed}" / "stage1"
        stage1.mkdir(parents=True)
        rows = [{"event": "eval", "step": s, "time_s": 0.0, "eval/Game/return": float(seed)} for s in (50, 100, 150)]
        (stage1 / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gone = Path("/nonexistent/runs/Game/seed1/stage1/checkpoints/step_000000000100")
    prefix, note = branch_prefix(gone, tmp_path / "carried" / "seed1" / "fire")
    assert note is None and [(r["step"], r["eval/Game/return"]) for r in prefix] == [(50, 1.0), (100, 1.0)]
    _, note = branch_prefix(gone, tmp_path / "elsewhere" / "fire")
    assert "was not found" in note


# --- packed runs files ----------------------------------------------------------------------------------------

BRANCH_POINT = "/gone/runs/Asterix/seed0/stage1/checkpoints/step_000000000100"


def add_rows(run: Path, rows: list[dict], tail: str = "", **config) -> None:
    """More metrics rows in step order (after those of the same step, as the training loop writes them), a tail,
    and config keys."""
    merged = sorted([*read_rows_checked(run)[0], *rows], key=lambda r: r["step"])
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in merged) + tail)
    (run / "config.yaml").write_text(yaml.safe_dump({**yaml.safe_load((run / "config.yaml").read_text()), **config}))


def episodes(steps, **extra) -> list[dict]:
    return [
        {"event": "episode", "step": s, "time_s": s / 7, "task": "Asterix", "charts/episodic_return": s / 10.0,
         "charts/episodic_length": s % 13, **extra}
        for s in steps
    ]  # fmt: skip


@pytest.fixture
def branched_sweep(tmp_path) -> Path:
    """One seed of a midpoint sweep, copied off its machine: a stage 1 stopped at 100 and two methods branched from
    it, with training episodes (one with a key the packed columns do not hold), an env.json, a cut-off line."""
    root = tmp_path / "sweep"
    evals = {50: {"Asterix": 1.0}, 100: {"Asterix": 2.0}}
    add_rows(write_run(root / "seed0" / "stage1", "none", 0, evals, ("Asterix",)), episodes([30, 70]), stop_at_step=100)
    for method, score in (("none", 3.0), ("fire", 4.0)):
        run = write_run(root / "seed0" / method, method, 0, {150: {"Asterix": score}, 200: {"Asterix": score}},
                        ("Asterix",), steps=200)  # fmt: skip
        odd = episodes([160], **{"charts/episodic_success": True}) if method == "fire" else []
        add_rows(run, [*episodes([120, 150, 150, 190]), *odd], '{"event": "ev', branch_from=BRANCH_POINT)
    sequence = [{"name": "Asterix", "env_id": "ALE/Asterix-v5", "steps": 200, "kwargs": {}, "dynamics": {}}]
    (run / "env.json").write_text(json.dumps({"kind": "atari", "sequence": sequence}))
    return root


def without_episode_time(rows: list[dict]) -> list[dict]:
    """The rows as a packed file gives them back: a training episode without its time_s, unless it has keys the
    columns do not hold."""
    packable = {"event", "step", "time_s", "task", "charts/episodic_return", "charts/episodic_length"}
    return [{k: v for k, v in r.items() if k != "time_s" or r.keys() != packable} for r in rows]


def test_a_packed_sweep_reads_back_as_its_run_directories(branched_sweep, tmp_path):
    packed = tmp_path / "runs.jsonl.gz"
    pack_main([str(branched_sweep), str(packed)])
    first = packed.read_bytes()
    pack_main([str(branched_sweep), str(packed)])
    assert packed.read_bytes() == first  # byte-stable: the same runs, the same file
    from_dirs, dir_notes = load_runs([branched_sweep], "reset.name")
    from_pack, pack_notes = load_runs([packed], "reset.name")
    root, file = str(branched_sweep.resolve()), str(packed.resolve())
    assert [r.path.replace(root, file) for r in from_dirs] == [r.path for r in from_pack]
    assert [r.path.removeprefix(file) for r in from_pack] == ["/seed0/fire", "/seed0/none"]
    assert [n.replace(root, file) for n in dir_notes] == pack_notes
    assert sum("stopped at step 100" in n for n in pack_notes) == 1 and sum("cut off" in n for n in pack_notes) == 2
    for run, back in zip(from_dirs, from_pack, strict=True):
        assert (back.config, back.group, back.sequence) == (run.config, run.group, run.sequence)
        assert back.rows == without_episode_time(run.rows)
        assert back.prefix == without_episode_time(run.prefix) and [r["step"] for r in back.prefix][-1] == 100
    assert [r["step"] for r in from_pack[0].rows if "charts/episodic_success" in r and "time_s" in r] == [160]
    table = runs_table(packed)
    assert set(table.run) == {r.path for r in from_pack} and "charts/episodic_return" in set(table.metric)
    run_compare(branched_sweep, "--out", tmp_path / "from_dirs", "--reps", "50")
    run_compare(packed, "--reps", "50")  # the default output folder: beside the file
    for name in ("summary.csv", "aggregate.csv", "intervention.csv", "eval_curves.png", "train_curves.png"):
        assert (tmp_path / "compare" / name).read_bytes() == (tmp_path / "from_dirs" / name).read_bytes(), name


def test_a_file_that_is_not_a_packed_runs_file_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    with gzip.open(tmp_path / "later.jsonl.gz", "wt") as f:
        f.write(json.dumps({"format": PACK_FORMAT, "version": PACK_VERSION + 1}) + "\n")
    for name, expected in (("notes.txt", "not a directory, nor a readable packed runs file"),
                           ("later.jsonl.gz", f"packed runs version {PACK_VERSION + 1}")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            run_compare(tmp_path / name)
        assert expected in str(exit_info.value.code) and name in str(exit_info.value.code)


@pytest.mark.slow
def test_the_committed_midpoint_tables_rebuild_from_its_packed_runs(tmp_path):
    """The golden check of docs/results/minatar_midpoint: its runs.jsonl.gz gives every committed csv byte for byte
    (the tables were made with the default bootstrap replications; about 20 s)."""
    result = REPO / "docs" / "results" / "minatar_midpoint"
    run_compare(result / "runs.jsonl.gz", "--baseline", "none", "--out", tmp_path)
    tables = sorted(result.glob("*.csv"))
    assert len(tables) == 5
    for table in tables:
        assert (tmp_path / table.name).read_bytes() == table.read_bytes(), table.name


def test_minatar_games_get_no_human_normalised_score():
    """MinAtar's miniature games share names with Atari games, not their score scales."""
    assert reference_for("MinAtar/Asterix-v0") is None and math.isnan(human_normalised(10.0, "MinAtar/Asterix-v0"))
    assert reference_for("ALE/Asterix-v5") == REFERENCE_SCORES["Asterix"]


def test_plasticity_table_reads_each_visit_end_and_the_probe_after_its_reset():
    sequence = build_sequence([{"env_id": f"Toy/{t}-v0", "steps": 100} for t in "AB"])
    key = "plasticity/q/dormant_0.025/all"
    rows = [
        {"event": "plasticity", "step": 50, "phase": "periodic", key: 10.0, "plasticity/q/effective_rank/fc1": 5.0},
        {"event": "plasticity", "step": 100, "phase": "pre_reset", key: 20.0, "plasticity/q/effective_rank/fc1": 4.0},
        {"event": "reset", "step": 100},
        {"event": "plasticity", "step": 100, "phase": "post_reset", key: 2.0, "plasticity/q/effective_rank/fc1": 9.0},
        {"event": "plasticity", "step": 180, "phase": "periodic", key: 7.0, "plasticity/q/effective_rank/fc1": 8.0},
    ]
    run = RunRecord("r", {"seed": 0}, "fire", sequence, [*rows, {"event": "eval", "step": 200, "eval/B/return": 1.0}])
    cut_off = RunRecord("c", {"seed": 1}, "fire", sequence, [{**rows[0], key: 99.0}])  # killed at 50, no final eval
    table = {r["visit"]: r for r in plasticity_rows({"fire": [run, cut_off], "cut_off": [cut_off]}, reps=20)}
    assert {r["group"] for r in table.values()} == {"fire"} and table[0]["runs"] == 1  # finished runs only
    assert table[0]["q/dormant_0.025/all"] == 20.0 and table[0]["q/dormant_0.025/all@after_reset"] == 2.0
    assert table[0]["q/effective_rank/fc1"] == 4.0 and table[0]["q/effective_rank/fc1@after_reset"] == 9.0
    assert table[1]["q/dormant_0.025/all"] == 7.0 and math.isnan(table[1]["q/dormant_0.025/all@after_reset"])


def test_intervention_table_reads_probes_around_the_branch_and_the_reset_diagnostics():
    """Hand-built rows: a branch at step 100 with a reset (pre/post probes, two layers), and a `none` branch whose
    only probe at the branch point is stage 1's."""
    from types import SimpleNamespace

    from fire_rl.compare.intervention import intervention_rows

    key = "plasticity/q/dormant_0.025/all"
    stage1 = [{"event": "plasticity", "step": 100, "phase": "periodic", key: 30.0}]
    reset = {
        "event": "reset",
        "step": 100,
        "reset/q/a/sfe": 2.0,
        "reset/q/a/sfe_normalised": 0.5,
        "reset/q/b/sfe": 1.0,
        "reset/q/b/sfe_normalised": 0.25,
        "reset/q/a/dfi_raw_before": 10.0,
        "reset/q/a/dfi_raw_after": 1.0,
        "reset/q/b/dfi_raw_before": 5.0,
        "reset/q/b/dfi_raw_after": 2.0,
        "reset/fire/sv_min": 0.9,
    }
    fire_rows = [
        {"event": "plasticity", "step": 100, "phase": "pre_reset", key: 31.0},
        reset,
        {"event": "plasticity", "step": 100, "phase": "post_reset", key: 10.0},
        {"event": "plasticity", "step": 200, "phase": "periodic", key: 20.0},
    ]
    none_rows = [{"event": "plasticity", "step": 200, "phase": "periodic", key: 40.0}]
    stage1.append({"event": "eval", "step": 100, "eval/Game/return": 50.0})  # at the branch point: not after it
    fire_rows += [{"event": "eval", "step": step, "eval/Game/return": v} for step, v in ((150, 4.0), (200, 8.0))]
    branch = {"branch_from": "stage1/checkpoints/step_000000000100"}

    def run(rows, complete=True):
        return SimpleNamespace(config=branch, rows=rows, curve_rows=stage1 + rows, complete=complete)

    cut_off = run([{"event": "plasticity", "step": 150, "phase": "periodic", key: 99.0}], complete=False)
    groups = {"fire": [run(fire_rows), cut_off], "none": [run(none_rows)], "cut_off": [cut_off]}
    fire, none = intervention_rows(groups, reps=10)  # the unfinished run is left out, and its group with it
    assert fire["runs"] == 1 and none["runs"] == 1
    short = key.removeprefix("plasticity/")
    assert (fire[f"{short}@before"], fire[f"{short}@after"], fire[f"{short}@end"]) == (31.0, 10.0, 20.0)
    assert fire["reset_sfe_vs_full"] == pytest.approx(3.0 / 8.0)  # (2 + 1) / (2 / 0.5 + 1 / 0.25)
    assert (fire["reset_dfi_raw_before"], fire["reset_dfi_raw_after"], fire["reset_sv_min"]) == (15.0, 3.0, 0.9)
    assert (none[f"{short}@before"], none[f"{short}@after"], none[f"{short}@end"]) == (30.0, 30.0, 40.0)
    assert math.isnan(none["reset_sfe_vs_full"])
    assert fire["return_after"] == 6.0 and math.isnan(none["return_after"])  # none_rows hold no evaluation


def test_difference_ci_resamples_each_sample_on_its_own():
    """Constant samples give a zero-width interval at their difference; with b = [12, 14] and a = [4], the bootstrap
    means of b can only be 12, 13 or 14, so the difference lies in [-10, -8] and covers both ends."""
    assert st.difference_ci([1.0, 1.0, 1.0], [0.0, 0.0], reps=50) == (1.0, 1.0, 1.0)
    gap, low, high = st.difference_ci([4.0], [12.0, 14.0, math.nan], reps=2000)
    assert (gap, low, high) == (-9.0, -10.0, -8.0)
    assert all(math.isnan(v) for v in st.difference_ci([], [1.0]))


def test_gap_table_compares_each_group_with_the_yardstick_over_the_same_evaluations():
    """Primed `none` branched at 100 against two unprimed runs without a branch: final 4 against 14 and 12, after
    the branch (evaluations at 150 and 200) 3 against 13 and 11; an unfinished run is left out."""
    from fire_rl.compare.intervention import gap_rows

    sequence = build_sequence([{"env_id": "Toy/Game-v0", "steps": 200}])

    def run(values: dict[int, float], branch: bool = True) -> RunRecord:
        config = {"seed": 0} | ({"branch_from": "stage1/checkpoints/step_000000000100"} if branch else {})
        rows = [{"event": "eval", "step": step, "eval/Game/return": v} for step, v in values.items()]
        return RunRecord("r", config, "g", sequence, rows)

    unprimed = [run({50: 9.0, 100: 10.0, 150: 12.0, 200: 14.0}, False), run({100: 0.0, 150: 10.0, 200: 12.0}, False)]
    groups = {"none": [run({150: 2.0, 200: 4.0})], "unprimed": [*unprimed, run({150: 99.0}, False)]}
    (row,) = gap_rows(groups, "unprimed", reps=500)
    assert (row["group"], row["runs"], row["yardstick_runs"], row["step"]) == ("none", 1, 2, 100)
    assert (row["final"], row["yardstick_final"], row["final_gap"]) == (4.0, 13.0, -9.0)
    assert (row["after"], row["yardstick_after"], row["after_gap"]) == (3.0, 12.0, -9.0)
    assert row["final_gap_ci_low"] == -10.0 and row["final_gap_ci_high"] == -8.0


def test_reset_marks_draw_a_periodic_strategy_as_its_first_triangle_and_a_span():
    """A few resets get a triangle each; more than PERIODIC_MARKS (ReDo's every 1,000 steps) get one triangle at the
    first and a dotted line to the last, instead of a band of triangles across the panel."""
    import matplotlib.pyplot as plt

    from fire_rl.compare.figures import PERIODIC_MARKS, _reset_marks

    fig, ax = plt.subplots()
    _reset_marks(ax, [100, 200], 0, "red")
    periodic = list(range(1000, 1000 * (PERIODIC_MARKS + 5), 1000))
    _reset_marks(ax, periodic, 1, "blue")
    few, span, first = ax.get_lines()
    plt.close(fig)
    assert list(few.get_xdata()) == [100, 200] and few.get_marker() == "v"
    assert list(span.get_xdata()) == [periodic[0], periodic[-1]] and span.get_linestyle() != "-"  # not a curve
    assert span.get_marker() == "|"  # a bar at the last reset
    assert list(first.get_xdata()) == [periodic[0]] and first.get_marker() == "v"
    assert first.get_ydata()[0] < few.get_ydata()[0]  # one row per group, downwards from the top edge


def level_run(group: str, seed: int, values: list[list[float]]) -> RunRecord:
    """A run through len(values) levels of 100 steps, each evaluated (only while it trains) at 50 and 100 into it."""
    sequence = build_sequence([{"env_id": "Toy/Game-v0", "steps": 100, "name": f"L{i}"} for i in range(len(values))])
    rows = [
        {"event": "eval", "step": 100 * level + offset, "task": f"L{level}", f"eval/L{level}/return": v}
        for level, pair in enumerate(values)
        for offset, v in zip((50, 100), pair, strict=True)
    ]
    return RunRecord("r", {"seed": seed, "eval_tasks": "current"}, group, sequence, rows)


def test_visits_table_reads_each_level_from_its_own_evaluations_and_compares_the_late_levels():
    """`none` learns level 0 (2 then 4) and less later; `full` relearns every level (2 then 6): level means, second
    halves, the late row over the last two levels, and P(improvement) 1 where every full run beats every none run."""
    from fire_rl.compare.visits import visit_rows

    groups = {
        "none": [level_run("none", s, [[2, 4], [1, 3], [0, 2]]) for s in (0, 1)],
        "full": [level_run("full", s, [[2, 4], [2, 6], [2, 6 + s]]) for s in (0, 1)],
    }
    rows = {(r["group"], r["visit"]): r for r in visit_rows(groups, "none", late=2, reps=200)}
    assert (rows["none", "0"]["return_mean"], rows["none", "0"]["return_last_half"]) == (3.0, 4.0)
    assert (rows["none", "2"]["return_mean"], rows["full", "2"]["return_last_half"]) == (1.0, 6.5)
    late = rows["full", "late (1-2)"]
    assert (late["steps"], late["return_mean"], late["return_last_half"]) == ("100-300", 4.125, 6.25)
    assert late["p_improvement"] == 1.0 and math.isnan(rows["none", "late (1-2)"]["p_improvement"])
    assert math.isnan(rows["full", "1"]["p_improvement"])  # per-level rows carry no comparison
    # A level evaluated only while it trains has no final return; the last level's is its evaluation at 300.
    assert math.isnan(final_value(groups["none"][0], "L0")) and final_value(groups["none"][0], "L2") == 2.0


def test_a_run_that_evaluates_the_current_task_only_is_drawn_on_one_panel():
    groups = {"none": [level_run("none", 0, [[2, 4], [1, 3]])]}
    figure = eval_figure(groups, groups["none"][0].sequence, paper_overlay=False)
    steps, values = figure.data["none"][figure.panels[0]]
    assert figure.panels == ["the task being trained"] and list(steps) == [50, 100, 150, 200]
    assert values.tolist() == [[2, 4, 1, 3]]


# --- the runs as a table, for notebooks ---------------------------------------------------------------------------


def test_runs_table_has_a_row_per_number_of_each_run(tmp_path):
    probe = {"event": "plasticity", "step": 300, "phase": "post_reset", "plasticity/q/srank/fc1": 5, "flag": True}
    none = write_run(tmp_path / "sweep" / "none_0", "none", 0, {50: {"Asterix": 1.0}, 300: {"Asterix": 2.0}})
    fire = write_run(
        tmp_path / "sweep" / "fire_1", "fire", 1, {300: {"Asterix": 4.0, "BeamRider": None}}, tail=json.dumps(probe)
    )
    (tmp_path / "orphan").mkdir()
    (tmp_path / "orphan" / "metrics.jsonl").write_text("")
    table = runs_table(tmp_path)
    assert list(table.columns) == ["run", "group", "seed", "event", "step", "task", "phase", "metric", "value"]
    evals = table[table.event == "eval"]
    assert sorted(zip(evals.group, evals.seed, evals.step, evals.metric, evals.value, strict=True)) == [
        ("fire", 1, 300, "eval/Asterix/return", 4.0),  # a null value is left out
        ("none", 0, 50, "eval/Asterix/return", 1.0),
        ("none", 0, 300, "eval/Asterix/return", 2.0),
    ]
    switches = table[table.event == "switch"]
    assert list(switches.metric.unique()) == ["visit"] and len(switches) == 6  # 3 visits per run
    assert list(switches[switches.run == str(none.resolve())].task) == list(GAMES)
    (probe_row,) = table[table.event == "plasticity"].itertuples()  # the bool left out, resets hold no number
    assert (probe_row.run, probe_row.phase, probe_row.metric, probe_row.value) == (
        str(fire.resolve()),
        "post_reset",
        "plasticity/q/srank/fc1",
        5,
    )
    assert len(table) == 10 and "without config.yaml" in table.attrs["notes"][0]
    assert len(runs_table([none, str(fire)])) == 10  # a list of run directories, as paths or strings


def test_runs_table_leaves_the_matplotlib_backend_alone():
    code = "import sys; from fire_rl.compare import runs_table; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_a_folder_inside_a_packed_file_reads_as_that_folder_of_run_directories(branched_sweep, tmp_path):
    """`runs.jsonl.gz/seed0/fire` picks the runs packed under that folder, as `<sweep>/seed0/fire` picks the run
    directories there; the report goes beside the file, under compare/<folder>; a folder holding nothing is named."""
    packed = tmp_path / "runs.jsonl.gz"
    pack_main([str(branched_sweep), str(packed)])
    from_dirs, _ = load_runs([branched_sweep / "seed0" / "fire"], "reset.name")
    from_pack, _ = load_runs([packed / "seed0" / "fire"], "reset.name")
    assert [r.path.removeprefix(str(packed.resolve())) for r in from_pack] == ["/seed0/fire"]
    assert [r.rows for r in from_pack] == [without_episode_time(r.rows) for r in from_dirs]
    assert from_pack[0].prefix and from_pack[0].prefix == without_episode_time(from_dirs[0].prefix)  # its stage 1
    run_compare(packed / "seed0", "--reps", "20")
    assert (tmp_path / "compare" / "seed0" / "summary.csv").is_file()
    with pytest.raises(SystemExit) as exit_info:
        run_compare(packed / "seed9")
    assert "holds no run under seed9; its top folders: seed0" in str(exit_info.value.code)


def test_a_new_branch_from_a_kept_branch_point_draws_the_result_stage_one(branched_sweep, tmp_path, monkeypatch):
    """A result keeps its branch points as <result>/stage1/seed0/step_N beside its packed runs (docs/protocols.md);
    a new method branched from one finds its stage-1 rows in <result>/runs.jsonl.gz, whether or not compare was
    given that file and from whichever folder compare runs (branch_from recorded relative to where training ran);
    an unreadable packed file there is named; nothing else is mistaken for such a point."""
    from fire_rl.compare.runs import kept_stage_one

    result = tmp_path / "result"
    (result / "stage1" / "seed0" / "step_000000000100").mkdir(parents=True)
    pack_main([str(branched_sweep), str(result / "runs.jsonl.gz")])
    new = write_run(tmp_path / "new" / "seed0" / "dash", "dash", 0, {150: {"Asterix": 5.0}}, ("Asterix",), steps=200)
    add_rows(new, [], branch_from="result/stage1/seed0/step_000000000100")  # as typed in tmp_path
    for cwd, roots in ((tmp_path, [tmp_path / "new"]), (branched_sweep, [result / "runs.jsonl.gz", tmp_path / "new"])):
        monkeypatch.chdir(cwd)
        runs, notes = load_runs(roots, "reset.name")
        (dash,) = [r for r in runs if r.group == "dash"]
        prefix = [(r["step"], r.get("eval/Asterix/return")) for r in dash.prefix if r["event"] == "eval"]
        assert prefix == [(50, 1.0), (100, 2.0)], cwd
        assert not [n for n in notes if "was not found" in n]
    (result / "runs.jsonl.gz").write_bytes(b"not gzip")
    _, notes = load_runs([tmp_path / "new"], "reset.name")
    assert any("was not read" in n and "runs.jsonl.gz" in n for n in notes)
    assert any("was not found" in n for n in notes)
    assert kept_stage_one(Path("r/stage1/seed3/step_000000000100")) == Path("r/runs.jsonl.gz/seed3/stage1")
    assert kept_stage_one(Path("out/G/seed0/stage1/checkpoints/step_000000000100")) is None
    assert kept_stage_one(Path("r/seed0/step_000000000100")) is None
