import pytest

from api.claim.brn import check_digit, normalize


@pytest.mark.parametrize("raw", ["220-81-62517", "2208162517", " 124-81-00998 "])
def test_valid_numbers_normalize_to_ten_digits(raw: str) -> None:
    assert normalize(raw) == raw.strip().replace("-", "")


def test_a_typo_fails_the_check_digit() -> None:
    with pytest.raises(ValueError, match="check digit"):
        normalize("220-81-62518")


@pytest.mark.parametrize("raw", ["220-81-6251", "22O-81-62517", "220/81/62517", ""])
def test_the_format_is_checked_first(raw: str) -> None:
    with pytest.raises(ValueError, match="10 digits"):
        normalize(raw)


def test_check_digit_matches_a_known_number() -> None:
    assert check_digit("220816251") == 7
