"""The method registry: one entry per method, its knobs checked when params load, and every
reader (params, build, report rows, statistics) taking a method's meaning from it."""

import re
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from cli_workspace import REPO

from fussbench.errors import FussbenchError
from fussbench.federation.aggregators import FedProx, make_aggregator
from fussbench.federation.build import build_method
from fussbench.methods import Knob, MethodSpec, get_spec, knobs, names, register, specs, unregister
from fussbench.methods.check import check_methods, load_checked_params
from fussbench.methods.listing import (
    SERVER_SEES_END,
    SERVER_SEES_START,
    methods_table,
    server_sees_table,
)
from fussbench.params import FederationParams, load_params
from fussbench.reporting.tables import aggregation_rows, method_kind
from fussbench.rules import Interval
from fussbench.stats.comparisons import baselines, comparisons, not_tested

PARAMS = REPO / "params.yaml"


def test_every_family_and_kind_is_consistent() -> None:
    for spec in specs():
        assert spec.federated == (spec.family in ("averaging", "fedcc")), spec.name
        assert (spec.factory is not None) == spec.federated, spec.name
        assert (spec.server_needs is not None) == spec.federated, spec.name
        assert spec.default_mode == (spec.modes[0] if spec.modes else None)
    assert names("reference") == [spec.name for spec in specs() if spec.family == "reference"]


def test_aggregation_rows_and_heatmap_follow_the_declarations() -> None:
    expected = [
        (spec.name, mode, spec.table_label(mode))
        for spec in specs("aggregator")
        if spec.aggregation_table
        for mode in (spec.modes or (None,))
    ]
    assert aggregation_rows() == expected
    assert ("fedcc_matched", "pooled_counts", "FedCC-Matched (pooled counts)") in expected
    assert method_kind("fedcc_maximin.uniform") == ("fedcc_maximin", "cosine", "uniform")


def test_unknown_name_lists_the_registered_ones() -> None:
    register(
        MethodSpec(
            "toyagg", "a toy", "averaging", factory="fussbench.federation.aggregators:FedAvg"
        )
    )
    try:
        with pytest.raises(FussbenchError, match="valid names: local, centralized.*toyagg"):
            get_spec("fedsgd")
    finally:
        unregister("toyagg")
    with pytest.raises(FussbenchError, match="already registered"):
        register(MethodSpec("fedavg", "again", "averaging"))


def test_a_knob_is_named_once_with_one_meaning() -> None:
    clash = Knob("mu", 0.5, Interval(float, 0.0), "another mu")
    with pytest.raises(FussbenchError, match="knob 'mu' is already declared"):
        register(MethodSpec("toy_mu", "a toy", "averaging", knobs=(clash,)))
    structural = Knob("rounds", 1, Interval(int, 1), "a round count")
    with pytest.raises(FussbenchError, match="knob 'rounds' is a federation key"):
        register(MethodSpec("toy_rounds", "a toy", "averaging", knobs=(structural,)))
    assert "toy_mu" not in names() and "toy_rounds" not in names()


def test_method_names_parse_without_torch() -> None:
    code = (
        "import sys; import fussbench.reporting.tables as t; t.method_kind('fedavg.uniform');"
        "import fussbench.methods.check;"
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("aggregator=fedavgg", "aggregator must be one of local, centralized"),
        ("compare=[local,fedavgg]", "compare[1] = 'fedavgg' is not a method"),
        ("convergence.methods=[fedcc_kmeans.euclid]", "convergence.methods[0]"),
        ("federation.weighting=nope", "federation.weighting must be one of samples, uniform"),
        ("federation.mu=-1", "federation.mu must be a number >= 0, got -1.0"),
        ("federation.moon_temperature=0", "federation.moon_temperature must be a number > 0"),
        ("federation.score_images=0", "federation.score_images must be an integer >= 1"),
        ("federation.candidates=[fedprox]", "federation.candidates must name aggregators"),
        ("federation.candidates=[fedavg,fedavg]", "federation.candidates must not repeat"),
        ("federation.typo=1", "unknown key 'federation.typo'; valid keys here: rounds"),
    ],
)
def test_bad_method_params_fail_at_load_in_one_line(override: str, fragment: str) -> None:
    with pytest.raises(FussbenchError) as error:
        load_checked_params(PARAMS, [override])
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(PARAMS))
    assert fragment in message, message


def test_a_mode_must_be_one_of_the_aggregators() -> None:
    params = load_params(PARAMS, ["aggregator=fedcc_matched", "federation.mode=cosine"])
    with pytest.raises(FussbenchError, match="mode must be one of hungarian, pooled_counts"):
        check_methods(params)
    check_methods(load_params(PARAMS, ["aggregator=fedcc_kmeans", "federation.mode=faithful"]))


def test_the_committed_params_pass_the_check() -> None:
    check_methods(load_params(PARAMS))


def test_bad_preset_params_fail_within_seconds(tmp_path, monkeypatch) -> None:
    from cli_workspace import invoke

    monkeypatch.chdir(REPO)
    started = time.perf_counter()
    result = invoke("preset", "paper", "-S", "compare=[fedavgg]", "-S", "federation.mu=-1")
    assert result.exit_code == 2
    assert "compare[0] = 'fedavgg' is not a method" in result.output
    assert time.perf_counter() - started < 10


def test_knobs_reach_the_aggregator_and_the_clients_objective() -> None:
    federation = FederationParams(knobs={"mu": 0.25, "moon_weight": 3})
    server, objective = build_method("fedprox", federation, seed=0)
    assert server == FedProx(mu=0.25) and objective.kind == "fedprox" and objective.mu == 0.25
    _, moon = build_method("fedmoon", federation, seed=0)
    assert moon.weight == 3.0 and isinstance(moon.weight, float)
    assert make_aggregator("fedprox") == FedProx(mu=get_spec("fedprox").knobs[0].default)
    with pytest.raises(FussbenchError, match="federation.mu must be a number >= 0"):
        build_method("fedprox", FederationParams(knobs={"mu": -1.0}), seed=0)


def test_statistics_read_families_and_baselines_from_the_registry() -> None:
    assert baselines() == [spec.name for spec in specs() if spec.baseline]
    assert not_tested() == {"centralized", *names("reference")}
    register(replace(get_spec("fedcc_kmeans"), name="robust_cc", label="Robust CC"))
    try:
        pairs = comparisons(["local", "fedavg", "fedcc_kmeans", "robust_cc", "centralized"])
    finally:
        unregister("robust_cc")
    assert ("fedcc_kmeans", "robust_cc") in pairs  # family fedcc: tested pairwise by name
    assert ("robust_cc", "local") in pairs and not any("centralized" in p for p in pairs)


def test_the_listing_shows_every_method_and_knob() -> None:
    table = methods_table()
    assert all(f"`{name}`" in table for name in names())
    assert all(f"federation.{name} = " in table for name in knobs())


def test_every_knob_default_is_written_in_params_yaml_with_a_comment() -> None:
    written = load_params(PARAMS).federation.knobs
    text = PARAMS.read_text(encoding="utf-8")
    for name, knob in knobs().items():
        assert written.get(name) == knob.default, name
        assert re.search(rf"^  {name}:.*# \S", text, re.MULTILINE), name


def test_the_readme_shows_the_current_table_of_what_the_server_sees():
    readme = (REPO / "README.md").read_text()
    shown = readme.split(SERVER_SEES_START)[1].split(SERVER_SEES_END)[0]
    assert shown.strip() == server_sees_table().strip(), (
        "README.md's table of what the server sees is stale: paste "
        "`fussbench methods --server-sees` between its markers"
    )


def test_what_the_server_sees_follows_each_entrys_declarations():
    rows = {line.split(" | ")[0].strip("| `"): line for line in server_sees_table().splitlines()}
    assert "cannot serve it" in rows["fedcc_kmeans"]
    assert "can serve it" in rows["fedavg"] and "cannot" not in rows["fedavg"]
    assert (
        "sums of its codes" in rows["fedcc_sums"] and "trained centroids" not in rows["fedcc_sums"]
    )
    assert "score" in rows["fedcc_auto"]
    assert "pixel counts (K; mode pooled_counts)" in rows["fedcc_matched"]
    assert "local" not in rows and "kmeans" not in rows
