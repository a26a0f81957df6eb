"""输入错误 — bad input becomes a list of field errors in the applicant's language.

Every error names the field (dotted path), the rule broken (a stable code), a Chinese message
for the applicant and an English one for operators. No stack trace reaches a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import ValidationError

from models.applications import APPLICATION_ADAPTER, CORE_TYPES, Application, schema_for, type_codes


@dataclass(frozen=True)
class FieldError:
    field: str
    rule: str
    message_zh: str
    message_en: str

    def as_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "rule": self.rule,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        }


class InvalidApplication(ValueError):
    """The application cannot be taken as it stands; nothing was written."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message_zh}" for e in errors))


def type_choices() -> str:
    return "、".join(type_codes())


_ZH: dict[str, str] = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不认识的字段，请删除或核对字段名",
    "decimal_parsing": "须为数字金额（元）",
    "decimal_type": "须为数字金额（元）",
    "decimal_max_places": "金额最多保留两位小数（精确到分）",
    "decimal_max_digits": "金额位数过多",
    "decimal_whole_digits": "金额位数过多",
    "finite_number": "须为有限数值",
    "bool_parsing": "须为 true 或 false",
    "bool_type": "须为 true 或 false",
    "date_parsing": "须为日期，格式为YYYY-MM-DD",
    "date_from_datetime_parsing": "须为日期，格式为YYYY-MM-DD",
    "date_from_datetime_inexact": "须为日期，不含时间",
    "date_type": "须为日期，格式为YYYY-MM-DD",
    "datetime_parsing": "须为日期或时间，格式为YYYY-MM-DD或YYYY-MM-DDTHH:MM+08:00",
    "datetime_from_date_parsing": "须为日期或时间，格式为YYYY-MM-DD或YYYY-MM-DDTHH:MM+08:00",
    "datetime_type": "须为日期或时间，格式为YYYY-MM-DD或YYYY-MM-DDTHH:MM+08:00",
    "int_parsing": "须为整数",
    "int_type": "须为整数",
    "int_from_float": "须为整数",
    "string_type": "须为文字",
    "string_too_short": "不得为空",
    "string_too_long": "内容过长",
    "list_type": "须为列表",
    "too_short": "至少填写一项",
    "model_type": "须为对象（JSON对象）",
    "model_attributes_type": "须为对象（JSON对象）",
    "dict_type": "须为对象（JSON对象）",
}


def _zh_message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("greater_than_equal",):
        return "不得为负数" if str(ctx.get("ge")) in ("0", "0.0") else f"不得小于{ctx.get('ge')}"
    if kind == "greater_than":
        return "须大于0" if str(ctx.get("gt")) in ("0", "0.0") else f"须大于{ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"不得大于{ctx.get('le')}"
    if kind in ("literal_error", "enum"):
        return f"取值无效，可选：{ctx.get('expected', '')}"
    if kind == "union_tag_invalid":
        return f"未知的申请类型“{ctx.get('tag')}”，可选：{type_choices()}"
    if kind == "union_tag_not_found":
        return f"缺少申请类型（type），可选：{type_choices()}"
    if kind in _ZH:
        return _ZH[kind]
    if "en" in ctx:  # our own PydanticCustomError: the message is already Chinese
        return str(err["msg"])
    return f"输入无效（{kind}）"


def _en_message(err: Any) -> str:
    ctx = err.get("ctx") or {}
    return str(ctx["en"]) if "en" in ctx else str(err["msg"])


def _field(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] in CORE_TYPES:
        parts = parts[1:]  # the union's tag, not a field of the input
    if parts and parts[-1] in ("function-after", "function-before"):
        parts = parts[:-1]
    return ".".join(str(p) for p in parts) or "(申请书)"


def describe(exc: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into field errors, one per problem."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        field = _field(err["loc"])
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field = "type"  # the discriminator of the application types
        out.append(FieldError(field, err["type"], _zh_message(err), _en_message(err)))
    return out


def parse_application(data: Any, *, today: date) -> Application:
    """Validate raw input into an application, or raise InvalidApplication naming every field."""
    if not isinstance(data, dict):
        raise InvalidApplication(
            [FieldError("(申请书)", "model_type", "申请书须为JSON对象", "must be a JSON object")]
        )
    tag = data.get("type")
    schema = schema_for(tag) if isinstance(tag, str) and tag not in CORE_TYPES else None
    try:
        if schema is not None:  # a configured type: its own model, no union to dispatch
            app: Application = schema.model_validate(data)
        else:
            app = APPLICATION_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise InvalidApplication(describe(exc)) from None
    if app.application_date is not None and app.application_date > today:
        raise InvalidApplication(
            [
                FieldError(
                    "application_date",
                    "date.future",
                    f"申请日期不得晚于今天（{today.isoformat()}）",
                    f"the filing date cannot be after today ({today})",
                )
            ]
        )
    return app
