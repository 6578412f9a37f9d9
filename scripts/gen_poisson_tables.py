"""Regenerates the constant tables of _poisson_lanes.h in place (between the BEGIN/END markers).

log k! for k < 256 is ln(k!) of the exact integer in 60-digit decimal arithmetic, rounded once to
double: correctly rounded, where math.lgamma is off by up to 3.2 ulp (k = 2) on this range; math.lgamma
stays as a cross-check. 1/k is Python's correctly rounded division. Both are printed with
float.hex() so the C compiler reads back the very same double.
Run: python scripts/gen_poisson_tables.py [memdrift/ext/_poisson_lanes.h]
"""
import decimal
import math
import os
import re
import sys

LOGFACT_N = 256   # must match MD_LOGFACT_TABLE_N in the header
INV_K_N = 129     # 1/k for k = 0..128 (entry 0 unused); must match MD_PL_INV_CAP + 1


def c_array(values, per_line=4):
    lines = []
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(values[i:i + per_line]) + ",")
    return "\n".join(lines)


def logfact_block():
    decimal.getcontext().prec = 60
    vals = []
    for k in range(LOGFACT_N):
        exact = float(decimal.Decimal(math.factorial(k)).ln())
        assert abs(exact - math.lgamma(k + 1.0)) <= 4 * math.ulp(exact), k
        vals.append(float.hex(exact))
    return ("static const double md_logfact_table[%d] = {\n%s\n};" % (LOGFACT_N, c_array(vals)))


def inv_k_block():
    vals = ["0x0p+0"] + [float.hex(1.0 / k) for k in range(1, INV_K_N)]
    return ("static const double md_inv_k_table[%d] = {\n%s\n};" % (INV_K_N, c_array(vals)))


def fill(text, name, block):
    pat = re.compile(r"(/\* BEGIN GENERATED %s \*/\n)(?:.*?\n)?(/\* END GENERATED %s \*/)" % (name, name), re.S)
    new, n = pat.subn(lambda m: m.group(1) + block + "\n" + m.group(2), text)
    if n != 1:
        raise SystemExit("marker %s not found exactly once" % name)
    return new


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "memdrift/ext/_poisson_lanes.h"
    with open(path) as f:
        text = f.read()
    text = fill(text, "LOGFACT", logfact_block())
    text = fill(text, "INV_K", inv_k_block())
    # written beside and renamed over, so an interrupted run leaves the header whole
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
