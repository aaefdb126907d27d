"""The best-practice sweeps (evidence/sweeps.py): the points, the page's summary and verdict, the file."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import evidence.sweeps as sw
from evidence.__main__ import experiment_for
from msa_lib.experiment import COURSE


# --------------------------------------------------------------------------------------------------
# The file `make sweeps` writes: skipped until it exists, then it must match the code
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweeps() -> dict:
    if not sw.DEFAULT_OUTPUT.exists():
        pytest.skip(f"{sw.DEFAULT_OUTPUT} does not exist yet: run `make sweeps` (then this test guards it)")
    return json.loads(sw.DEFAULT_OUTPUT.read_text(encoding="utf-8"))


def test_sweeps_file_is_fresh(sweeps: dict) -> None:
    """Change the training code, the evaluation, the experiment or the sweeps, and the file no
    longer describes the code: `make sweeps` must be run again before it ships."""
    assert sweeps["fingerprint"] == sw.fingerprint(), (
        "evidence/sweeps.json was computed from other code than this checkout's: run `make sweeps`"
    )


def test_sweeps_file_covers_every_point_and_seed(sweeps: dict) -> None:
    assert sweeps["complete"] and not sweeps["quick"]
    seeds = sweeps["seeds"]
    assert len(seeds) >= 3 and len(set(seeds)) == len(seeds)
    expected = sw.sweep_points()
    assert list(sweeps["sweeps"]) == list(expected)
    for name, points in expected.items():
        stored = sweeps["sweeps"][name]
        assert [p["label"] for p in stored] == [p.label for p in points], name
        assert sweeps["course"][name] == next(p.label for p in points if p.course)
        for p in stored:
            assert list(p["accuracy"]) == p["horizons"], (name, p["label"])
            for h, values in p["accuracy"].items():
                assert len(values) == len(seeds), (name, p["label"], h)
                assert all(0.0 <= v <= 1.0 for v in values), (name, p["label"], h, values)


def test_fingerprint_follows_the_code(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """The staleness check is real: another experiment, or another sweeps script, changes it."""
    import msa_lib.experiment as ex

    before = sw.fingerprint()
    edited = tmp_path / "sweeps.py"
    edited.write_bytes(open(sw.__file__, "rb").read() + b"\n# edited\n")
    with monkeypatch.context() as m:
        m.setattr(sw, "__file__", str(edited))
        assert sw.fingerprint() != before
    monkeypatch.setattr(ex, "COURSE", ex.COURSE.replace(train={"lr": 1e-4}))
    assert sw.fingerprint() != before


# --------------------------------------------------------------------------------------------------
# The points
# --------------------------------------------------------------------------------------------------
def test_every_sweep_has_one_course_point_that_is_the_evidence_network() -> None:
    """The course's point must be exactly evidence's experiment, so it loads evidence's network."""
    for name, points in sw.sweep_points().items():
        course = [p for p in points if p.course]
        assert len(course) == 1, name
        assert course[0].kind == "multiscale" and course[0].variant == "standardised"
        assert sw.build_experiment(course[0], 2) == experiment_for(2), name
        others = [p for p in points if not p.course and p.kind == "multiscale" and p.variant == "standardised"]
        assert all(sw.build_experiment(p, 2) != experiment_for(2) for p in others), name


def test_scale_subsets_keep_each_scales_spec_and_lookbacks_round_half_up() -> None:
    points = {p.label: p for p in sw.sweep_points()["scales"]}
    subset = sw.build_experiment(points["1min+1h+1D"], 0)
    assert subset.features.scales == tuple(COURSE.features.scale(n) for n in ("1min", "1h", "1D"))
    half = {p.label: p for p in sw.sweep_points()["lookback"]}["lookback x0.5"]
    # course lookbacks 30/6/12/7: halved 15/3/6/3.5 -> 4 (half up), never below 2
    assert sw.build_experiment(half, 0).lookbacks == {"1min": 15, "5min": 3, "1h": 6, "1D": 4}
    assert sw.build_experiment(half, 0).features.scale("1D").lags == COURSE.features.scale("1D").lags


def test_shared_networks_are_trained_once() -> None:
    """The course's network appears in every sweep but is one task per seed."""
    points = sw.sweep_points()
    groups = sw._unique_tasks(points, [0, 1], quick=False)
    course_groups = [g for g in groups.values() if any(p.course and p.sweep == "d_model" for p, _ in g)]
    assert len(course_groups) == 2  # one per seed
    for group in course_groups:
        assert {p.sweep for p, _ in group} == set(points)
    assert sum(len(g) for g in groups.values()) == 2 * sum(len(ps) for ps in points.values())


def test_unscaled_windows_invert_the_scaler() -> None:
    from msa_lib.prepare import prepare_experiment

    data = prepare_experiment(COURSE.replace(data={"days": 20}))
    raw = sw._unscaled(data)
    for block in ("train", "test"):
        again = data.scaler.transform({s: w.numpy() for s, w in getattr(raw, block).windows.items()})
        for s, w in getattr(data, block).windows.items():
            np.testing.assert_allclose(again[s], w.numpy(), atol=2e-3)
    assert not np.allclose(raw.train.windows["1min"].numpy(), data.train.windows["1min"].numpy())
    assert bool((raw.test.up == data.test.up).all())  # only the windows change


# --------------------------------------------------------------------------------------------------
# summarise and verdict, on hand-made numbers
# --------------------------------------------------------------------------------------------------
def _point(label: str, values: list[float], horizon: str = "5min", course: bool = False) -> dict:
    return {"label": label, "accuracy": {horizon: values}, "course": course}


def test_summarise_gives_the_t_interval_over_seeds_and_skips_other_horizons() -> None:
    points = [_point("a", [0.60, 0.62, 0.64], course=True), _point("b", [0.50, 0.50, 0.56]),
              _point("short", [0.9, 0.9, 0.9], horizon="1min")]
    table = sw.summarise(points, "5min")
    assert list(table["label"]) == ["a", "b"] and list(table["course"]) == [True, False]
    half = stats.t.ppf(0.975, 2) * np.std([0.50, 0.50, 0.56], ddof=1) / math.sqrt(3)
    row = table.set_index("label").loc["b"]
    assert row["mean"] == pytest.approx(0.52)
    assert (row["low"], row["high"]) == pytest.approx((0.52 - half, 0.52 + half))
    assert list(sw.summarise(points, "1min")["label"]) == ["short"]
    with pytest.raises(ValueError, match="30min"):
        sw.summarise(points, "30min")
    with pytest.raises(ValueError, match="repeated"):
        sw.summarise([_point("a", [0.5, 0.6]), _point("a", [0.5, 0.6])], "5min")


def _summary(rows: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"label": k, "mean": m, "low": lo, "high": hi} for k, (m, lo, hi) in rows.items()])


def test_verdict_holds_when_the_range_reaches_the_best_and_leaving_it_costs() -> None:
    s = _summary({"16": (0.55, 0.53, 0.57), "64": (0.66, 0.64, 0.68), "128": (0.65, 0.63, 0.67)})
    assert sw.verdict(s, ["64", "128"]) == "holds"


def test_verdict_holds_partly_when_everything_ties() -> None:
    s = _summary({"16": (0.65, 0.60, 0.70), "64": (0.66, 0.61, 0.71), "128": (0.64, 0.59, 0.69)})
    assert sw.verdict(s, ["64", "128"]) == "holds partly"


def test_verdict_holds_partly_when_the_range_trails_but_leaving_it_costs() -> None:
    # outside "32" is the best; "16" is clearly worse than the range's best; the range's best
    # (0.63) is below the best's interval (0.64..0.68) yet overlaps it: not clearly beaten
    s = _summary({"16": (0.50, 0.49, 0.51), "32": (0.66, 0.64, 0.68), "64": (0.63, 0.61, 0.65)})
    assert sw.verdict(s, ["64"]) == "holds partly"


def test_verdict_does_not_hold_when_a_point_outside_is_clearly_better() -> None:
    s = _summary({"32": (0.70, 0.69, 0.71), "64": (0.60, 0.58, 0.62), "128": (0.59, 0.57, 0.61)})
    assert sw.verdict(s, ["64", "128"]) == "does not hold here"


def test_verdict_does_not_hold_when_the_range_trails_and_nothing_outside_is_worse() -> None:
    s = _summary({"32": (0.66, 0.64, 0.68), "64": (0.62, 0.60, 0.645)})
    assert sw.verdict(s, ["64"]) == "does not hold here"


def test_verdict_refuses_what_it_cannot_judge() -> None:
    s = _summary({"a": (0.6, 0.5, 0.7), "b": (0.6, 0.5, 0.7)})
    with pytest.raises(ValueError, match="nothing outside"):
        sw.verdict(s, ["a", "b"])
    with pytest.raises(ValueError, match="'c'"):
        sw.verdict(s, ["c"])
    with pytest.raises(ValueError, match="at least one"):
        sw.verdict(s, [])


# --------------------------------------------------------------------------------------------------
# The machinery, end to end on tiny settings
# --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path) -> None:
    """Two sweeps under --quick (about 15 s on one core): a complete file whose course points
    share one network, and an un-standardised network that is another network."""
    out = tmp_path / "sweeps.json"
    assert sw.main(["--quick", "--workers", "2", "--only", "imbalanced_scales,short_horizons",
                    "--output", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["complete"] and payload["quick"] and payload["seeds"] == list(sw.QUICK_SEEDS)
    assert payload["fingerprint"] == sw.fingerprint()
    assert set(payload["sweeps"]) == {"imbalanced_scales", "short_horizons"}
    imb = {p["label"]: p for p in payload["sweeps"]["imbalanced_scales"]}
    course, raw = imb["standardised windows"], imb["un-standardised windows"]
    shorts = {p["label"]: p for p in payload["sweeps"]["short_horizons"]}
    assert shorts["network 5min/15min/30min"]["accuracy"] == course["accuracy"]  # one network
    assert raw["accuracy"] != course["accuracy"]
    assert set(raw["mean_gates"][0]) == set(COURSE.features.scale_names)
    assert sum(raw["scale_weights"][0].values()) == pytest.approx(1.0, abs=1e-4)
    assert all(n == 1 for n in raw["epochs"])  # --quick: one epoch
    assert list(shorts["oracle 1min/2min/5min"]["accuracy"]) == ["1min", "2min", "5min"]


def test_trend_verdict_reads_direction_and_significance() -> None:
    from evidence.sweeps import trend_verdict

    rising = [(-0.01, -0.03, 0.01), (0.00, -0.02, 0.02), (0.02, 0.01, 0.03)]
    assert trend_verdict(rising, grows=True, positive_at="last") == "holds"
    noisy = [(-0.01, -0.03, 0.01), (0.02, -0.01, 0.05)]
    assert trend_verdict(noisy, grows=True, positive_at="last") == "holds partly"
    assert trend_verdict(rising, grows=False, positive_at="first") == "does not hold here"
    falling = [(0.03, 0.01, 0.05), (0.0, -0.01, 0.01)]
    assert trend_verdict(falling, grows=False, positive_at="first") == "holds"
    with pytest.raises(ValueError, match="at least 2"):
        trend_verdict(rising[:1], grows=True, positive_at="last")


def test_paired_gains_pair_seeds_and_average_horizons() -> None:
    from evidence.sweeps import paired_gains

    better = {"accuracy": {"a": [0.6, 0.7, 0.5], "b": [0.6, 0.7, 0.5]}}
    worse = {"accuracy": {"a": [0.5, 0.6, 0.4], "b": [0.5, 0.6, 0.4]}}
    mean, low, high = paired_gains(better, worse, ["a", "b"])
    assert mean == pytest.approx(0.1) and low == pytest.approx(0.1) and high == pytest.approx(0.1)
