from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from integrations.currency import CurrencyPolicy, from_minor_units
from integrations.errors import UnsupportedCurrencyError


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [(1250, "USD", "12.50"), (1250, "JPY", "1250"), (1250, "BHD", "1.250"), (0, "EUR", "0")],
)
def test_minor_units_scale_by_the_iso_exponent(amount: int, currency: str, expected: str) -> None:
    assert from_minor_units(amount, currency) == Decimal(expected)


def test_conversion_rounds_half_up_to_the_program_currency_and_records_the_original() -> None:
    # Given a JPY program earning from USD at 150.5
    policy = CurrencyPolicy(program_currency="JPY", rates={"USD": Decimal("150.5")})

    # When 10.01 USD is converted
    convert = policy.converter("USD")

    # Then it is 1506.505 rounded half-up to whole yen, and the original is kept
    assert convert(Decimal("10.01")) == Decimal("1507")
    fx = convert.record(Decimal("10.01"))
    assert fx is not None and fx.original_currency == "USD" and fx.rate == Decimal("150.5")


def test_the_program_currency_needs_no_rate_and_records_nothing() -> None:
    convert = CurrencyPolicy(program_currency="EUR").converter("EUR")
    assert convert(Decimal("1.2345")) == Decimal("1.2345") and convert.record(Decimal(1)) is None


def test_unknown_codes_and_missing_rates_are_refused_with_reasons() -> None:
    policy = CurrencyPolicy(program_currency="EUR")
    with pytest.raises(UnsupportedCurrencyError, match="not an ISO 4217"):
        policy.converter("ABC")
    with pytest.raises(UnsupportedCurrencyError, match="no GBP->EUR rate"):
        policy.converter("GBP")


def test_a_policy_with_an_unknown_code_fails_when_loaded() -> None:
    with pytest.raises(ValidationError, match="XYZ"):
        CurrencyPolicy(program_currency="EUR", rates={"XYZ": Decimal("1.1")})
