import pytest

LEAKS = []


@pytest.mark.limit_memory("5 MB")
def test_over():
    data = bytearray(8_000_000)
    assert len(data) == 8_000_000


@pytest.mark.limit_memory("24 MB")
def test_under():
    data = bytearray(1_000_000)
    assert data


@pytest.mark.limit_leaks("1 MB")
def test_leaky():
    LEAKS.append(bytearray(2_000_000))


def test_plain():
    assert sum(range(10)) == 45
