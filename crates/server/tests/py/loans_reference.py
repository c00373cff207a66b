"""Independent reference for the loan tests (issue #8): early partial and early full
repayment of an equal-installment (等额本息) or equal-principal (等额本金) loan with
monthly interest, computed from the rules-cn.md convention with Python's `decimal`
(ROUND_HALF_UP) and numpy-financial's `pmt` for the installment.

stdin: {"cases": [{"principal_fen", "annual_rate", "months", "method", "paid_periods",
        "prepay_fen" (early partial) | "days" (early full), "kind"}]}
stdout: {"results": [{"periods": [[principal_fen, interest_fen], ...]} | {"payoff_fen": n}]}
Exit code 3 when numpy-financial is missing.
"""
import json
import sys
from decimal import Decimal, ROUND_HALF_UP, getcontext

try:
    import numpy_financial as npf
except ImportError:
    sys.exit(3)

getcontext().prec = 50


def half_up(x):
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def plan(balance, r, n, method):
    """Periods (principal, interest) of a fresh plan on `balance` over n months."""
    out = []
    if method == "equal_installment":
        # numpy-financial's annuity, in floats, then rounded; checked against the exact
        # decimal annuity so a float error near a half fen cannot pass silently.
        inst_f = -npf.pmt(float(r), n, float(balance))
        inst_d = Decimal(balance) * r / (1 - (1 + r) ** (-n))
        inst = half_up(inst_d)
        assert abs(inst - inst_f) < 1, (inst, inst_f)
    else:
        inst = half_up(Decimal(balance) / n)
    for k in range(n):
        interest = half_up(Decimal(balance) * r)
        if k == n - 1:
            p = balance
        elif method == "equal_installment":
            p = max(0, min(inst - interest, balance))
        else:
            p = min(inst, balance)
        balance -= p
        out.append((p, interest))
    return out


def run(case):
    r = Decimal(case["annual_rate"]) / 12
    n = case["months"]
    k = case["paid_periods"]
    full = plan(case["principal_fen"], r, n, case["method"])
    balance = case["principal_fen"] - sum(p for p, _ in full[:k])
    if case["kind"] == "early_partial":
        return {"periods": [list(x) for x in plan(balance - case["prepay_fen"], r, n - k, case["method"])]}
    # Early full: the balance plus its interest for the days of the current period at
    # annual / 360 a day.
    interest = half_up(Decimal(balance) * Decimal(case["annual_rate"]) * case["days"] / 360)
    return {"payoff_fen": balance + interest}


req = json.load(sys.stdin)
json.dump({"results": [run(c) for c in req["cases"]]}, sys.stdout)
