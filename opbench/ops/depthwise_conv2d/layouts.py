"""depthwise_conv2d's layouts: input and filter orders, as permutations of the canonical NCHW input and CRS filter
(the output takes the input's order). Named after IREE's linalg ops (linalg.depthwise_conv_2d_<input>_<filter>)."""

from __future__ import annotations

INPUT_PERM = {"nhwc_hwc": (0, 2, 3, 1), "nchw_chw": (0, 1, 2, 3)}
FILTER_PERM = {"nhwc_hwc": (1, 2, 0), "nchw_chw": (0, 1, 2)}
LINALG_OPS = {"nhwc_hwc": "linalg.depthwise_conv_2d_nhwc_hwc", "nchw_chw": "linalg.depthwise_conv_2d_nchw_chw"}
