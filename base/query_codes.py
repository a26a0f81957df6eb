"""查询码 — the code printed on the 受理通知书 that lets anyone holding it see the case's status.

Ten characters of Crockford's base32 (0-9 and A-Z without I, L, O, U): 32^10 = 2^50 ≈ 1.1e15
codes, drawn with `secrets`. People read it off paper, so input is forgiving: case, spaces and
hyphens do not matter, and I/L read as 1, O as 0. docs/security.md has the guessing arithmetic
against the lookup limits. Cases made before this scheme keep their six-digit codes.
"""

from __future__ import annotations

import hmac
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_query_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(code: str) -> str:
    """What a person typed, as stored: upper case, no separators, look-alikes folded."""
    return "".join(code.split()).replace("-", "").upper().translate(_READ_AS)


def display(code: str) -> str:
    """As printed: two groups of five (a legacy six-digit code as it is)."""
    return f"{code[:5]}-{code[5:]}" if len(code) == LENGTH else code


def matches(stored: str, typed: str) -> bool:
    """Constant-time comparison of a stored code and what someone typed."""
    return hmac.compare_digest(stored.encode(), normalise(typed).encode())
