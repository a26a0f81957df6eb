"""国库支付 — the two ways a payment instruction reaches the treasury.

FileTreasury writes a batch payment-instruction CSV (one line per payment, carrying its
idempotency key) and reads the treasury's reconciliation file back. HttpTreasury posts each
payment to a configured endpoint with an `Idempotency-Key` header and can ask whether a key was
already paid: that status check, made before any retry, is what keeps a crashed run from
paying twice.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx

INSTRUCTION_COLUMNS = [
    "idempotency_key",
    "case_no",
    "payee",
    "payee_name",
    "amount",
    "payer_bureau",
]
RECONCILIATION_COLUMNS = ["idempotency_key", "status", "reference"]


@dataclass(frozen=True)
class PaymentInstruction:
    idempotency_key: str
    case_no: str
    payee: str
    payee_name: str
    amount: Decimal
    payer_bureau: str


class TreasuryError(Exception):
    """A payment was not made; `transient` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class HttpTreasury:
    """POST {base}/payments; GET {base}/payments/{key} answers 200 with the reference or 404."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def pay(self, p: PaymentInstruction) -> str:
        body = {
            "idempotency_key": p.idempotency_key,
            "case_no": p.case_no,
            "payee": p.payee,
            "payee_name": p.payee_name,
            "amount": str(p.amount),
            "currency": "CNY",
            "payer_bureau": p.payer_bureau,
        }
        try:
            r = self.client.post(
                "/payments", json=body, headers={"Idempotency-Key": p.idempotency_key}
            )
        except httpx.HTTPError as exc:
            raise TreasuryError(f"treasury unreachable: {exc}", transient=True) from None
        if r.status_code in (200, 201):
            return str(r.json()["reference"])
        raise TreasuryError(
            f"treasury answered {r.status_code}: {r.text[:200]}", transient=r.status_code >= 500
        )

    def lookup(self, key: str) -> str | None:
        try:
            r = self.client.get(f"/payments/{key}")
        except httpx.HTTPError as exc:
            raise TreasuryError(f"treasury unreachable: {exc}", transient=True) from None
        if r.status_code == 404:
            return None
        if r.status_code == 200:
            return str(r.json()["reference"])
        raise TreasuryError(f"status check answered {r.status_code}", transient=True)


class FileTreasury:
    """Batch payment-instruction files in a folder; written atomically (temp file, rename)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, batch_ref: str) -> Path:
        return self.folder / f"{batch_ref}.csv"

    def write_batch(self, batch_ref: str, payments: list[PaymentInstruction]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.path_for(batch_ref)
        tmp = final.with_suffix(".csv.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(INSTRUCTION_COLUMNS)
            for p in payments:
                writer.writerow(
                    [
                        p.idempotency_key,
                        p.case_no,
                        p.payee,
                        p.payee_name,
                        f"{p.amount:.2f}",
                        p.payer_bureau,
                    ]
                )
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
        return final

    @staticmethod
    def read_reconciliation(path: Path) -> list[dict[str, str]]:
        """Rows of idempotency_key, status (paid | failed), reference."""
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
        missing = [c for c in RECONCILIATION_COLUMNS if rows and c not in rows[0]]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        return rows
