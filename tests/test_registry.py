from dataclasses import dataclass

import pytest

from mmdx.errors import MmdxError
from mmdx.registry import Registry


@dataclass(frozen=True)
class _Spec:
    name: str
    value: int = 0


def test_registry_keeps_order_and_finds_by_name():
    reg: Registry[_Spec] = Registry("widget")
    for i, name in enumerate(["b", "a", "c"]):
        reg.register(_Spec(name, i))
    assert reg.names() == ["b", "a", "c"]
    assert [s.value for s in reg.specs()] == [0, 1, 2]
    assert reg.get("a").value == 1
    assert "c" in reg and "z" not in reg
    assert len(reg) == 3


def test_unknown_name_suggests_and_lists_choices():
    reg: Registry[_Spec] = Registry("fusion")
    reg.register(_Spec("concat"))
    reg.register(_Spec("gated_attention"))
    with pytest.raises(MmdxError, match=r"unknown fusion 'gated_atention'; did you mean 'gated_attention'\?"):
        reg.get("gated_atention")


def test_duplicate_registration_is_refused():
    reg: Registry[_Spec] = Registry("widget")
    reg.register(_Spec("a"))
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(_Spec("a", 2))
