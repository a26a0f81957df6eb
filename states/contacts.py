"""联系方式 — an applicant's contact details: what a filing or the applicant changes.

Notices are delivered to the applicant row's details at the time of delivery
(notifications/delivery.py), so a change reaches every notice not yet delivered. Each change
is an applicant event with the values before and after.
"""

from __future__ import annotations

from typing import Any

from models.applications import ContactDetails, Party

CONTACT_FIELDS = ("email", "phone", "notify", "im_url")


def stored_contact(row: Any) -> dict[str, Any]:
    return {
        f: (list(getattr(row, f) or []) if f == "notify" else getattr(row, f))
        for f in CONTACT_FIELDS
    }


def filing_patch(stored: dict[str, Any], party: Party) -> dict[str, Any]:
    """What a new filing's contact details change: an address it gives replaces the stored
    one; its channels replace the stored ones when it names them, and e-mail becomes the
    channel when none was chosen before and it gives an address."""
    patch: dict[str, Any] = {}
    for name in ("email", "phone", "im_url"):
        value = getattr(party, name)
        if value and value != stored[name]:
            patch[name] = value
    notify = list(stored["notify"])
    if party.notify is not None:
        notify = list(dict.fromkeys(party.notify))
    elif party.email and not notify:
        notify = ["email"]
    if notify != stored["notify"]:
        patch["notify"] = notify
    return patch


def details_patch(stored: dict[str, Any], details: ContactDetails) -> dict[str, Any]:
    """What the applicant's own form changes (every field as given; blank clears)."""
    new = details.model_dump()
    return {f: new[f] for f in CONTACT_FIELDS if new[f] != stored[f]}
