"""ISO 4217 minor units and the per-source currency policy: which currencies earn, at what rate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from integrations.errors import UnsupportedCurrencyError
from shared.events.model import Currency, FxConversion

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD "
    "CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD "
    "HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD "
    "MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON "
    "RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD "
    "TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWG"
)
# Digits after the decimal point, per ISO 4217. Square's amounts are integers in these units.
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO.split(), 2),
    **dict.fromkeys(_ZERO.split(), 0),
    **dict.fromkeys(_THREE.split(), 3),
    **dict.fromkeys(_FOUR.split(), 4),
}

Rate = Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=10)]


def exponent(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise UnsupportedCurrencyError(f"{currency!r} is not an ISO 4217 currency code", currency=currency) from None


def from_minor_units(amount: int, currency: str) -> Decimal:
    return Decimal(amount).scaleb(-exponent(currency))


class CurrencyPolicy(BaseModel):
    """The program's currency and the explicit rates that let other currencies earn.

    A rate is how many program-currency units one unit of the foreign currency is worth. There is
    no rate lookup on purpose: an adapter is pure, and a rate nobody configured is a guess.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    program_currency: Currency
    rates: dict[Currency, Rate] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_codes(self) -> CurrencyPolicy:
        # A typo in configuration should fail when it is loaded, not on the first order.
        unknown = sorted({self.program_currency, *self.rates} - MINOR_UNITS.keys())
        if unknown:
            raise ValueError(f"not ISO 4217 currency codes: {', '.join(unknown)}")
        return self

    def converter(self, currency: str) -> Converter:
        exponent(currency)  # unknown codes fail here with their own reason
        target_places = exponent(self.program_currency)
        if currency == self.program_currency:
            return Converter(currency, Decimal(1), target_places, converted=False)
        rate = self.rates.get(currency)
        if rate is None:
            raise UnsupportedCurrencyError(
                f"amounts are in {currency} but the program earns in {self.program_currency} "
                f"and no {currency}->{self.program_currency} rate is configured",
                currency=currency,
                program_currency=self.program_currency,
            )
        return Converter(currency, rate, target_places, converted=True)


@dataclass(frozen=True)
class Converter:
    source_currency: str
    rate: Decimal
    target_places: int
    converted: bool

    def __call__(self, amount: Decimal) -> Decimal:
        if not self.converted:
            return amount
        # Half-up to the program currency's minor unit: what a till would print.
        return (amount * self.rate).quantize(Decimal(1).scaleb(-self.target_places), ROUND_HALF_UP)

    def record(self, original_amount: Decimal) -> FxConversion | None:
        if not self.converted:
            return None
        return FxConversion(original_currency=self.source_currency, original_amount=original_amount, rate=self.rate)
