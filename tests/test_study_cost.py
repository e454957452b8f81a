"""benchmarks.study_cost times a member's final evaluation through the public compute_metrics."""

import pytest

from benchmarks import study_cost


@pytest.mark.slow
def test_final_evaluation_is_timed_through_the_public_metrics():
    timed = study_cost.final_evaluation_seconds(metrics=("mig",))
    assert timed["seconds"] > 0 and timed["metrics"] == ["mig"] and timed["scores"] == ["mig"]
    assert set(study_cost.locatello2019_study.ALL_METRICS) >= {"mig", "dci", "beta_vae_score"}
