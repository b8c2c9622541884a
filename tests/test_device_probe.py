"""The device probe's peaks: the best of several products per precision (CPU), and on a real card (marked `gpu`)."""

from __future__ import annotations

import pytest

from opbench import hardware
from opbench.device_probe import (
    PEAK_GEMMS,
    PEAK_SAMPLE_MS,
    PRECISIONS,
    CopyTrial,
    PeakTrial,
    best_peaks,
    measure_peaks,
)


def test_peaks_are_the_best_trial_per_precision() -> None:
    trials = [
        PeakTrial(precision="f16", mnk=(8192, 8192, 8192), min_sample_ms=30.0, tflops=654.0),
        PeakTrial(precision="f16", mnk=(16384, 16384, 16384), min_sample_ms=30.0, tflops=731.0),
        PeakTrial(precision="f16", mnk=(4096, 4096, 4096), min_sample_ms=2.0, tflops=610.0),
        PeakTrial(precision="f32", mnk=(8192, 8192, 8192), min_sample_ms=30.0, tflops=51.0),
    ]
    assert best_peaks(trials) == {"f16": 731.0, "f32": 51.0}


def test_the_trials_reach_past_a_single_8192_cube() -> None:
    """The size that under-read the H200's f16 peak is one trial among larger ones, sustained and in bursts."""
    assert (8192, 8192, 8192) in PEAK_GEMMS
    assert max(m * n * k for m, n, k in PEAK_GEMMS) >= 8 * 8192**3
    assert len(PEAK_SAMPLE_MS) == 2 and min(PEAK_SAMPLE_MS) < 5 <= max(PEAK_SAMPLE_MS)


@pytest.mark.gpu
@pytest.mark.skipif(not hardware.nvidia_gpus(), reason="no NVIDIA GPU (nvidia-smi lists none)")
def test_measured_peaks_on_the_card() -> None:
    peaks, all_trials = measure_peaks()
    trials = [t for t in all_trials if isinstance(t, PeakTrial)]
    copies = {t.method: t.gbps for t in all_trials if isinstance(t, CopyTrial)}
    assert len(trials) == len(PRECISIONS) * len(PEAK_GEMMS) * len(PEAK_SAMPLE_MS)
    assert all(trial.tflops > 0 for trial in trials)
    assert set(copies) == {"memcpy", "kernel"} and peaks["copy_gbps"] == max(copies.values())
    # tensor cores beat FFMA by far; half precision beats TF32; an HBM3 card copies at 1.5 to 6 TB/s
    assert peaks["tf32"] > 4 * peaks["f32"] and peaks["f16"] > 1.5 * peaks["tf32"]
    assert 1500 < peaks["copy_gbps"] < 6000
    single = max(t.tflops for t in trials if t.precision == "f16" and t.mnk == (8192, 8192, 8192))
    assert peaks["f16"] >= single
