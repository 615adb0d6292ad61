# PAL-style math names, written for pad: PAL's AQuA programs call gcd, factorial, sqrt... without
# importing them (PAL's runner had them in scope). Explicit names from math only, so programs
# stay on the sandbox's fast path.
import math
from math import (acos, asin, atan, ceil, comb, cos, degrees, e, exp, factorial, floor, gcd, hypot, inf, isqrt,
                  lcm, log, log2, log10, perm, pi, radians, sin, sqrt, tan)
