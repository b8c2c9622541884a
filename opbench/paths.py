"""Where the workflow's files are, as patterns of the points' fields: the rules' output patterns and the paths the
package computes for a point are these same strings."""

from __future__ import annotations

# The MLIR program of a problem in one program form.
MLIR = "compiled/mlir/{op}/{layout}/{dtype}/{shape}.{form}.mlir"
# A backend's artifact, by its build_scope: one per (variant, op), e.g. a CUDA binary; one folder per problem, e.g.
# an IREE module with what was built beside it.
VARIANT_ARTIFACT = "compiled/{backend}/{variant}/{op}_{variant}"
PROBLEM_ARTIFACT = "compiled/{backend}/{variant}/{op}/{layout}/{dtype}/{shape}"
# One backend variant's output, verdict and timing of a problem, under results/<machine>/runs/.
RUN_DIR = "{backend}/{variant}/{op}/{layout}/{dtype}/{shape}"
# A point's record, under results/<machine>/records/.
RECORD = "{op}/{suite}/{layer}/{backend}/{variant}/{layout}/{dtype}/{shape}.json"


def artifact_path(build_scope: str, **fields: str) -> str | None:
    """The artifact of a point (its fields by name) for a backend of this build_scope; None if it builds nothing."""
    if build_scope == "variant":
        return VARIANT_ARTIFACT.format(**fields)
    if build_scope == "problem":
        return PROBLEM_ARTIFACT.format(**fields)
    return None
