from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elspeth.security import LevelParseError, SecurityLevel, join, join_all

levels = st.sampled_from(list(SecurityLevel))


def test_order_is_the_documented_lattice() -> None:
    assert list(SecurityLevel) == sorted(SecurityLevel)
    assert (
        SecurityLevel.UNOFFICIAL
        < SecurityLevel.OFFICIAL
        < SecurityLevel.OFFICIAL_SENSITIVE
        < SecurityLevel.PROTECTED
        < SecurityLevel.SECRET
    )


@given(levels, levels)
def test_join_is_commutative(a: SecurityLevel, b: SecurityLevel) -> None:
    assert join(a, b) == join(b, a)


@given(levels, levels, levels)
def test_join_is_associative(a: SecurityLevel, b: SecurityLevel, c: SecurityLevel) -> None:
    assert join(join(a, b), c) == join(a, join(b, c))


@given(levels)
def test_join_is_idempotent(a: SecurityLevel) -> None:
    assert join(a, a) == a


@given(st.lists(levels, min_size=1, max_size=8))
def test_join_is_at_least_every_input(inputs: list[SecurityLevel]) -> None:
    joined = join_all(inputs)
    assert all(joined >= level for level in inputs)
    assert joined in inputs


@given(levels)
def test_parse_round_trips_through_name_and_rank(level: SecurityLevel) -> None:
    assert SecurityLevel.parse(str(level)) is level
    assert SecurityLevel.parse(level.name.lower()) is level
    assert SecurityLevel.from_rank(level.rank) is level


@pytest.mark.parametrize(
    "spelling",
    [
        "OFFICIAL: SENSITIVE",
        "official_sensitive",
        "Official-Sensitive",
        "OFFICIAL SENSITIVE",
        "  official:sensitive  ",
    ],
)
def test_usual_spellings_parse(spelling: str) -> None:
    assert SecurityLevel.parse(spelling) is SecurityLevel.OFFICIAL_SENSITIVE


@pytest.mark.parametrize(
    "text", ["", "   ", "::", "TOP SECRET", "confidential", "OFFICIALSENSITIVE"]
)
def test_empty_or_unknown_levels_are_errors_naming_the_accepted_values(text: str) -> None:
    with pytest.raises(LevelParseError) as caught:
        SecurityLevel.parse(text)
    message = str(caught.value)
    assert "UNOFFICIAL, OFFICIAL, OFFICIAL_SENSITIVE, PROTECTED, SECRET" in message


@pytest.mark.parametrize("value", [None, 3, 2.0, b"SECRET"])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(LevelParseError, match="must be a string"):
        SecurityLevel.parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("rank", [-1, 5, True])
def test_unknown_ranks_are_refused(rank: int) -> None:
    with pytest.raises(LevelParseError):
        SecurityLevel.from_rank(rank)


def test_join_all_refuses_to_invent_a_default() -> None:
    with pytest.raises(ValueError, match="no default level"):
        join_all([])


def test_levels_have_no_arithmetic() -> None:
    with pytest.raises(TypeError):
        SecurityLevel.OFFICIAL + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        assert SecurityLevel.OFFICIAL < 2  # type: ignore[operator]
