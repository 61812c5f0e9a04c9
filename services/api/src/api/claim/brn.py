"""Korean business registration numbers (사업자등록번호): ``123-45-67890``, with a check digit."""

from __future__ import annotations

import re

_WEIGHTS = (1, 3, 7, 1, 3, 7, 1, 3, 5)
_FORMAT = re.compile(r"^\d{3}-?\d{2}-?\d{5}$")


def check_digit(first_nine: str) -> int:
    digits = [int(c) for c in first_nine]
    total = sum(d * w for d, w in zip(digits, _WEIGHTS, strict=True))
    total += digits[8] * 5 // 10
    return (10 - total % 10) % 10


def normalize(raw: str) -> str:
    """The ten digits of a valid number; raises ValueError saying what is wrong."""
    value = raw.strip()
    if not _FORMAT.match(value):
        raise ValueError("a business registration number has 10 digits: 123-45-67890")
    digits = value.replace("-", "")
    if check_digit(digits[:9]) != int(digits[9]):
        raise ValueError("the check digit does not match: check the number for a typo")
    return digits
