from __future__ import annotations

import pickle

import orjson
import pytest

from connectors.source.postgres.lsn import MAX_LSN, Lsn


def test_parses_postgres_text_form() -> None:
    assert Lsn.parse("16/B374D848") == 0x16_B374D848
    assert Lsn("0/0") == 0


def test_prints_as_postgres_does() -> None:
    assert str(Lsn(0x16_B374D848)) == "16/B374D848"
    assert str(Lsn(0)) == "0/0"
    assert f"{Lsn(0x1_00000001)}" == "1/1"


def test_round_trips_through_text_and_json() -> None:
    for value in (0, 1, 0xFFFFFFFF, 0x1_00000000, MAX_LSN):
        lsn = Lsn(value)
        assert Lsn.parse(str(lsn)) == lsn
        assert orjson.loads(orjson.dumps({"lsn": lsn}))["lsn"] == value
        assert pickle.loads(pickle.dumps(lsn)) == lsn


def test_orders_like_positions() -> None:
    assert Lsn.parse("1/0") > Lsn.parse("0/FFFFFFFF")
    assert sorted([Lsn(5), Lsn(2), Lsn(9)]) == [2, 5, 9]


@pytest.mark.parametrize("bad", ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0"])
def test_rejects_malformed_text_with_the_expected_form(bad: str) -> None:
    with pytest.raises(ValueError, match="16/B374D848"):
        Lsn.parse(bad)


@pytest.mark.parametrize("bad", [-1, MAX_LSN + 1])
def test_rejects_numbers_outside_64_bits(bad: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        Lsn(bad)
