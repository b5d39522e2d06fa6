"""Step costs recorded on a version, and the serial fraction / Amdahl figures the benchmark prints."""

import threading

import pytest
from django.db import connection

from shop_reco.models import ScoreVersion
from shop_reco.pipeline_tasks import recompute
from shop_reco.services import stage_timing, versions


def test_summary_serial_fraction_and_amdahl_bound_by_hand():
    stages = {
        "plan": {"wall_s": 1.0, "cpu_s": 0.5, "db_cpu_s": 0.5},
        "load:1": {"wall_s": 10.0, "cpu_s": 6.0, "db_cpu_s": 4.0},
        "load:9": {"wall_s": 10.0, "cpu_s": 6.0, "db_cpu_s": None},
        "combine": {"wall_s": 9.0, "cpu_s": 8.0, "db_cpu_s": 1.0},
        "shopper:0": {"wall_s": 70.0, "cpu_s": 50.0, "db_cpu_s": 20.0},
    }
    result = stage_timing.summary(stages)
    # serial: plan + combine = 10 of 100 s; Amdahl: 1 / (0.1 + 0.9 / 2) = 1 / 0.55
    assert result["serial_s"] == 10.0
    assert result["parallel_s"] == 90.0
    assert result["serial_fraction"] == 0.1
    assert result["expected_speedup_2"] == pytest.approx(1 / 0.55, abs=1e-3)
    # CPU (worker + database, a missing database figure counts 0): serial 1 + 9 = 10 of 1 + 10 + 6 + 9 + 70
    assert result["serial_fraction_cpu"] == round(10 / 96, 4)
    assert result["steps"]["load"] == {"count": 2, "wall_s": 20.0, "cpu_s": 12.0, "db_cpu_s": 4.0}


@pytest.mark.django_db
def test_every_step_of_a_recompute_records_its_costs(shop):
    version = ScoreVersion.objects.get(pk=recompute.delay(shards=3).get())
    stages = version.timings["stages"]
    steps = {name.split(":")[0] for name in stages}
    assert steps == {"plan", "load", "content", "combine", "item", "assemble", "shopper", "finalize"}
    assert len([name for name in stages if name.startswith("item:")]) == 3
    for entry in stages.values():
        assert entry["wall_s"] >= 0 and entry["cpu_s"] >= 0
    if connection.vendor == "postgresql":  # the test database runs on this machine
        assert all(entry["db_cpu_s"] is not None for entry in stages.values())
    summary = stage_timing.summary(stages)
    assert 0 < summary["serial_fraction"] < 1
    assert 1 < summary["expected_speedup_2"] < 2


@pytest.mark.django_db(transaction=True)
def test_shards_recording_at_once_keep_each_others_entries():
    version = versions.start_version("full", {})
    errors: list[BaseException] = []

    def shard(n: int) -> None:
        try:
            for step in range(5):
                stage_timing.record_json(
                    version.pk, "timings", {f"load:{n}-{step}": {"wall_s": 1}}, under="stages"
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=shard, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    version.refresh_from_db()
    assert len(version.timings["stages"]) == 20
