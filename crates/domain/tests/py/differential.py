"""Independent reference side of crates/domain/tests/differential.rs.

Reads one JSON object on stdin and writes one JSON object on stdout. Every key of the
input is optional; the output has the same keys:

  ric       [str]            -> [{"valid", "core", "place", "compact", "converted"}]
  uscc      [str]            -> [{"valid", "checksum", "compact"}]
  luhn      [str]            -> [{"raw", "compact"}]
  schedules [product]        -> [{"installment", "periods", "exact_fallback"}]
              product: principal (fen), rate, months, method, fee_rate, and optionally
              start / first_due (YYYY-MM-DD) and day_count (monthly, actual_360, actual_365)
  irr       [[net, p1, ...]] -> [irr * 12]

The identifier rules come from python-stdnum, the installment from numpy_financial.pmt,
the IRR from numpy_financial.irr; interest and rounding use decimal.Decimal with
ROUND_HALF_UP. Nothing here imports or mirrors the Rust code.

Exit status 3 means a reference module is missing: run scripts/install-deps.sh.
"""

import calendar
import importlib.util
import json
import sys
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

REQUIRED = ("numpy_financial", "stdnum")
MISSING = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
if MISSING:  # pragma: no cover - environment problem
    sys.stderr.write(
        f"MISSING PYTHON MODULE(S): {', '.join(MISSING)}. Run scripts/install-deps.sh "
        "(installs numpy-financial and python-stdnum).\n"
    )
    sys.exit(3)

from stdnum import luhn  # noqa: E402
from stdnum.cn import ric, uscc  # noqa: E402
from stdnum.exceptions import ValidationError  # noqa: E402
from stdnum.util import isdigits  # noqa: E402

# numpy_financial (and numpy, slow to import) is imported only by the requests that use it.
npf = None


def numpy_financial():
    global npf
    if npf is None:
        import numpy_financial

        npf = numpy_financial
    return npf


ONE = Decimal(1)


def half_up(x: Decimal) -> int:
    """Rounds a non-negative amount in fen half-up to a whole fen."""
    return int(x.quantize(ONE, rounding=ROUND_HALF_UP))


# ---------------------------------------------------------------------------------------
# Identifiers
# ---------------------------------------------------------------------------------------


def ric_one(number: str) -> dict:
    """stdnum's verdict, split into the rules both sides share ("core": length, digits,
    check character, real date) and the county-code table lookup ("place")."""
    out = {"valid": False, "core": False, "place": None, "compact": None, "converted": None}
    try:
        c = ric.compact(number)
    except ValidationError:
        return out
    out["compact"] = c
    if len(c) == 15 and isdigits(c):
        # Legacy number: insert the century 19 and append the GB 11643 check character
        # (calc_check_digit ignores the last character of what it is given).
        body = c[:6] + "19" + c[6:]
        c = body + ric.calc_check_digit(body + "0")
        out["converted"] = c
    try:
        core = (
            len(c) == 18
            and isdigits(c[:-1])
            and c[-1] == ric.calc_check_digit(c)
            and ric.get_birth_date(c) is not None
        )
    except ValidationError:
        core = False
    try:
        # With the core rules met, is_valid adds only the county-table lookup.
        valid = ric.is_valid(c)
    except KeyError:
        # stdnum 2.2 crashes in get_birth_place when its table knows the province or
        # prefecture but not the county (e.g. 150106): it knows no such place, which is a refusal.
        valid = False
    out["valid"] = valid
    out["core"] = core
    out["place"] = valid if core else None
    return out


def uscc_one(number: str) -> dict:
    c = uscc.compact(number)
    try:
        # calc_check_digit raises ValueError on a character outside the GB 32100 set.
        checksum = len(c) == 18 and c[-1] == uscc.calc_check_digit(c)
    except ValueError:
        checksum = False
    return {"valid": uscc.is_valid(number), "checksum": checksum, "compact": c}


def luhn_one(number: str) -> dict:
    compact = number.replace(" ", "").replace("-", "")
    valid = luhn.is_valid(compact)
    return {"raw": valid if compact == number else luhn.is_valid(number), "compact": valid}


# ---------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------


def monthly_interest(balance: int, annual: Decimal) -> int:
    # balance (fen) x annual: exact; / 12 at 60 digits: exact when it ends in .5.
    return half_up(Decimal(balance) * annual / 12)


def installment(principal: int, annual: Decimal, months: int):
    """numpy_financial.pmt on fen, rounded half-up to the fen with Decimal.

    Within 0.001 fen of a half fen the float result cannot decide the rounding; then the
    annuity is recomputed exactly with fractions (and the case counted)."""
    rate = float(annual) / 12
    x = float(numpy_financial().pmt(rate, months, -principal))
    if abs((x - int(x)) - 0.5) > 1e-3:
        return half_up(Decimal(x)), False
    r = Fraction(annual) / 12
    if r == 0:
        exact = Fraction(principal, months)
    else:
        g = (1 + r) ** months
        exact = principal * r * g / (g - 1)
    return int(exact + Fraction(1, 2)), True


def add_months(d: date, months: int) -> date:
    m = d.year * 12 + (d.month - 1) + months
    y, mo = divmod(m, 12)
    return date(y, mo + 1, min(d.day, calendar.monthrange(y, mo + 1)[1]))


def due_dates(p: dict, n: int) -> list:
    start = date.fromisoformat(p.get("start", "2026-01-01"))
    first = p.get("first_due")
    if first:
        anchor, offset = date.fromisoformat(first), 0
    else:
        anchor, offset = start, 1
    return [start] + [add_months(anchor, k + offset) for k in range(n)]


def period_interest(balance: int, annual: Decimal, day_count: str, frm: date, to: date, regular: bool) -> int:
    """Interest of one period under the PBOC conventions (day rate = annual / 360 or / 365)."""
    if day_count == "monthly":
        if regular:
            return monthly_interest(balance, annual)
        months, reached = 0, frm
        while add_months(frm, months + 1) <= to:
            months += 1
            reached = add_months(frm, months)
        days = 30 * months + (to - reached).days
        return half_up(Decimal(balance) * annual * days / 360)
    days = (to - frm).days
    year = 360 if day_count == "actual_360" else 365
    return half_up(Decimal(balance) * annual * days / year)


def schedule_one(p: dict) -> dict:
    principal = p["principal"]
    annual = Decimal(p["rate"])
    n = p["months"]
    method = p["method"]
    day_count = p.get("day_count", "monthly")
    dates = due_dates(p, n)
    broken = bool(p.get("first_due"))
    fee = half_up(Decimal(principal) * Decimal(p["fee_rate"])) if p["fee_rate"] else 0
    inst, fallback = (None, False)
    if method == "equal_installment":
        inst, fallback = installment(principal, annual, n)
    elif method == "equal_principal":
        inst = half_up(Decimal(principal) / n)
    balance = principal
    accrued = 0
    periods = []
    for k in range(1, n + 1):
        last = k == n
        interest = period_interest(balance, annual, day_count, dates[k - 1], dates[k], not (k == 1 and broken))
        if method == "equal_installment":
            paid = balance if last else min(max(inst - interest, 0), balance)
        elif method == "equal_principal":
            paid = balance if last else min(inst, balance)
        elif method == "interest_first":
            paid = balance if last else 0
        elif method == "bullet":
            accrued += interest
            paid = balance if last else 0
            interest = accrued if last else 0
        else:
            raise ValueError(f"unknown method {method}")
        balance -= paid
        periods.append([paid, interest, fee, paid + interest + fee])
    return {"installment": inst, "periods": periods, "exact_fallback": fallback}


def irr_one(flow: list) -> float:
    net, payments = flow[0], flow[1:]
    return float(numpy_financial().irr([-net] + payments)) * 12


def main() -> None:
    req = json.load(sys.stdin)
    out = {}
    with localcontext() as ctx:
        ctx.prec = 60
        if "ric" in req:
            out["ric"] = [ric_one(s) for s in req["ric"]]
        if "uscc" in req:
            out["uscc"] = [uscc_one(s) for s in req["uscc"]]
        if "luhn" in req:
            out["luhn"] = [luhn_one(s) for s in req["luhn"]]
        if "schedules" in req:
            out["schedules"] = [schedule_one(p) for p in req["schedules"]]
        if "irr" in req:
            out["irr"] = [irr_one(f) for f in req["irr"]]
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
