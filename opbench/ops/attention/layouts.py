"""attention's layouts: the order of Q, K, V and O (all four alike), as permutations of the canonical B,H,S,D:

bhsd  B,H,S,D  (heads outermost: each head's S x D matrices contiguous)
bshd  B,S,H,D  (a projection's output as it comes: the heads of one token side by side)
"""

from __future__ import annotations

INPUT_PERM = {"bhsd": (0, 1, 2, 3), "bshd": (0, 2, 1, 3)}
