"""What the compiled kernel is made of, read from the code Triton generated (the CompiledKernel a launch returns):
its PTX, its TTGIR (Triton's GPU dialect, where the pipeliner's shared-memory buffers are allocated) and, where
nvdisasm can read the cubin, its SASS. The facts go into the benchmark's `detail.kernel`, so a GPU run records them:

- `wgmma`: Hopper's warpgroup MMA (`wgmma.mma_async` in PTX, `HGMMA` in SASS), else `mma_sync` (Ampere's
  `mma.sync.aligned`, `HMMA`): which tensor-core instruction the dot became.
- `tma_load`: TMA copies (`cp.async.bulk.tensor` in PTX, `UTMALDG` in SASS); `cp_async`: Ampere's asynchronous
  copies (`cp.async.ca/cg`, `LDGSTS`), how pointer loads are pipelined.
- `smem_buffers`: the leading extent of each 3-D shared-memory allocation in the TTGIR (`local_alloc` of
  `memdesc<BxMxK..>`): how many copies of an operand tile the pipeline keeps, its real depth (compare
  `num_stages`, what was asked).
- `num_warps`, `num_stages`, `shared_bytes`, `registers`, `spills`: the compiled kernel's metadata.

Pure functions of the text (the CPU tests feed them snippets); `kernel_facts` reads a CompiledKernel defensively:
Triton's attribute names move between releases, and a missing one is recorded as None, never guessed.
"""

from __future__ import annotations

import re
from typing import Any

PTX_PATTERNS = {
    "wgmma": r"\bwgmma\.mma_async\b",
    "mma_sync": r"\bmma\.sync\.aligned\b",
    "tma_load": r"\bcp\.async\.bulk\.tensor\.\d+d\.shared",
    "tma_store": r"\bcp\.async\.bulk\.tensor\.\d+d\.global\.shared",
    "cp_async": r"\bcp\.async\.c[ag]\.shared",
}
SASS_OPCODES = ("HGMMA", "HMMA", "UTMALDG", "LDGSTS", "LDG", "STG")
_LOCAL_ALLOC = re.compile(r"local_alloc\b[^\n]*?->\s*!(?:ttg|triton_gpu)\.memdesc<((?:\d+x)+)([a-z][a-z0-9]*)")


def ptx_facts(ptx: str) -> dict[str, Any]:
    """Which instructions the PTX has (PTX_PATTERNS), and how many wgmma instructions."""
    facts: dict[str, Any] = {name: bool(re.search(pattern, ptx)) for name, pattern in PTX_PATTERNS.items()}
    facts["wgmma_count"] = len(re.findall(PTX_PATTERNS["wgmma"], ptx))
    return facts


def sass_counts(sass: str) -> dict[str, int]:
    """How many instructions of each SASS_OPCODES opcode (any modifiers) the SASS listing has."""
    return {op: len(re.findall(rf"\b{op}(?:\.[A-Z0-9_]+)*\b", sass)) for op in SASS_OPCODES}


def smem_buffers(ttgir: str) -> list[int]:
    """The leading extent of each 3-D (or higher) shared-memory allocation: the pipeline's buffers per operand."""
    found = []
    for dims, _element in _LOCAL_ALLOC.findall(ttgir):
        extents = [int(d) for d in dims.rstrip("x").split("x")]
        if len(extents) >= 3:
            found.append(extents[0])
    return found


def summary(facts: dict[str, Any]) -> str:
    """One phrase for the row's timing method, e.g. `wgmma, TMA filter loads, 3 smem buffers`."""
    words = ["wgmma" if facts.get("wgmma") else "mma.sync" if facts.get("mma_sync") else "no tensor-core MMA"]
    if facts.get("tma_load"):
        words.append("TMA loads")
    if facts.get("cp_async"):
        words.append("cp.async loads")
    if facts.get("smem_buffers"):
        words.append(f"{max(facts['smem_buffers'])} smem buffers")
    return ", ".join(words)


def kernel_facts(compiled: Any) -> dict[str, Any]:
    """The facts above from a Triton CompiledKernel (what `kernel[grid](...)` returns)."""
    asm = getattr(compiled, "asm", {}) or {}
    metadata = getattr(compiled, "metadata", None)
    facts: dict[str, Any] = ptx_facts(asm.get("ptx", "") or "") if "ptx" in asm else {"ptx": None}
    facts["smem_buffers"] = smem_buffers(asm.get("ttgir", "") or "") if "ttgir" in asm else None
    facts |= {
        "num_warps": getattr(metadata, "num_warps", None),
        "num_stages": getattr(metadata, "num_stages", None),
        "shared_bytes": getattr(metadata, "shared", None),
        "registers": getattr(compiled, "n_regs", None),
        "spills": getattr(compiled, "n_spills", None),
    }
    try:  # AsmDict disassembles the cubin on first access to "sass" (nvdisasm); absent on some installs
        sass = asm["sass"]
    except Exception as error:  # any failure of the disassembler leaves the SASS facts unknown
        facts["sass"] = None
        facts["sass_error"] = f"{type(error).__name__}: {str(error).strip()[:200]}"
    else:
        facts["sass"] = sass_counts(sass or "")
    return facts
