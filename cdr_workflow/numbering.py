"""Where a dialled number goes, by the international numbering plan (Google's libphonenumber
metadata through `phonenumbers`): country calling code, region and number type."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

PREFIX_CHARS = 5  # "+" and 4 digits: the country code and the first digits of its ranges
HIGH_COST_TYPES = frozenset({"premium_rate", "shared_cost", "uan", "personal_number"})
_TYPE_NAMES = {value: name.lower() for name, value in vars(phonenumbers.PhoneNumberType).items()
               if isinstance(value, int)}


@dataclass(frozen=True)
class Destination:
    country_code: str  # "+44", or "unknown"
    region: str  # "GB"; "001" for non-geographic codes; "unknown"
    number_type: str  # "mobile", "premium_rate", …, "unknown"

    @property
    def high_cost(self) -> bool:
        return self.number_type in HIGH_COST_TYPES


UNKNOWN = Destination("unknown", "unknown", "unknown")


def destination(number: str | None) -> Destination:
    """The destination of a number in international form; numbers of one range (the same first
    digits) are looked up once."""
    prefix = number[:PREFIX_CHARS] if number else ""
    found = _RANGES.get(prefix)
    if found is None:
        if len(_RANGES) > MAX_RANGES:
            _RANGES.clear()
        found = _RANGES[prefix] = _look_up(number or "")
    return found


_RANGES: dict[str, Destination] = {}
MAX_RANGES = 200_000


def _look_up(example: str) -> Destination:
    if not example.startswith("+"):
        return UNKNOWN
    try:
        parsed = phonenumbers.parse(example, None)
    except phonenumbers.NumberParseException:
        return UNKNOWN
    region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return Destination(f"+{parsed.country_code}",
                       region if region != phonenumbers.UNKNOWN_REGION else "unknown",
                       _TYPE_NAMES.get(phonenumbers.number_type(parsed), "unknown"))
