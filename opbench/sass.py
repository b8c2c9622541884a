"""What a CUDA binary's machine code contains: instruction counts per kernel and architecture (cuobjdump -sass).

Read before claiming a kernel does what was meant: FFMA vs HMMA vs HGMMA, 128-bit loads, local-memory traffic.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

# Mnemonics worth counting, with the prefixes that identify them.
WATCHED: dict[str, tuple[str, ...]] = {
    "FFMA": ("FFMA",),
    "HMMA (mma.sync)": ("HMMA",),
    "HGMMA (wgmma)": ("HGMMA",),
    "LDS.128": ("LDS.128",),
    "LDSM (ldmatrix)": ("LDSM",),
    "LDG.E.128": ("LDG.E.128",),
    "LDGSTS (cp.async)": ("LDGSTS",),
    "UTMALDG (TMA)": ("UTMALDG",),
    "UTMASTG (TMA store)": ("UTMASTG",),
    "LDL (local load)": ("LDL",),
    "STL (local store)": ("STL",),
    "RED/ATOM": ("RED", "ATOM"),
}
_FUNCTION = re.compile(r"^\s*Function : (\S+)")
_ARCH = re.compile(r"arch = (sm_\d+a?)")
_INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)")


def parse_sass(text: str) -> dict[str, dict[str, dict[str, int]]]:
    """arch -> kernel -> watched mnemonic -> count."""
    summary: dict[str, dict[str, dict[str, int]]] = {}
    arch, kernel, counts = "unknown", None, Counter()

    def flush() -> None:
        if kernel is not None:
            summary.setdefault(arch, {})[kernel] = {
                name: sum(n for op, n in counts.items() if op.startswith(prefixes))
                for name, prefixes in WATCHED.items()
            }

    for line in text.splitlines():
        if m := _ARCH.search(line):
            flush()
            arch, kernel, counts = m.group(1), None, Counter()
        elif m := _FUNCTION.match(line):
            flush()
            kernel, counts = m.group(1), Counter()
        elif kernel and (m := _INSTRUCTION.search(line)):
            counts[m.group(1)] += 1
    flush()
    return summary


def cuda_tool(name: str) -> str:
    """cuobjdump or nvdisasm: from PATH (a CUDA toolkit), else from the NVIDIA pip wheel
    (nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm, installed with the dev extra). FileNotFoundError if neither."""
    found = shutil.which(name)
    if found:
        return found
    try:
        import nvidia  # namespace package of NVIDIA's CUDA wheels
    except ImportError:
        raise FileNotFoundError(f"{name}: not on PATH and no NVIDIA CUDA wheel installed") from None
    for root in nvidia.__path__:
        for candidate in sorted(Path(root).glob(f"cu*/bin/{name}")):
            return str(candidate)
    raise FileNotFoundError(f"{name}: not on PATH nor in the nvidia-cuda-{name} wheel (pip install opbench[dev])")


def sass_summary(binary: Path) -> dict[str, dict[str, dict[str, int]]]:
    """Instruction counts of every kernel in `binary`, per architecture (needs cuobjdump and nvdisasm)."""
    env = {**os.environ, "NVDISASM_PATH": str(Path(cuda_tool("nvdisasm")).parent)}
    cmd = [cuda_tool("cuobjdump"), "-sass", str(binary)]
    return parse_sass(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout)
