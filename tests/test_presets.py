"""The paper's settings as params presets, and `fussbench preset`."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from cli_workspace import REPO, invoke

from fussbench import presets
from fussbench.errors import FussbenchError
from fussbench.methods import get_spec, parse_method
from fussbench.methods.check import load_checked_params
from fussbench.params import load_params
from fussbench.presets import load_preset, preset_names
from fussbench.reporting.study_hypotheses import check_hypotheses
from fussbench.studies.reports import REPORTS, study_report
from fussbench.studies.study import study_runs

PARAMS = str(REPO / "params.yaml")


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_a_valid_setting_of_the_repository_params(name):
    preset = load_preset(name)
    params = load_params(PARAMS, preset.overrides())
    params.setups_in_use()  # each setup's dataset is downloaded and cached
    assert params.setup in params.runs_on
    used = {params.setups[setup]["dataset"] for setup in params.runs_on}
    assert sorted(params.datasets) == sorted(used)
    assert params.reports_dir == f"reports/{name}"
    for key, value in preset.values.items():
        node = params
        for part in key.split("."):
            node = node[part] if isinstance(node, dict) else getattr(node, part)
        assert node == value, key


def test_the_paper_settings_are_all_there():
    names = preset_names()
    for setting in ("cityscapes_city3", "cityscapes_city6", "cityscapes_city18", "cocostuff27"):
        assert f"paper_{setting}" in names
    assert load_preset("paper_cityscapes_city3").values["backbone"] == "dino_vitb8"


def test_listing_and_printing_the_command():
    listing = invoke("preset", "--params", PARAMS)
    assert listing.exit_code == 0
    assert [line.split(":")[0] for line in listing.output.splitlines()] == preset_names()
    printed = invoke("preset", "paper_cocostuff27", "--params", PARAMS, "-S", "seeds=[0, 1]")
    assert printed.exit_code == 0, printed.output
    words = shlex.split(printed.output)
    assert words[:3] == ["dvc", "exp", "run"]
    assert words[3::2] == ["-S"] * ((len(words) - 3) // 2)
    assert words[4::2] == [*load_preset("paper_cocostuff27").overrides(), "seeds=[0, 1]"]


def test_run_hands_the_command_to_dvc_and_returns_its_status(monkeypatch):
    calls = []

    def fake_run(command, check):
        calls.append(command)
        return subprocess.CompletedProcess(command, 3)

    monkeypatch.setattr(subprocess, "run", fake_run)
    result = invoke("preset", "paper_cityscapes_city6", "--params", PARAMS, "--run")
    assert result.exit_code == 3
    expected = ["dvc", "exp", "run"]
    for override in load_preset("paper_cityscapes_city6").overrides():
        expected += ["-S", override]
    assert calls == [expected]


def test_bad_presets_and_overrides_are_named(tmp_path, monkeypatch):
    unknown = invoke("preset", "paper_voc", "--params", PARAMS)
    assert (
        unknown.exit_code == 2
        and "valid: baselines, paper, paper_auto_aggregation," in unknown.output
    )
    bad_key = invoke("preset", "paper_cocostuff27", "--params", PARAMS, "-S", "trian.x=1")
    assert bad_key.exit_code == 2 and "unknown key 'trian'" in bad_key.output
    monkeypatch.setattr(presets, "PRESETS_DIR", tmp_path)
    (tmp_path / "broken.yaml").write_text("set: {backbone: dino_vitb8}\n")
    with pytest.raises(FussbenchError, match=r"broken\.yaml: a preset must be a mapping"):
        load_preset("broken")
    (tmp_path / "wrong.yaml").write_text("description: x\nset: {setup: no_such_setup}\n")
    wrong = invoke("preset", "wrong", "--params", PARAMS)
    assert wrong.exit_code == 2 and "unknown setup 'no_such_setup'" in wrong.output


@pytest.mark.parametrize(
    "name", [n for n in preset_names() if "study.name" in load_preset(n).values]
)
def test_every_study_preset_has_a_report_and_hypotheses_about_what_it_runs(name):
    params = load_checked_params(PARAMS, load_preset(name).overrides())
    assert params.study.name == name
    assert study_report(params) is REPORTS[name]
    assert study_runs(params)  # checks the hypotheses against the study


def test_the_converged_study_trains_ten_methods_over_ten_seeds_in_fp32():
    params = load_checked_params(PARAMS, load_preset("paper_converged").overrides())
    runs = study_runs(params)
    trained = [
        run for run in runs if get_spec(parse_method(run.method).aggregator).kind != "reference"
    ]
    assert len(trained) == 100 and params.train.precision == "fp32"
    assert (params.federation.rounds, params.train.local_steps) == (5, 200)
    family = {h.id: h for h in check_hypotheses(params.study)}
    assert list(family) == ["H1", "H2", "H3", "C1", "C2"]
    assert family["H3"].a == "better_fedcc" and family["C2"].margin == 1.0
