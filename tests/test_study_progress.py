"""A study's progress line (:mod:`fussbench.studies.progress`) and the trainer that says it."""

from pathlib import Path

from fussbench.studies.prepare import SetupSteps
from fussbench.studies.progress import Progress, duration
from fussbench.studies.trainer import Trainer


def test_durations_read_in_the_largest_sensible_units():
    assert duration(42.4) == "42 s"
    assert duration(425) == "7 min 05 s"
    assert duration(3 * 3600 + 12 * 60 + 29) == "3 h 12 min"
    assert duration(3 * 3600 + 59 * 60 + 31) == "4 h 00 min"
    assert duration(-1) == "0 s"


def test_the_estimate_is_the_pace_so_far_times_the_runs_left():
    now = [100.0]
    said: list[str] = []
    progress = Progress(4, said.append, clock=lambda: now[0])
    seen: list[dict[str, object]] = []
    report = progress.after(seen.append)
    now[0] = 400.0  # the first run took 300 s: three more at that pace
    report({"method": "fedavg"})
    now[0] = 500.0  # two done in 400 s: two more take 400 s
    report({"method": "local"})
    assert seen == [{"method": "fedavg"}, {"method": "local"}]
    assert said == [
        "runs: 1 of 4 done in 5 min 00 s, about 15 min 00 s to go at this pace",
        "runs: 2 of 4 done in 6 min 40 s, about 6 min 40 s to go at this pace",
    ]
    now[0] = 900.0
    report({})
    report({})
    assert said[-1] == "runs: 4 of 4 done in 13 min 20 s"


def test_the_trainer_says_the_progress_after_each_run(tmp_path: Path):
    said: list[str] = []
    finished: list[dict[str, object]] = []
    trainer = Trainer(
        params=tmp_path / "params.yaml",
        overrides=[],
        workers=1,
        federate=lambda params, overrides, out, link: {"out": str(out)},
        done=finished.append,
        steps=SetupSteps(*[lambda settings: tmp_path] * 3),  # no setup to prepare
        say=said.append,
    )
    jobs = [trainer.job(tmp_path / name, []) for name in ("a", "b")]
    trainer.train(jobs, [], "somewhere")
    assert finished == [{"out": str(tmp_path / "a")}, {"out": str(tmp_path / "b")}]
    assert said[0] == "2 run(s) to go under somewhere"
    assert said[1].startswith("runs: 1 of 2 done in ") and "to go at this pace" in said[1]
    assert said[2].startswith("runs: 2 of 2 done in ")
