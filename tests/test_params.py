from pathlib import Path

import pytest
import yaml

from fussbench.errors import FussbenchError
from fussbench.params import load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def test_committed_params_file_is_valid():
    params = load_params(REPO / "params.yaml")
    assert params.train_config().local_steps == params.train.local_steps
    assert params.train_config().weights.shift_self == params.train.corr.shift_self


def test_overrides_apply_like_dvc_set(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"aggregator": "local", "train": {"local_steps": 10}}))
    params = load_params(path, ["aggregator=centralized", "train.local_steps=3", "seed=4"])
    assert (params.aggregator, params.train.local_steps, params.seed) == ("centralized", 3, 4)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"train": {"local_stepz": 3}}, "train.local_stepz"),
        ({"train": {"local_steps": "many"}}, "train.local_steps"),
        ({"train": {"local_steps": 0}}, "train.local_steps must be an integer >= 1, got 0"),
        ({"federation": {"rounds": 0}}, "federation.rounds must be an integer >= 1, got 0"),
        ({"model": {"n_clusters": 1}}, "model.n_clusters"),
        ({"train": {"dropout": 1.5}}, "train.dropout"),
        ({"seeds": []}, "seeds"),
        ({"partition": {"shares": "0.5"}}, "partition.shares"),
        (
            {"partition": {"embedding_clusters": 1}},
            "partition.embedding_clusters must be an integer >= 2, got 1",
        ),
        ({"partition": {"embedding_clusters": 2.5}}, "partition.embedding_clusters"),
        ({"features": {"pretrained": "yes"}}, "features.pretrained"),
        ({"evaluation": {"matching": "greedy"}}, "evaluation.matching"),
        ({"stats": {"n_resamples": 0}}, "stats.n_resamples"),
        ({"train": {"precision": "fp16"}}, "train.precision must be one of fp32, bf16"),
    ],
)
def test_bad_values_name_the_key(values, fragment):
    with pytest.raises(FussbenchError, match=fragment.replace(".", r"\.").replace("[", r"\[")):
        parse_params(values, "params.yaml")


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(FussbenchError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "p.yaml").write_text("seed: 1\n")
    with pytest.raises(FussbenchError, match="key.sub=value"):
        load_params(tmp_path / "p.yaml", ["seed"])
    # what an unquoted -S federation={rounds: 5} leaves after the shell splits it
    with pytest.raises(FussbenchError, match=r"override 'federation=\{rounds'.*not valid YAML"):
        load_params(tmp_path / "p.yaml", ["federation={rounds"])


def test_setup_values_merge_over_the_top_level_and_overrides_win(tmp_path):
    path = tmp_path / "params.yaml"
    values = {
        "setup": "a",
        "partition": {"method": "domain", "alpha": 1.0},
        "setups": {
            "a": {"dataset": "camvid", "partition": {"method": "dirichlet"}},
            "b": {"dataset": "magnetic_tile", "model": {"n_clusters": 2}},
        },
        "runs_on": ["a", "b"],
        "datasets": ["camvid", "magnetic_tile"],
    }
    path.write_text(yaml.safe_dump(values))
    params = load_params(path)
    assert (params.dataset, params.partition.method, params.partition.alpha) == (
        "camvid",
        "dirichlet",
        1.0,
    )
    switched = load_params(path, ["setup=b", "partition.alpha=0.1"])
    assert (switched.dataset, switched.model.n_clusters) == ("magnetic_tile", 2)
    assert switched.partition.alpha == 0.1
    overridden = load_params(path, ["partition.method=iid"])
    assert overridden.partition.method == "iid"  # an explicit override beats the setup


def test_unknown_setup_and_top_level_dataset_are_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"setups": {"a": {"dataset": "camvid"}}, "setup": "a"}))
    with pytest.raises(FussbenchError, match="unknown setup 'zzz'; defined in setups: a"):
        load_params(path, ["setup=zzz"])
    with pytest.raises(FussbenchError, match="runs_on names unknown setup"):
        load_params(path, ["runs_on=[a, q]"])
    path.write_text(yaml.safe_dump({"dataset": "camvid"}))
    with pytest.raises(FussbenchError, match="top-level 'dataset' is not a param"):
        load_params(path)


def test_a_setup_in_use_needs_its_dataset_listed(tmp_path):
    path = tmp_path / "params.yaml"
    values = {
        "setups": {"a": {"dataset": "camvid"}, "t": {"dataset": "magnetic_tile"}},
        "setup": "a",
        "runs_on": ["t"],
        "datasets": ["camvid"],
    }
    path.write_text(yaml.safe_dump(values))
    with pytest.raises(FussbenchError, match="setup 't' uses the dataset 'magnetic_tile'"):
        load_params(path).setups_in_use()
    with pytest.raises(FussbenchError, match="runs_on names unknown setup 'x'"):
        load_params(path, ["runs_on=[x]"])
    assert load_params(path, ["runs_on=[a]"]).setups_in_use() == ["a"]
