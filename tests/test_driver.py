"""opbench.driver without Snakemake: which calls `bench` makes, with what run id (the calls are captured)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opbench import driver, provenance


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[list[str], str | None]]:
    seen: list[tuple[list[str], str | None]] = []

    def fake_snakemake(args: list[str]) -> int:
        seen.append((args, os.environ.get(provenance.RUN_ID_ENV)))
        return 1  # a failed run: the driver then also summarizes what exists

    monkeypatch.setattr(driver, "_snakemake", fake_snakemake)
    monkeypatch.setattr(driver, "REPO", tmp_path)
    monkeypatch.delenv(provenance.RUN_ID_ENV, raising=False)
    return seen


@pytest.mark.parametrize("retime", [False, True])
def test_bench_runs_every_call_under_one_new_run_id(calls: list, retime: bool) -> None:
    assert driver.bench(configfile=None, cores="1", snakemake_args=[], retime=retime) == 1
    main, summary, report = (args for args, _ in calls)
    run_ids = {run_id for _, run_id in calls}
    assert len(run_ids) == 1 and None not in run_ids
    # --retime re-times the matrix in the main call only: the summary call after a failure must not time again
    assert (
        "--forcerun" in main and main[main.index("--forcerun") + 1 :][:2] == ["benchmark", "benchmark_gpu"]
    ) is retime
    assert summary[-5:] == ["summary_allow_missing=true", "--forcerun", "summary", "--", "summary"]
    assert "benchmark" not in summary and "benchmark" not in report
    driver.bench(configfile=None, cores="1", snakemake_args=[])
    assert calls[-1][1] not in run_ids  # the next bench is another run


def test_run_ids_are_distinct_and_sortable_by_time() -> None:
    ids = [provenance.new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) == len("20261206T074512Z-3fa91c") and i[8] == "T" and i[15] == "Z" for i in ids)
