"""What the check of the timed outputs costs a GPU point: each buffer set's timed output against a fresh eager run,
compared on the host (every set copied as float32 and compared in NumPy) or first bitwise on the device
(`gpu_timing.same_bits`, the host only where the bits differ). Needs a CUDA GPU and PyTorch.
    python benchmarks/timed_output_check.py [--repeats 5]
For a few output sizes, with as many buffer sets as `buffer_copies` gives a layer of that output (input of the same
size, flush_l2 on, this card's L2), prints the median wall seconds of both checks; the `fresh` run is a copy here,
so what is timed is the check itself.
"""

from __future__ import annotations

import argparse
import statistics
import time

from opbench.gpu_timing import OUTPUT_UNIT_ROUNDOFF, buffer_copies, check_timed_outputs, same_bits, to_host

F16_ROUNDOFF = OUTPUT_UNIT_ROUNDOFF["f16"]  # the outputs below are f16


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    a = parser.parse_args()
    import torch

    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    print(f"{torch.cuda.get_device_name(0)}, L2 {l2 >> 20} MiB; median of {a.repeats} checks, seconds")
    print("output (f16)      sets  host    device-first")
    for shape in [(16, 56, 56, 256), (32, 112, 112, 32), (32, 112, 112, 96), (8, 32, 2048, 64)]:
        out = torch.randn(shape, device="cuda").half()
        sets = buffer_copies(2 * out.nbytes, l2, flush_l2=True)
        timed = [out.clone() for _ in range(sets)]
        times = {}
        for name, identical in [("host", None), ("device", same_bits)]:
            samples = []
            for _ in range(a.repeats):
                torch.cuda.synchronize()
                start = time.perf_counter()
                cmp = check_timed_outputs(timed, lambda _, o=out: o.clone(), F16_ROUNDOFF, to_host, identical)
                samples.append(time.perf_counter() - start)
                assert cmp.consistent
            times[name] = statistics.median(samples)
        label = "x".join(map(str, shape))
        print(f"{label:17} {sets:4}  {times['host']:.3f}   {times['device']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
