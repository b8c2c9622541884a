"""conv2d's layouts: the order of input, filter and output in each, as permutations of the canonical
NCHW / KCRS / NKPQ order (inputs are generated canonical and permuted, so every layout sees the same values).

  nhwc_hwcf  input N,H,W,C  filter R,S,C,K  (linalg.conv_2d_nhwc_hwcf)
  nhwc_fhwc  input N,H,W,C  filter K,R,S,C  (linalg.conv_2d_nhwc_fhwc; cuDNN channels-last; our CUDA kernels)
  nchw_fchw  input N,C,H,W  filter K,C,R,S  (linalg.conv_2d_nchw_fchw; PyTorch's default)
The output follows the input's order.
"""

from __future__ import annotations

# Permutation from canonical (N,C,H,W) / (K,C,R,S) / (N,K,P,Q) to each layout.
INPUT_PERM = {"nhwc_hwcf": (0, 2, 3, 1), "nhwc_fhwc": (0, 2, 3, 1), "nchw_fchw": (0, 1, 2, 3)}
FILTER_PERM = {"nhwc_hwcf": (2, 3, 1, 0), "nhwc_fhwc": (0, 2, 3, 1), "nchw_fchw": (0, 1, 2, 3)}
