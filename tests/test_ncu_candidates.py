"""scripts/ncu_candidates.py: the summary of ncu's CSV (the profiling itself needs a GPU and ncu)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ncu_candidates.py"
spec = importlib.util.spec_from_file_location("ncu_candidates", SCRIPT)
assert spec and spec.loader
ncu_candidates = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ncu_candidates)

HEADER = '"ID","Kernel Name","Grid Size","Section Name","Metric Name","Metric Unit","Metric Value"'


def _row(launch: int, kernel: str, grid: str, metric: str, unit: str, value: str) -> str:
    return f'"{launch}","void ns::{kernel}(CUtensorMap_st, Args)","{grid}","SOL","{metric}","{unit}","{value}"'


def test_summary_is_the_median_per_kernel_instantiation_and_grid() -> None:
    text = "\n".join([
        "==PROF== Connected to process 1",
        '{"variant": "hopper_wgmma", "mode": "run"}',  # the harness's own stdout comes first
        HEADER,
        _row(0, "k<__half, 64>", "(56, 1, 1)", "Duration", "ns", "1,000"),
        _row(1, "k<__half, 64>", "(56, 1, 1)", "Duration", "ns", "3,000"),
        _row(2, "k<__half, 64>", "(56, 1, 1)", "Duration", "ns", "2,000"),
        _row(2, "k<__half, 64>", "(56, 1, 1)", "L2 Cache Throughput", "%", "40.5"),
        _row(2, "k<__half, 64>", "(56, 1, 1)", "lts__t_bytes.sum.per_second", "Tbyte/second", "4.25"),
        _row(3, "k<__half, 128>", "(28, 1, 1)", "Duration", "ns", "5,000"),
        _row(3, "k<__half, 128>", "(28, 1, 1)", "Block Limit Registers", "block", "n/a"),
    ])  # fmt: skip
    lines = ncu_candidates.summarise(text)
    assert lines == [
        "k<__half, 64> grid=(56, 1, 1): Duration 2000.0 ns; L2 Cache Throughput 40.5 %; "
        "lts__t_bytes.sum.per_second 4.2 Tbyte/second",
        "k<__half, 128> grid=(28, 1, 1): Duration 5000.0 ns",
    ]


def test_output_without_a_csv_header_is_an_error() -> None:
    with pytest.raises(ValueError, match="no ncu CSV header"):
        ncu_candidates.summarise("==ERROR== the application returned an error\n")
