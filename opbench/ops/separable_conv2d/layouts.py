"""separable_conv2d's layouts: the orders of the input and the depthwise filter, as permutations of the canonical
NCHW input and CRS filter; the pointwise filter is [K, C] in both, the output takes the input's order (N,P,Q,K or
N,K,P,Q). Named after the linalg ops of the two stages (mlir.py):

  nhwc_hwc_kc  input N,H,W,C  depthwise filter R,S,C  (linalg.depthwise_conv_2d_nhwc_hwc, then
               linalg.conv_2d_nhwc_fhwc with the [K, C] filter as K x 1 x 1 x C)
  nchw_chw_kc  input N,C,H,W  depthwise filter C,R,S  (linalg.depthwise_conv_2d_nchw_chw, then
               linalg.conv_2d_nchw_fchw with the [K, C] filter as K x C x 1 x 1)
"""

from __future__ import annotations

INPUT_PERM = {"nhwc_hwc_kc": (0, 2, 3, 1), "nchw_chw_kc": (0, 1, 2, 3)}
DW_FILTER_PERM = {"nhwc_hwc_kc": (1, 2, 0), "nchw_chw_kc": (0, 1, 2)}
DEPTHWISE_OPS = {"nhwc_hwc_kc": "linalg.depthwise_conv_2d_nhwc_hwc", "nchw_chw_kc": "linalg.depthwise_conv_2d_nchw_chw"}
POINTWISE_OPS = {"nhwc_hwc_kc": "linalg.conv_2d_nhwc_fhwc", "nchw_chw_kc": "linalg.conv_2d_nchw_fchw"}
# The [K, C] pointwise filter as the 4-D 1x1 filter of the layout's POINTWISE_OPS (tensor.expand_shape's
# reassociation): K becomes the first dim of its group, C of its, the others are 1 (K,1,1,C and K,C,1,1).
PW_FILTER_EXPANSION = {"nhwc_hwc_kc": ((0, 1, 2), (3,)), "nchw_chw_kc": ((0,), (1, 2, 3))}
