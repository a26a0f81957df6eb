"""Money is Decimal CNY rounded by one rule, so amounts agree wherever they are computed."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
# The one rounding rule of the system: 四舍五入 to the fen, as Chinese fiscal practice does.
# Never round money any other way (Decimal's own default, and str.format's, is half-even).
ROUNDING = ROUND_HALF_UP


def to_money(value: Decimal | int | str) -> Decimal:
    """An amount in yuan with exactly two decimals, rounded by ROUNDING."""
    # bool is an int; float cannot hold most cent values exactly (0.1 + 0.2 != 0.3).
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"money must be Decimal, int or str, not {type(value).__name__}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    try:
        result = amount.quantize(CENT, rounding=ROUNDING)
    except InvalidOperation:
        raise ValueError(f"amount too large to hold to the fen: {value!r}") from None
    # -0.004 rounds to -0.00; store and show it as plain zero.
    return result.copy_abs() if result.is_zero() else result


def money_share(amount: Decimal, rate: Decimal) -> Decimal:
    """`rate` of `amount`, rounded once at the end so shares do not drift by a fen."""
    return to_money(amount * rate)


def format_cny(amount: Decimal) -> str:
    """Amount as written in notices, e.g. 1,000,000.00 (rounded by ROUNDING, not by format)."""
    return f"{to_money(amount):,.2f}"


def percent(rate: Decimal) -> str:
    """A rate as Chinese documents write it: Decimal("0.30") → "30%"."""
    return f"{(rate * 100).normalize():f}%"
