"""Documents through the API on a real uvicorn server: upload by content, size limits, one copy
of each file, put on a case by the filing and by answers, served only to who may see the case.
Every test also sends what an attacker or a careless client would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import scenarios as S
from conftest import FIXED_NOW, Accounts, LiveServer
from sqlmodel import Session, create_engine, select

from api.main import create_app
from models.settings import Settings
from models.tables import DocumentBlob

UPLOADS = Path(__file__).parents[1] / "data" / "uploads"
MB = 1024 * 1024


@pytest.fixture
def site(api_db: Accounts, tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = Settings(
        database_url=api_db.url,
        document_store=str(tmp_path / "docs"),
        document_max_mb=1,
        now=FIXED_NOW,
    )
    with LiveServer(create_app(settings)) as server:
        yield {"url": server.url, "tokens": api_db.tokens, "db": api_db.url, "dir": tmp_path}


def client(site: dict[str, Any], who: str) -> httpx.Client:
    return httpx.Client(
        base_url=site["url"], headers={"Authorization": f"Bearer {site['tokens'][who]}"}
    )


def upload(c: httpx.Client, name: str, content: bytes | None = None) -> httpx.Response:
    data = content if content is not None else (UPLOADS / name).read_bytes()
    return c.post("/api/documents", files={"file": (name, data, "application/pdf")})


def test_upload_checks_content_and_size_and_keeps_one_copy(site: dict[str, Any]) -> None:
    with client(site, "applicant_b") as c:
        first = upload(c, "loan-contract.pdf")
        assert first.status_code == 201, first.text
        again = upload(c, "renamed-copy.pdf", (UPLOADS / "loan-contract.pdf").read_bytes())
        assert again.json()["sha256"] == first.json()["sha256"]
        renamed = upload(c, "not-really.pdf")  # an executable with a .pdf name
        assert renamed.status_code == 422
        assert "PDF、JPEG或PNG" in renamed.json()["message_zh"]
        big = upload(c, "big.pdf", b"%PDF-1.4\n" + b"0" * (MB + 10))  # over the 1 MB setting
        assert big.status_code == 422 and "文件过大" in big.json()["message_zh"]
        huge = upload(c, "huge.pdf", b"%PDF-1.4\n" + b"0" * (12 * MB))  # over the whole body
        assert huge.status_code == 413 and "上传内容过大" in huge.json()["message_zh"]
        empty = upload(c, "empty.pdf", b"")
        assert empty.status_code == 422
        no_file = c.post("/api/documents", data={"file": "text"})
        assert no_file.status_code == 422
    with client(site, "rev_finance") as reviewer:
        assert upload(reviewer, "loan-contract.pdf").status_code == 403
    anonymous = httpx.post(
        f"{site['url']}/api/documents",
        files={"file": ("a.pdf", (UPLOADS / "loan-contract.pdf").read_bytes())},
    )
    assert anonymous.status_code == 401
    with Session(create_engine(site["db"])) as s:
        assert len(s.exec(select(DocumentBlob)).all()) == 1
    assert len([p for p in (site["dir"] / "docs").rglob("*") if p.is_file()]) == 1


def test_documents_of_a_case_are_served_only_to_who_may_see_it(site: dict[str, Any]) -> None:
    with client(site, "applicant_b") as c:
        contract = upload(c, "loan-contract.pdf").json()
        voucher = upload(c, "voucher.png").json()
        application = S.application("LOAN-01")
        application["documents"] = [
            {"slot": "loan_contracts", "sha256": contract["sha256"], "filename": "合同.pdf"},
            {"slot": "interest_vouchers", "sha256": voucher["sha256"],
             "filename": "a\r\nSet-Cookie: x=1.png"},
        ]  # fmt: skip
        made = c.post("/api/applications", json=application)
        assert made.status_code == 201, made.text
        case_no = made.json()[0]["case_no"]
        listed = c.get(f"/api/cases/{case_no}/documents").json()
        assert [(d["slot_label"], d["filename"]) for d in listed] == [
            ("贷款合同", "合同.pdf"),
            ("付息凭证", "aSet-Cookie: x=1.png"),  # no line breaks survive
        ]
        opened = c.get(listed[0]["url"])
        assert opened.status_code == 200
        assert opened.content == (UPLOADS / "loan-contract.pdf").read_bytes()
        assert opened.headers["content-type"] == "application/pdf"
        assert "sandbox" in opened.headers["content-security-policy"]
        assert "set-cookie" not in opened.headers
        wrong_slot = dict(application, documents=[{"slot": "../x", "sha256": contract["sha256"]}])
        refused = c.post("/api/applications", json=wrong_slot)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == (
            "documents.0.slot"
        )
        not_a_list = c.post("/api/applications", json=dict(application, documents="abc"))
        assert not_a_list.status_code == 422
    url = listed[0]["url"]
    with client(site, "rev_finance") as reviewer:  # its section has a task on the case
        assert reviewer.get(url).status_code == 200
    with client(site, "rev_credit") as stranger:  # another bureau: no task, no document
        assert stranger.get(url).status_code == 404
        assert stranger.get(f"/api/cases/{case_no}/documents").status_code == 404
    with client(site, "applicant_a") as other:
        assert other.get(url).status_code == 404
        assert other.get(f"/api/cases/{case_no}/documents").status_code == 404
    with client(site, "applicant_b") as c:
        theirs = c.post("/api/applications", json=S.application("LOAN-01")).json()
    with client(site, "operator") as op:
        assert op.get(url).status_code == 200
        doc_id = listed[0]["id"]
        other_case = theirs[0]["case_no"]
        # a document id under another case's number is not found; nonsense ids are refused
        assert op.get(f"/api/cases/{other_case}/documents/{doc_id}").status_code == 404
        assert op.get(f"/api/cases/{case_no}/documents/{2**70}").status_code == 422
        assert op.get(f"/api/cases/{case_no}/documents/-1").status_code == 422
    assert httpx.get(f"{site['url']}{url}").status_code == 401


def test_an_answer_brings_the_documents_the_reviewer_asked_for(site: dict[str, Any]) -> None:
    with client(site, "applicant_b") as c:
        case_no = c.post("/api/applications", json=S.application("LOAN-01")).json()[0]["case_no"]
    with client(site, "rev_finance") as reviewer:
        tasks = reviewer.get("/api/tasks").json()
        assert any(t["case_no"] == case_no for t in tasks)
        bad = reviewer.post(
            f"/api/cases/{case_no}/decide",
            json={"action": "request_info", "slots": ["<script>"]},
        )
        assert bad.status_code == 422
        asked = reviewer.post(
            f"/api/cases/{case_no}/decide",
            json={"action": "request_info", "slots": ["interest_vouchers"]},
        )
        assert asked.status_code == 200, asked.text
    with client(site, "applicant_b") as c:
        empty = c.post(f"/api/cases/{case_no}/supply", json={})
        assert empty.status_code == 422 and "付息凭证" in empty.json()["message_zh"]
        voucher = upload(c, "voucher.png").json()
        answered = c.post(
            f"/api/cases/{case_no}/supply",
            json={"documents": [{"slot": "interest_vouchers", "sha256": voucher["sha256"]}]},
        )
        assert answered.status_code == 200 and answered.json()["state"] == "under_review"
        more = c.post(
            f"/api/cases/{case_no}/documents",
            json={"documents": [{"slot": "guarantee_fee_vouchers", "sha256": voucher["sha256"]}]},
        )
        assert more.status_code == 200, more.text
        stale = c.post(
            f"/api/cases/{case_no}/documents",
            json={"documents": [{"slot": "loan_contracts", "sha256": voucher["sha256"]}],
                  "expected_version": 1},
        )  # fmt: skip
        assert stale.status_code == 409
        slots = [d["slot"] for d in c.get(f"/api/cases/{case_no}/documents").json()]
    assert slots == ["interest_vouchers", "guarantee_fee_vouchers"]


def test_contact_details_through_the_api(site: dict[str, Any]) -> None:
    with client(site, "applicant_b") as c:
        c.post("/api/applications", json=S.application("LOAN-01"))
        before = c.get("/api/my/contact").json()
        assert before["email"] is None
        changed = c.put(
            "/api/my/contact",
            json={"email": "cfo@example.com", "notify": ["email"], "expected": before},
        )
        assert changed.status_code == 200 and changed.json()["email"] == "cfo@example.com"
        stale = c.put("/api/my/contact", json={"email": "x@example.com", "expected": before})
        assert stale.status_code == 409
        bad = c.put("/api/my/contact", json={"notify": ["sms"]})
        assert bad.status_code == 422 and "手机号" in bad.text
        ssrf = c.put("/api/my/contact", json={"im_url": "http://127.0.0.1:8080/"})
        assert ssrf.status_code == 422
    with client(site, "rev_finance") as reviewer:
        assert reviewer.put("/api/my/contact", json={}).status_code == 403
