"""A study's runs (:func:`fussbench.studies.study.study_runs`): what each run is given,
and what is recorded of it."""

import json

import pandas as pd
import pytest

from fussbench.errors import FussbenchError
from fussbench.params import parse_params
from fussbench.studies.study import (
    ROUNDS,
    read_round_records,
    record_finished,
    record_rounds,
    study_runs,
)


def study(**changes: object) -> dict:
    """A two-variant, two-method study of one setup and seed, with ``changes``."""
    return {
        "study": {
            "name": "privacy",
            "methods": ["local", "fedavg.uniform"],
            "variants": {"eps1": ["privacy.target_epsilon=1"], "none": []},
            **changes,
        }
    }


def test_a_methods_overrides_come_after_the_variants_and_before_the_cells():
    params = parse_params(
        study(method_overrides={"fedavg.uniform": ["privacy.mechanism=central", "seed=9"]})
    )
    runs = {run.key: run for run in study_runs(params)}
    fedavg = runs[("eps1", "camvid_domain", "fedavg.uniform", 0)]
    assert fedavg.overrides == (
        "privacy.target_epsilon=1",
        "privacy.mechanism=central",
        "seed=9",
        "setup=camvid_domain",
        "seed=0",  # the study's seed wins over the method's
        "aggregator=fedavg",
        "federation.weighting=uniform",
        "federation.mode=null",
    )
    assert (
        "privacy.mechanism=central"
        in runs[("none", "camvid_domain", "fedavg.uniform", 0)].overrides
    )
    local = runs[("eps1", "camvid_domain", "local", 0)]
    assert not any(override.startswith("privacy.mechanism") for override in local.overrides)


def test_the_cells_own_aggregator_wins_over_a_methods_overrides():
    params = parse_params(study(method_overrides={"local": ["aggregator=fedavg"]}))
    run = next(run for run in study_runs(params) if run.method == "local")
    assert run.overrides.index("aggregator=fedavg") < run.overrides.index("aggregator=local")


def test_method_overrides_are_checked_at_load():
    with pytest.raises(FussbenchError, match="names 'fedcc_kmeans', which is not in study.methods"):
        parse_params(study(method_overrides={"fedcc_kmeans": ["privacy.mechanism=local"]}))
    with pytest.raises(FussbenchError, match=r"method_overrides.local: override 'privacy' must"):
        parse_params(study(method_overrides={"local": ["privacy"]}))
    with pytest.raises(FussbenchError, match="must be a list of key=value overrides"):
        parse_params(study(method_overrides={"local": "privacy.mechanism=local"}))
    with pytest.raises(FussbenchError, match="must be a list of key=value overrides"):
        parse_params(study(method_overrides={"local": [{"privacy.mechanism": "local"}]}))


def test_runs_go_seed_major_so_an_interrupted_study_leaves_whole_seeds():
    params = parse_params(study(seeds=[0, 1], skip=["eps1/local"]))
    assert [run.key for run in study_runs(params)] == [
        ("eps1", "camvid_domain", "fedavg.uniform", 0),
        ("none", "camvid_domain", "local", 0),
        ("none", "camvid_domain", "fedavg.uniform", 0),
        ("eps1", "camvid_domain", "fedavg.uniform", 1),
        ("none", "camvid_domain", "local", 1),
        ("none", "camvid_domain", "fedavg.uniform", 1),
    ]


def test_hypotheses_naming_what_the_study_does_not_run_are_refused_before_any_run():
    claim = {"id": "H", "claim": "beats", "a": "fedavg.uniform", "b": "local"}
    assert study_runs(parse_params(study(hypotheses=[{**claim, "variant": "eps1"}])))
    for change, message in (
        ({"a": "fedavg"}, r"H: a 'fedavg' is not in the study; valid: local, fedavg.uniform"),
        ({"b": "better_fedcc"}, "H: b 'better_fedcc' is not in the study"),
        ({"variant": "eps2"}, "H: variant 'eps2' is not in the study; valid: eps1, none"),
        ({"setup": "camvid_embedding"}, "H: setup 'camvid_embedding' is not in the study"),
    ):
        with pytest.raises(FussbenchError, match=message):
            study_runs(parse_params(study(hypotheses=[{**claim, **change}])))
    token = study(methods=["local", "fedcc_maximin"], hypotheses=[{**claim, "a": "better_fedcc"}])
    assert study_runs(parse_params(token))


def test_per_round_scores_are_recorded_with_the_run_and_backfilled_from_its_folder(tmp_path):
    params = parse_params(
        {
            "reports_dir": str(tmp_path / "reports"),
            **study(
                methods=["fedavg", "kmeans"],
                seeds=[0, 1],
                variants={"plain": []},
                out=str(tmp_path / "s"),
            ),
        }
    )
    runs = study_runs(params)
    for run in runs:  # seed 1's fedavg has not finished: its rounds so far are not kept
        run.out.mkdir(parents=True)
        if (run.method, run.seed) != ("fedavg", 1):
            (run.out / "metrics.json").write_text(json.dumps({"miou": 20.0 + run.seed}))
        if run.method == "fedavg":  # a reference row writes no rounds.csv
            pd.DataFrame(
                {"round": [1, 2], "miou": [10.0, 20.0 + run.seed], "accuracy": [50.0, 60.0],
                 "seconds": [3.0, 3.0]}
            ).to_csv(run.out / ROUNDS, index=False)  # fmt: skip
    assert record_finished(params, runs) == 3
    kept = read_round_records(tmp_path / "reports")
    assert kept is not None
    assert kept.columns.tolist() == ["variant", "setup", "method", "seed", "round", "miou",
                                     "accuracy"]  # fmt: skip
    assert kept[["method", "seed", "round"]].values.tolist() == [["fedavg", 0, 1], ["fedavg", 0, 2]]
    (tmp_path / "reports" / ROUNDS).unlink()  # recorded before per-round records existed
    (runs[2].out / "metrics.json").write_text(json.dumps({"miou": 21.0}))  # seed 1 finished
    assert record_finished(params, runs) == 1
    kept = read_round_records(tmp_path / "reports")
    assert kept is not None and kept.groupby("seed").size().to_dict() == {0: 2, 1: 2}
    assert record_rounds(params, runs) == 0  # nothing twice
