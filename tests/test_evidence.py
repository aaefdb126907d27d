"""The multi-seed evidence file that chapter 06 displays: complete, and not older than the code."""

from __future__ import annotations

import json

import pytest

from evidence.__main__ import DEFAULT_OUTPUT, fingerprint
from msa_lib.baselines import roles
from msa_lib.experiment import COURSE


@pytest.fixture(scope="module")
def evidence() -> dict:
    if not DEFAULT_OUTPUT.exists():
        pytest.fail(f"{DEFAULT_OUTPUT} is missing: run `make evidence`")
    return json.loads(DEFAULT_OUTPUT.read_text(encoding="utf-8"))


def test_evidence_is_fresh(evidence: dict) -> None:
    """Change the market, a model, the training loop, the evaluation or the experiment, and the
    file no longer describes the code: `make evidence` must be run again before it ships."""
    assert evidence["fingerprint"] == fingerprint(), (
        "evidence/results.json was computed from other code than this checkout's: run `make evidence`"
    )


def test_evidence_covers_every_model_seed_and_horizon(evidence: dict) -> None:
    seeds, horizons = evidence["seeds"], evidence["horizons"]
    assert len(seeds) >= 5 and len(set(seeds)) == len(seeds)
    assert horizons == list(COURSE.horizons)
    expected_roles = roles(COURSE.features.scale_names)
    assert evidence["roles"] == expected_roles
    named = {expected_roles["network"], expected_roles["oracle"], expected_roles["majority"],
             *expected_roles["single_scale"], *expected_roles["naive"], *expected_roles["rivals"]}
    assert named <= set(evidence["accuracy"]), named - set(evidence["accuracy"])
    finest, coarsest = COURSE.features.scale_names[0], COURSE.features.scale_names[-1]
    assert set(evidence["ablations"]) >= {f"without {finest}", f"without {coarsest}",
                                          "without cross-attention"}
    for table in (evidence["accuracy"], evidence["ablations"]):
        for model, per_horizon in table.items():
            assert list(per_horizon) == horizons, model
            for h, values in per_horizon.items():
                assert len(values) == len(seeds), (model, h)
                assert all(0.0 <= v <= 1.0 for v in values), (model, h, values)


def test_fingerprint_follows_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The staleness check is real: a different experiment gives a different fingerprint."""
    import evidence.__main__ as ev
    import msa_lib.experiment as ex

    before = fingerprint()
    monkeypatch.setattr(ex, "COURSE", ex.COURSE.replace(train={"lr": 1e-4}))
    assert ev.fingerprint() != before
