"""Every transition an applicant should hear about owes exactly one notice of the right kind;
no internal transition owes one. Checked over every row of every machine."""

from __future__ import annotations

import pytest

from states.catalog import catalog
from states.lifecycle import CaseState, NoticeKind

N = NoticeKind
S = CaseState

# (trigger, destination) → the one notice the applicant receives
APPLICANT_NOTICES: dict[tuple[str, CaseState], NoticeKind] = {
    ("auto_accept", S.ACCEPTED): N.ACCEPTANCE,
    ("accept", S.ACCEPTED): N.ACCEPTANCE,
    ("accept_deferred", S.ACCEPTED): N.DEFERRED_ACCEPTANCE,
    ("request_correction", S.CORRECTION_REQUESTED): N.CORRECTION,
    ("auto_refuse", S.NOT_ACCEPTED): N.NOT_ACCEPTED,
    ("refuse_acceptance", S.NOT_ACCEPTED): N.NOT_ACCEPTED,
    ("request_info", S.MORE_INFO_REQUESTED): N.MORE_INFO,
    ("approve", S.APPROVED): N.DECISION_GRANTED,
    ("approve", S.PARTIALLY_APPROVED): N.DECISION_PARTIAL,
    ("reject", S.REJECTED): N.DECISION_REFUSED,
    ("record_payment", S.PAID): N.PAYOUT,
    ("withdraw", S.WITHDRAWN): N.WITHDRAWN,
    ("expire", S.EXPIRED): N.EXPIRED,
}
# the licence types: the 有效期顺延告知书 is the notice (an approval issues none of its own)
LICENCE_NOTICES: dict[tuple[str, CaseState], NoticeKind | None] = {
    ("approve", S.APPROVED): None,
    ("apply_effect", S.EFFECT_APPLIED): N.EXTENSION,
    ("await_lift", S.EXTENDED_PENDING_LIFT): N.EXTENSION,
    ("lockdown_lifted", S.EFFECT_APPLIED): N.EXTENSION,
}


# intake and referral: the approval is the referral, told by a 移送告知书, never a 准予决定书
REFERRAL_NOTICES: dict[tuple[str, CaseState], NoticeKind | None] = {
    ("approve", S.APPROVED): N.REFERRAL,
}
REFERRAL_TYPES = {"digital_consumption_review", "headquarters_policy", "foreign_trade_support",
                  "zgc_policy"}  # fmt: skip


@pytest.mark.parametrize("case_type", sorted(catalog()))
def test_each_row_owes_the_right_notices(case_type: str) -> None:
    machine = catalog()[case_type].machine
    spec = dict(APPLICANT_NOTICES)
    if case_type == "licence_extension":
        spec.update(LICENCE_NOTICES)
    if case_type in REFERRAL_TYPES:
        spec.update(REFERRAL_NOTICES)
    seen: dict[tuple[str, str, CaseState], tuple[NoticeKind, ...]] = {}
    for row in machine.rows():
        for source in row.sources():
            key = (row.trigger, source, row.dest)
            if key in seen:
                continue  # a later row for the same key is shadowed by the first
            seen[key] = row.effects.notices
            expected = spec.get((row.trigger, row.dest))
            if expected is None:
                assert row.effects.notices == (), f"internal transition {key} issues a notice"
            else:
                assert row.effects.notices == (expected,), key


def test_every_notice_kind_has_a_template() -> None:
    from pathlib import Path

    folder = Path(__file__).parents[2] / "templates" / "notices"
    for kind in NoticeKind:
        assert (folder / f"{kind.value}.txt.j2").exists(), kind
