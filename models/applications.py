"""申请书 — the input schema of each application type (pure pydantic, no database).

The shapes follow shared/domain/scenarios.yaml so that an example there reads as an application
here. Money fields take numbers or numeric strings and become Decimal; floats are not needed.
`type` selects the application type.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from base.identifiers import validate_registration_no, validate_uscc

Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


class CaseType(StrEnum):
    """申请类型 — one state machine each."""

    RENT_STATE_PROPERTY = "rent_state_property"  # 国有房屋租金减免
    RENT_INCUBATOR_SUBSIDY = "rent_incubator_subsidy"  # 科技型孵化器减免房租补贴
    RENT_PARK_SUBSIDY = "rent_park_subsidy"  # 文化产业园区、商务楼宇减免租金补贴
    CREDIT_EXEMPTION = "credit_exemption"  # 信用豁免
    LICENCE_EXTENSION = "licence_extension"  # 许可证有效期顺延
    LOAN_SUBSIDY = "loan_subsidy"  # 贷款贴息和担保费补贴


class ApplicantKind(StrEnum):
    """主体类型."""

    ENTERPRISE = "enterprise"  # 企业
    INDIVIDUAL_BUSINESS = "individual_business"  # 个体工商户
    TECH_INCUBATOR = "tech_incubator"  # 科技型孵化器（企业）


class EnterpriseSize(StrEnum):
    """企业规模."""

    LARGE = "large"  # 大型
    MEDIUM = "medium"  # 中型
    SMALL = "small"  # 小型
    MICRO = "micro"  # 微型


BOT_SCHEMES = ("wecombot://", "dingtalk://", "feishu://", "lark://")
BOT_HOSTS = {"qyapi.weixin.qq.com", "oapi.dingtalk.com", "open.feishu.cn", "open.larksuite.com"}


def bot_url_allowed(url: str) -> bool:
    from urllib.parse import urlsplit

    if url.lower().startswith(BOT_SCHEMES):
        return "@" not in url.split("://", 1)[1].split("/", 1)[0]  # no host of one's own
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.hostname in BOT_HOSTS and parts.port in (None, 443)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """No text field may hold a NUL (PostgreSQL cannot store it; no one means to send it)."""
        if isinstance(value, str) and "\x00" in value:
            raise PydanticCustomError(
                "string.nul", "不能包含空字符（NUL）", {"en": "must not contain a NUL character"}
            )
        return value


class Party(Strict):
    """申请人 — identified by USCC, or a legacy 15-digit 注册号 for an individual business."""

    uscc: str | None = Field(default=None, description="统一社会信用代码 (GB 32100-2015)")
    registration_no: str | None = Field(
        default=None, description="个体工商户 legacy 15-digit 注册号 (before 2016-12-01)"
    )
    name: str = Field(default="", max_length=200, description="名称或字号")
    operator_name: str | None = Field(
        default=None, max_length=200, description="经营者 (individual business)"
    )
    kind: ApplicantKind = ApplicantKind.ENTERPRISE
    size: EnterpriseSize | None = None
    email: str | None = Field(default=None, max_length=200, description="通知邮箱 (e-mail)")
    phone: str | None = Field(default=None, max_length=40, description="手机号 (SMS gateway)")
    notify: list[Literal["email", "sms", "wecom", "dingtalk", "feishu"]] | None = Field(
        default=None,
        description="channels for notices; default: e-mail if an address is given. Every "
        "notice is also on the status page.",
    )
    im_url: str | None = Field(
        default=None,
        max_length=500,
        description="the applicant's WeCom/DingTalk/Feishu group bot: wecombot://, dingtalk://, "
        "feishu:// or lark:// (apprise), or https:// on the vendor's own webhook host",
    )

    @field_validator("uscc")
    @classmethod
    def _uscc(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.upper()
        problem = validate_uscc(v)
        if problem:
            raise PydanticCustomError(problem.code, problem.zh, {"en": problem.en})
        return v

    @field_validator("im_url")
    @classmethod
    def _bot(cls, v: str | None) -> str | None:
        """Only the vendors' bots: relief must never be made to call an address of the
        applicant's choosing (an internal service, say) with a notice and its query code."""
        if v is None or bot_url_allowed(v):
            return v
        raise PydanticCustomError(
            "im_url.host",
            "群机器人地址只能是企业微信、钉钉或飞书的官方机器人地址（wecombot://、dingtalk://、"
            "feishu://，或其官方 https 地址）",
            {"en": "only WeCom, DingTalk or Feishu bot URLs are accepted"},
        )

    @field_validator("registration_no")
    @classmethod
    def _regno(cls, v: str | None) -> str | None:
        if v is None:
            return v
        problem = validate_registration_no(v)
        if problem:
            raise PydanticCustomError(problem.code, problem.zh, {"en": problem.en})
        return v

    @model_validator(mode="after")
    def _identified(self) -> Party:
        if self.uscc is None and self.registration_no is None:
            raise PydanticCustomError(
                "identity.missing",
                "缺少统一社会信用代码（个体工商户可填写15位注册号）",
                {"en": "a USCC is required (an individual business may give its 15-digit number)"},
            )
        if self.registration_no and self.kind != ApplicantKind.INDIVIDUAL_BUSINESS:
            raise PydanticCustomError(
                "identity.regno_kind",
                "只有个体工商户可以使用15位注册号，企业须填写统一社会信用代码",
                {"en": "only an individual business may use a 15-digit registration number"},
            )
        return self

    @property
    def identity(self) -> str:
        """The key an applicant is known by: USCC, else `REG:` + registration number."""
        return self.uscc if self.uscc else f"REG:{self.registration_no}"


Channel = Literal["email", "sms", "wecom", "dingtalk", "feishu"]
CHANNEL_ADDRESS = {"email": "email", "sms": "phone", "wecom": "im_url", "dingtalk": "im_url",
                   "feishu": "im_url"}  # fmt: skip


class ContactDetails(Strict):
    """联系方式 — where an applicant's notices go; changed by the applicant (or an operator)."""

    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    notify: list[Channel] = Field(default_factory=list, max_length=5)
    im_url: str | None = Field(default=None, max_length=500)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if not v:
            return None
        local, at, domain = v.partition("@")
        if not at or not local or "." not in domain or any(c.isspace() for c in v):
            raise PydanticCustomError(
                "email.format", "邮箱地址格式不正确", {"en": "not an e-mail address"}
            )
        return v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if not v:
            return None
        digits = v.replace(" ", "").replace("-", "")
        if not (digits.lstrip("+").isdigit() and 7 <= len(digits.lstrip("+")) <= 15):
            raise PydanticCustomError(
                "phone.format", "手机号应为7至15位数字", {"en": "7 to 15 digits"}
            )
        return digits

    @field_validator("im_url")
    @classmethod
    def _bot(cls, v: str | None) -> str | None:
        if not v:
            return None
        if bot_url_allowed(v):
            return v
        raise PydanticCustomError(
            "im_url.host",
            "群机器人地址只能是企业微信、钉钉或飞书的官方机器人地址",
            {"en": "only WeCom, DingTalk or Feishu bot URLs are accepted"},
        )

    @model_validator(mode="after")
    def _addressed(self) -> ContactDetails:
        self.notify = list(dict.fromkeys(self.notify))
        for channel in self.notify:
            if not getattr(self, CHANNEL_ADDRESS[channel]):
                what = {"email": "邮箱", "phone": "手机号", "im_url": "群机器人地址"}
                raise PydanticCustomError(
                    "notify.address",
                    f"选择了该通知方式，须填写{what[CHANNEL_ADDRESS[channel]]}",
                    {"en": f"{channel} needs {CHANNEL_ADDRESS[channel]}"},
                )
        return self


class Prior7Declaration(Strict):
    """申报已享受东政办发〔2022〕7号的同类政策."""

    same_lease: bool = False
    same_loan: bool = False
    months_granted: int | None = Field(default=None, ge=0, le=12)


Enjoyed7 = bool | Prior7Declaration


class Application(Strict):
    type: CaseType
    application_date: date | None = Field(
        default=None,
        description="申请书落款日期: the date written on the application, kept as stated. It "
        "is not the filing date: relief stamps the filing date when it receives the "
        "application (a paper application's earlier receipt is recorded by an intake officer, "
        "补录). `relief estimate` reads it as the date to estimate for.",
    )


# ---------------------------------------------------------------- rent, state-owned property
OwnerCategory = Literal[
    "district_SOE",
    "district_admin_institution",
    "central_SOE",
    "municipal_state",
    "collective",
    "non_state",
]


class Tenant(Party):
    service_industry: bool = Field(description="服务业")
    registered_in_beijing: bool = Field(default=False, description="在京注册")
    pays_tax_in_beijing: bool = Field(default=False, description="在京纳税")
    chain_type: Literal["supermarket", "convenience_store", "catering"] | None = Field(
        default=None, description="连锁超市/便利店/餐饮企业"
    )


class Lease(Strict):
    lease_id: str | None = Field(default=None, max_length=60, description="租赁合同编号")
    landlord: str = Field(default="", max_length=200, description="出租方名称")
    owner_category: OwnerCategory = Field(description="出租房屋产权类别")
    in_beijing: bool = Field(description="房屋位于北京市内")
    monthly_rent: Money = Field(description="月租金（元）")
    covers_2022: bool = Field(description="租期覆盖2022年")
    months_in_2022: int | None = Field(default=None, ge=0, le=12, description="2022年内租期月数")
    final_operator: bool = Field(default=True, description="申请人为最终承租经营人")


class StoreLease(Lease):
    store_id: str = Field(min_length=1, max_length=60, description="门店编号")
    small_or_micro_at_store_level: bool = Field(description="门店为小微企业（按门店判断）")
    risk_area: bool = Field(default=False, description="门店所在地被列为疫情中高风险地区")


class RentStatePropertyApplication(Application):
    """国有房屋租金减免 (measure 3): one lease, or a chain's stores (one case per store)."""

    type: Literal[CaseType.RENT_STATE_PROPERTY]
    applicant: Tenant
    lease: Lease | None = None
    stores: list[StoreLease] | None = Field(default=None, min_length=1, max_length=100)
    property_location_listed_medium_high_risk: bool = False
    enjoyed_under_7: Enjoyed7 = False

    @model_validator(mode="after")
    def _one_of_lease_or_stores(self) -> RentStatePropertyApplication:
        if (self.lease is None) == (self.stores is None):
            raise PydanticCustomError(
                "lease.one_of",
                "须填写租赁信息（lease），连锁企业按门店填写（stores），二者填且只填一项",
                {"en": "give either `lease` or, for a chain, `stores`, not both"},
            )
        if self.stores is not None:
            ids = [s.store_id for s in self.stores]
            if len(set(ids)) != len(ids):
                raise PydanticCustomError(
                    "stores.duplicate_id", "门店编号重复", {"en": "store ids must be unique"}
                )
        return self


# ---------------------------------------------------------------- rent, incubators
class Incubator(Party):
    leases_non_state_property: bool = Field(description="承租非国有房屋")
    management_scope: Literal["zgc_dongcheng", "stic"] = Field(
        description="管理范围: zgc_dongcheng 东城园管委会 / stic 区科技和信息化局"
    )

    @field_validator("management_scope", mode="before")
    @classmethod
    def _scope_alias(cls, v: Any) -> Any:
        aliases = {"东城园管委会": "zgc_dongcheng", "区科信局": "stic", "区科技和信息化局": "stic"}
        return aliases.get(v, v) if isinstance(v, str) else v


class TenantReduction(Strict):
    tenant_uscc: str | None = Field(default=None, max_length=40)
    tenant_name: str = Field(default="", max_length=200)
    tenant_kind: ApplicantKind = ApplicantKind.ENTERPRISE
    tenant_size: EnterpriseSize | None = None
    amount: Money = Field(description="减免租金（元）")
    confirmed: bool = Field(default=False, description="经确认")

    @model_validator(mode="after")
    def _size_known(self) -> TenantReduction:
        if self.tenant_kind != ApplicantKind.INDIVIDUAL_BUSINESS and self.tenant_size is None:
            raise PydanticCustomError(
                "tenant_size.missing",
                "企业承租人须填写企业规模（tenant_size）",
                {"en": "tenant_size is required unless the tenant is an individual business"},
            )
        return self


class IncubatorSubsidyApplication(Application):
    """科技型孵化器减免房租补贴 (measure 3)."""

    type: Literal[CaseType.RENT_INCUBATOR_SUBSIDY]
    applicant: Incubator
    reductions: list[TenantReduction] = Field(min_length=1, max_length=1000)
    enjoyed_under_7: Enjoyed7 = False


# ---------------------------------------------------------------- rent, parks and buildings
class Property(Strict):
    property_id: str | None = Field(
        default=None, max_length=120, description="园区/楼宇名称或编号（封顶按此计）"
    )
    type: Literal["municipal_cultural_industry_park", "commercial_building"]
    state_owned: bool
    district: str | None = Field(default=None, max_length=40)
    in_zgc_dongcheng_park: bool = False
    municipal_cultural_park: bool | None = None


class PropertyHolder(Party):
    role: Literal["owner", "operator"] = Field(description="产权单位 / 运营单位")
    property: Property


class ParkSubsidyApplication(Application):
    """非国有产权文化产业园区、商务楼宇减免租金补贴 (measure 3)."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal[CaseType.RENT_PARK_SUBSIDY]
    applicant: PropertyHolder
    confirmed_total_reduced: Money = Field(description="减免租金总额（元）")
    prior_subsidy_for_this_property: Money = Field(
        default=Decimal(0),
        description="本园区/楼宇此前已获补贴（元）",
        validation_alias=None,
    )
    enjoyed_under_7: Enjoyed7 = False

    @model_validator(mode="before")
    @classmethod
    def _prior_aliases(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for alias in ("prior_subsidy_for_this_park", "prior_subsidy_for_this_building"):
                if alias in data:
                    data = dict(data)
                    data.setdefault("prior_subsidy_for_this_property", data.pop(alias))
        return data


# ---------------------------------------------------------------- credit exemption
class Penalty(Strict):
    decision_no: str | None = Field(default=None, max_length=100, description="处罚决定书文号")
    decided: date = Field(description="处罚决定日期")
    publicised: bool = Field(description="已被公示")
    caused_by_epidemic: bool = Field(description="因疫情影响导致（申请人主张）")
    causation_evidence: str = Field(default="", max_length=2000)
    imposed_by: str | None = Field(default=None, max_length=200)


class CreditExemptionApplication(Application):
    """信用豁免申请 (measure 9)."""

    type: Literal[CaseType.CREDIT_EXEMPTION]
    applicant: Party
    penalty: Penalty


# ---------------------------------------------------------------- licence extension
class Licence(Strict):
    licence_no: str | None = Field(default=None, max_length=60)
    type: Literal["food_production", "food_business"] = Field(
        description="食品生产许可证 (food_production) / 食品经营许可证 (food_business)"
    )
    special_food: bool = Field(default=False, description="特殊食品")
    expiry: date = Field(description="原有效期届满日")
    business_category: Literal["catering", "circulation"] | None = Field(
        default=None, description="经营类别: catering 餐饮 / circulation 食品流通"
    )

    @field_validator("type", mode="before")
    @classmethod
    def _type_alias(cls, v: Any) -> Any:
        aliases = {"食品生产许可证": "food_production", "食品经营许可证": "food_business"}
        return aliases.get(v, v) if isinstance(v, str) else v


class LicenceExtensionApplication(Application):
    """食品许可证有效期顺延 (measure 9); also made by the authority ex officio."""

    type: Literal[CaseType.LICENCE_EXTENSION]
    licensee: Party
    licence: Licence
    in_lockdown_area: bool = Field(default=False, description="位于封管控区")
    could_not_renew_in_time: bool = Field(default=False, description="无法及时换发")
    lockdown_lift_date: date | None = Field(default=None, description="封管控解除日期")
    valid_beijing_lockdown_document: bool = Field(
        default=False, description="有效的北京市封管控文件"
    )

    @model_validator(mode="after")
    def _lift_after_expiry_context(self) -> LicenceExtensionApplication:
        if self.lockdown_lift_date is not None and not self.in_lockdown_area:
            raise PydanticCustomError(
                "lockdown_lift_date.without_lockdown",
                "未位于封管控区时不应填写封管控解除日期",
                {"en": "lockdown_lift_date given but in_lockdown_area is false"},
            )
        return self


# ---------------------------------------------------------------- loans
class Loan(Strict):
    loan_id: str | None = Field(default=None, max_length=60)
    lender: str = Field(default="", max_length=200)
    lender_in_district: bool = Field(description="驻区金融机构")
    drawdown: date = Field(description="放款日期")
    principal: Money = Field(gt=0, description="贷款本金（元）")


class LoanSubsidyApplication(Application):
    """贷款贴息和担保费补贴 (measure 5)."""

    type: Literal[CaseType.LOAN_SUBSIDY]
    applicant: Party
    loans: list[Loan] = Field(min_length=1, max_length=50)
    eligible_interest: Money = Field(default=Decimal(0), description="应付利息（元）")
    guarantee_fee_paid: Money = Field(default=Decimal(0), description="已付担保费（元）")
    enjoyed_under_7: Enjoyed7 = False


AnyApplication = Annotated[
    RentStatePropertyApplication
    | IncubatorSubsidyApplication
    | ParkSubsidyApplication
    | CreditExemptionApplication
    | LicenceExtensionApplication
    | LoanSubsidyApplication,
    Field(discriminator="type"),
]

APPLICATION_ADAPTER: TypeAdapter[AnyApplication] = TypeAdapter(AnyApplication)

SCHEMAS: dict[CaseType, type[Application]] = {
    CaseType.RENT_STATE_PROPERTY: RentStatePropertyApplication,
    CaseType.RENT_INCUBATOR_SUBSIDY: IncubatorSubsidyApplication,
    CaseType.RENT_PARK_SUBSIDY: ParkSubsidyApplication,
    CaseType.CREDIT_EXEMPTION: CreditExemptionApplication,
    CaseType.LICENCE_EXTENSION: LicenceExtensionApplication,
    CaseType.LOAN_SUBSIDY: LoanSubsidyApplication,
}


# ---------------------------------------------------------------- configured types
class ConfiguredApplication(Application):
    """An application of a type declared in the policy edition (states/configured_types.py):
    the applicant and the declared facts, flat beside it."""

    type: str  # type: ignore[assignment]  # the declared code, not a core CaseType
    applicant: Party


ConfiguredLookup = Callable[[str], "type[Application] | None"]
ConfiguredCodes = Callable[[], list[str]]
_configured: list[tuple[ConfiguredLookup, ConfiguredCodes]] = []


def provide_configured_schemas(lookup: ConfiguredLookup, codes: ConfiguredCodes) -> None:
    """The catalog (states/, above this layer) tells the parser where configured types live:
    a lookup of one type's schema (built when first asked) and the list of their codes."""
    if (lookup, codes) not in _configured:
        _configured.append((lookup, codes))


def schema_for(case_type: str) -> type[Application] | None:
    """The schema of a core or configured type; None for a code no edition carries."""
    if case_type in CORE_TYPES:
        return SCHEMAS[CaseType(case_type)]
    for lookup, _ in _configured:
        found = lookup(case_type)
        if found is not None:
            return found
    return None


def type_codes() -> list[str]:
    """Every type an application may name: core, then configured."""
    extra = [c for _, codes in _configured for c in codes() if c not in CORE_TYPES]
    return [*(t.value for t in CaseType), *extra]


CORE_TYPES = frozenset(t.value for t in CaseType)


def applicant_of(app: Application) -> Party:
    """The party an application is filed by."""
    for attr in ("applicant", "licensee"):
        party = getattr(app, attr, None)
        if isinstance(party, Party):
            return party
    raise TypeError(f"{type(app).__name__} has no applicant")


def identity_in(facts: dict[str, Any]) -> str:
    """The applicant's identity in stored facts (as Party.identity computes it)."""
    party = facts.get("applicant") or facts.get("licensee") or {}
    return str(party.get("uscc") or f"REG:{party.get('registration_no')}")
