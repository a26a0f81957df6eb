"""注册与找回密码 — the pages of api/registration.py: register, confirm the code, reset.

Which account a code page is for travels signed (itsdangerous) in its URL, so the pages keep
no state of their own; the code is the secret. Sends are limited per address and wrong codes
per account (api/throttle.py); a password reset answers the same whether or not the USCC has
an account (nothing tells who is registered).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from itsdangerous import BadSignature

from api import registration, throttle, web_session
from api.deps import EngineDep, client_address
from api.pages.views import (
    Csrf,
    MaybeSession,
    back,
    home_of,
    page,
    require_csrf,
    set_session_cookie,
)
from api.registration import RegistrationRefused
from states.engine import CaseEngine

router = APIRouter(include_in_schema=False)
SALT = "relief-code-page"
Text = Annotated[str, Form(max_length=200)]
Secret = Annotated[str, Form(max_length=500)]


def _ticket(engine: CaseEngine, account_id: int, purpose: str, sent_to: str) -> str:
    signer = web_session.signer(engine.db, engine.settings.secret_key, SALT)
    return str(signer.dumps([account_id, purpose, sent_to]))


def _read_ticket(engine: CaseEngine, ticket: str, purpose: str) -> tuple[int, str] | None:
    signer = web_session.signer(engine.db, engine.settings.secret_key, SALT)
    try:
        account_id, kind, sent_to = signer.loads(
            ticket[:500], max_age=engine.settings.code_minutes * 60
        )
    except (BadSignature, ValueError, TypeError):
        return None
    return (int(account_id), str(sent_to)) if kind == purpose else None


@router.get("/register", response_class=HTMLResponse)
def register_form(request: Request, session: MaybeSession, engine: EngineDep) -> Response:
    return page(request, engine, session, "register.html.j2", values={}, errors={})


@router.post("/register", response_class=HTMLResponse)
def register(
    request: Request,
    session: MaybeSession,
    engine: EngineDep,
    csrf: Csrf = "",
    uscc: Text = "",
    name: Text = "",
    email: Text = "",
    phone: Annotated[str, Form(max_length=40)] = "",
    password: Secret = "",
    password_again: Secret = "",
) -> Response:
    form = require_csrf(engine, session, csrf)
    values = {"uscc": uscc, "name": name, "email": email, "phone": phone}
    now = engine.clock.now()
    try:
        reg = registration.check_form(uscc, name, email, phone, password, password_again)
        throttle.reserve(
            engine.db, throttle.limits(engine.settings)["code_send"], client_address(request), now
        )
        account_id = registration.start(engine.db, reg, now)
        sent_to = registration.send_code(
            engine.db, engine.settings, account_id, key=_key(engine), purpose="register",
            email=reg.email, phone=reg.phone, now=now,
        )  # fmt: skip
    except RegistrationRefused as exc:
        return page(request, engine, form, "register.html.j2", status_code=422, values=values,
                    errors={exc.field: exc.message_zh})  # fmt: skip
    except throttle.Throttled as exc:
        return page(request, engine, form, "register.html.j2", status_code=429, values=values,
                    errors={"uscc": exc.message_zh})  # fmt: skip
    return back(f"/register/confirm?t={_ticket(engine, account_id, 'register', sent_to)}")


def _key(engine: CaseEngine) -> str:
    return web_session.signing_key(engine.db, engine.settings.secret_key)


@router.get("/register/confirm", response_class=HTMLResponse)
def confirm_form(
    request: Request, session: MaybeSession, engine: EngineDep, t: str = ""
) -> Response:
    ticket = _read_ticket(engine, t, "register")
    if ticket is None:
        return _expired(request, engine, session, "/register")
    return page(request, engine, session, "code.html.j2", action="/register/confirm", ticket=t,
                sent_to=ticket[1], purpose="register", error=None)  # fmt: skip


def _expired(request: Request, engine: CaseEngine, session: MaybeSession, again: str) -> Response:
    form = session or web_session.start(engine.db, engine.clock.now())
    web_session.push_flash(engine.db, form, "验证码页面已失效，请重新开始", "error")
    response = back(again)
    if form.cookie:
        set_session_cookie(response, form, engine)
    return response


def _code_ok(request: Request, engine: CaseEngine, account_id: int, purpose: str,
             code: str) -> str | None:  # fmt: skip
    """None when the code is right; else what to tell the person."""
    limit = throttle.limits(engine.settings)["code_account"]
    now = engine.clock.now()
    try:
        throttle.reserve(engine.db, limit, str(account_id), now)
    except throttle.Throttled as exc:
        return exc.message_zh
    if registration.check_code(engine.db, _key(engine), account_id, purpose, code, now):
        throttle.succeed(engine.db, limit, str(account_id))
        return None
    throttle.confirm_failure(engine.db, limit, str(account_id), now)
    return "验证码不正确或已过期（每个验证码可试5次），请重新获取"


@router.post("/register/confirm", response_class=HTMLResponse)
def confirm(
    request: Request, session: MaybeSession, engine: EngineDep, csrf: Csrf = "",
    t: Annotated[str, Form(max_length=500)] = "", code: Annotated[str, Form(max_length=20)] = "",
) -> Response:  # fmt: skip
    form = require_csrf(engine, session, csrf)
    ticket = _read_ticket(engine, t, "register")
    if ticket is None:
        return _expired(request, engine, form, "/register")
    account_id, sent_to = ticket
    problem = _code_ok(request, engine, account_id, "register", code)
    if problem:
        return page(request, engine, form, "code.html.j2", status_code=422,
                    action="/register/confirm", ticket=t, sent_to=sent_to, purpose="register",
                    error=problem)  # fmt: skip
    email, phone = registration.pending_contact(engine.db, account_id)
    account = registration.confirm(engine.db, account_id, email, phone, engine.clock.now())
    web_session.end(engine.db, form)
    signed_in = web_session.start(engine.db, engine.clock.now(), account)
    web_session.push_flash(engine.db, signed_in, "注册成功，已登录")
    response = back(home_of(account))
    set_session_cookie(response, signed_in, engine)
    return response


@router.get("/password/forgot", response_class=HTMLResponse)
def forgot_form(request: Request, session: MaybeSession, engine: EngineDep) -> Response:
    return page(request, engine, session, "forgot.html.j2", error=None)


@router.post("/password/forgot", response_class=HTMLResponse)
def forgot(
    request: Request, session: MaybeSession, engine: EngineDep, csrf: Csrf = "", uscc: Text = ""
) -> Response:
    form = require_csrf(engine, session, csrf)
    now = engine.clock.now()
    try:
        throttle.reserve(
            engine.db, throttle.limits(engine.settings)["code_send"], client_address(request), now
        )
    except throttle.Throttled as exc:
        return page(request, engine, form, "forgot.html.j2", status_code=429, error=exc.message_zh)
    found = registration.contact_of(engine.db, uscc)
    account_id, sent_to = 0, "您登记的邮箱或手机"
    if found is not None:
        account_id, email, phone = found
        try:
            sent_to = registration.send_code(
                engine.db, engine.settings, account_id, key=_key(engine), purpose="reset",
                email=email, phone=phone, now=now,
            )  # fmt: skip
        except RegistrationRefused as exc:
            return page(request, engine, form, "forgot.html.j2", status_code=422,
                        error=exc.message_zh)  # fmt: skip
    # the same next page whether or not the USCC has an account
    return back(f"/password/reset?t={_ticket(engine, account_id, 'reset', sent_to)}")


@router.get("/password/reset", response_class=HTMLResponse)
def reset_form(request: Request, session: MaybeSession, engine: EngineDep, t: str = "") -> Response:
    ticket = _read_ticket(engine, t, "reset")
    if ticket is None:
        return _expired(request, engine, session, "/password/forgot")
    return page(request, engine, session, "code.html.j2", action="/password/reset", ticket=t,
                sent_to=ticket[1], purpose="reset", error=None)  # fmt: skip


@router.post("/password/reset", response_class=HTMLResponse)
def reset(
    request: Request, session: MaybeSession, engine: EngineDep, csrf: Csrf = "",
    t: Annotated[str, Form(max_length=500)] = "", code: Annotated[str, Form(max_length=20)] = "",
    password: Secret = "", password_again: Secret = "",
) -> Response:  # fmt: skip
    form = require_csrf(engine, session, csrf)
    ticket = _read_ticket(engine, t, "reset")
    if ticket is None:
        return _expired(request, engine, form, "/password/forgot")
    account_id, sent_to = ticket

    def again(error: str) -> Response:
        return page(request, engine, form, "code.html.j2", status_code=422,
                    action="/password/reset", ticket=t, sent_to=sent_to, purpose="reset",
                    error=error)  # fmt: skip

    try:
        registration.check_password(password, password_again)
    except RegistrationRefused as exc:
        return again(exc.message_zh)
    problem = (
        _code_ok(request, engine, account_id, "reset", code)
        if account_id
        else "验证码不正确或已过期（每个验证码可试5次），请重新获取"
    )
    if problem:
        return again(problem)
    registration.set_password(engine.db, account_id, password, password_again)
    web_session.push_flash(engine.db, form, "密码已重置，请用新密码登录")
    return back("/login")
