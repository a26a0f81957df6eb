"""发文字号 — `东市监〔2022〕12号`: serial per issuer and year, no gaps, no repeats.

The serials are handed out by the engine's unit of work (models/doc_serials.py locks each
issuer's row in the same transaction as the notices it numbers); this module says how a
number is written.
"""

from __future__ import annotations


def doc_number(prefix: str, year: int, serial: int) -> str:
    """GB/T 9704-2012 §7.2.5: year in 〔〕, serial without 第 or leading zeros, ending in 号."""
    return f"{prefix}〔{year}〕{serial}号"
