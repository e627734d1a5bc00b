"""API token secrets: a scannable prefix, enough randomness, a checksum that catches lookalikes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seqshare.errors import InvalidInput
from seqshare.services import tokens

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_secret_has_the_prefix_the_pattern_and_a_valid_checksum() -> None:
    secrets = {tokens.new_secret() for _ in range(200)}
    assert len(secrets) == 200
    for secret in secrets:
        assert secret.startswith("seqshare_pat_") and tokens.TOKEN.fullmatch(secret)
        assert tokens.well_formed(secret)


def test_a_changed_character_fails_the_checksum() -> None:
    secret = tokens.new_secret()
    i = len(tokens.PREFIX) + 5
    other = secret[:i] + ("a" if secret[i] != "a" else "b") + secret[i + 1 :]
    assert not tokens.well_formed(other)
    assert not tokens.well_formed(secret + "x") and not tokens.well_formed("ghp_" + secret[13:])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("never", None),
        ("90d", NOW + timedelta(days=90)),
        ("2027-01-01T00:00:00Z", datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_expiry_forms(text: str | None, expected: datetime | None) -> None:
    assert tokens.parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["0d", "soon", "2026-05-01T00:00:00Z", "2027-01-01T00:00:00", "-3d"])
def test_bad_expiries_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        tokens.parse_expiry(text, NOW)
    assert "\n" not in str(refused.value)
