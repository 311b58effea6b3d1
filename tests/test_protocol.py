"""The protocol runner (fire_rl/protocol.py) without training: every committed protocol loads and names real
methods, bad input is refused in one line before anything runs, and the multiruns it would launch put stage 1,
the branches and the yardsticks where each expects the others. Its end-to-end runs are in tests/test_carry.py
(locally) and tests/test_slurm.py (on Slurm)."""

from __future__ import annotations

import pytest
from conftest import compose_cfg

from core.config import ConfigError
from fire_rl import protocol as p

PROTOCOLS = sorted(path.stem for path in p.PROTOCOL_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_protocol_loads_and_its_runs_compose(name):
    protocol = p.load_protocol(name, [])
    for method in protocol.methods:  # each method is a reset config that composes with the preset
        cfg = compose_cfg([f"+experiment={protocol.experiment}", f"+reset={method}", *protocol.overrides])
        assert cfg.reset.name == method


BAD = {
    "unknown protocol": (["sweep", "minatar_midpiont"], "unknown protocol 'minatar_midpiont'; valid choices:"),
    "unknown stage": (["swep", "minatar_midpoint"], "unknown stage 'swep'; valid choices: pilot, sweep"),
    "unknown key": (["sweep", "minatar_midpoint", "seed=[0]"], "unknown key 'seed'; valid keys: experiment"),
    "unknown method": (["sweep", "minatar_midpoint", "methods=[none,fier]"], "unknown method of protocol"),
    "bad launcher": (["sweep", "minatar_midpoint", "launcher=pbs"], "unknown launcher 'pbs'; valid choices: local"),
    "no seeds": (["sweep", "minatar_midpoint", "seeds=[]"], "`seeds` is empty"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_refused_in_one_line_before_anything_runs(name, tmp_path):
    argv, expected = BAD[name]
    with pytest.raises(SystemExit) as stop:
        p.main([*argv, f"out={tmp_path}"])
    assert str(stop.value).startswith("fire_rl.protocol: error: ") and expected in str(stop.value)
    assert not any(tmp_path.iterdir())


def test_branches_read_their_own_seeds_stage_1_and_yardsticks_keep_their_overrides(tmp_path):
    protocol = p.load_protocol("minatar_priming", [f"out={tmp_path}", "seeds=[0,1]"])
    command = p.multirun_command(protocol, ["stop_at_step=150000"], "stage1", ["prime_updates=20"], [0, 1])
    assert "seed=0,1" in command and "hydra/launcher=parallel" in command and "hydra.launcher.n_jobs=2" in command
    assert command[-1] == "hydra.sweep.subdir=${game:env.tasks.0.env_id}/seed${seed}/stage1"
    assert command[-2] == f"hydra.sweep.dir={tmp_path}"
    unprimed = p.multirun_command(protocol, protocol.yardsticks["unprimed"], "unprimed", ["prime_updates=20"], [0])
    # The yardstick's own prime_updates=0 comes after the priming override given to every run, so it wins.
    assert unprimed.index("prime_updates=0") > unprimed.index("prime_updates=20")
    slurm = p.multirun_command(p.load_protocol("paper_dqn", ["launcher=slurm"]), [], "x", [], [0])
    assert (
        "hydra/launcher=slurm" in slurm
        and "env.tasks.0.env_id=ALE/Asterix-v5,ALE/BeamRider-v5,ALE/DemonAttack-v5" in slurm
    )


def test_a_branch_finds_its_stage_1_through_the_game_and_seed_of_its_own_config(tmp_path):
    """The branch_from and run-directory interpolations resolve per job: game and seed from the job's config."""
    from fire_rl.train import game_of  # noqa: F401  (registers the `game` resolver)

    protocol = p.load_protocol("minatar_midpoint", [f"out={tmp_path}"])
    stage1 = f"{tmp_path}/{p.leaf_path(protocol, 'stage1')}/checkpoints/step_000000150000"
    cfg = compose_cfg(["+experiment=minatar_midpoint", "seed=3", "+reset=fire", f"branch_from={stage1}"])
    assert cfg.branch_from == f"{tmp_path}/SpaceInvaders/seed3/stage1/checkpoints/step_000000150000"


def test_a_protocol_setting_that_is_not_a_number_is_named():
    with pytest.raises(ConfigError, match="jobs must be positive, got 0"):
        p.load_protocol("minatar_midpoint", ["jobs=0"])
