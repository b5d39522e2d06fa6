"""The score-version screens' durations: the run's own total, and one bar per kind of pipeline step."""

from shop_reco.admin import total_seconds
from shop_reco.admin_views import step_timings
from shop_reco.models import ScoreVersion

PIPELINE_TIMINGS = {
    "items_done_s": 9.0,  # elapsed-time marks: cumulative, so summing them would double count
    "shoppers_done_s": 11.0,
    "metrics_s": 0.5,
    "total_s": 12.5,
    "stages": {
        "load:1": {"wall_s": 2.0, "cpu_s": 1.5, "db_cpu_s": 0.5},
        "load:2": {"wall_s": 3.0, "cpu_s": 2.5, "db_cpu_s": 0.5},
        "combine": {"wall_s": 1.25, "cpu_s": 1.0, "db_cpu_s": 0.25},
        "item:1": {"wall_s": 4.0, "cpu_s": 3.9, "db_cpu_s": None},
    },
}


def test_duration_is_the_runs_end_to_end_total_not_a_sum_of_its_marks():
    assert total_seconds(ScoreVersion(timings=PIPELINE_TIMINGS)) == 12.5
    assert total_seconds(ScoreVersion(timings={"total": 4.0, "matrix": 1.5})) == 4.0
    assert total_seconds(ScoreVersion(timings={"items_done_s": 3.0})) is None  # a run still building


def test_chart_has_one_bar_per_kind_of_step_with_its_summed_wall_time():
    assert dict(step_timings(PIPELINE_TIMINGS)) == {"load": 5.0, "combine": 1.25, "item": 4.0}


def test_chart_of_a_run_without_recorded_steps_leaves_the_total_out():
    assert dict(step_timings({"matrix": 1.5, "similar": 2.5, "total": 4.0})) == {
        "matrix": 1.5,
        "similar": 2.5,
    }
