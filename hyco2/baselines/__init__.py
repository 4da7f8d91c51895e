"""Hard-selection methods by name (the peers). Each reads the frozen backbone through a ContextEncoder,
not the compressor facade, so the compressor imports this package and nothing imports back."""
from __future__ import annotations

from ..errors import InvalidSettingError
from ..selection import Selector
from .llmlingua import LLMLingua
from .longllmlingua import LongLLMLingua
from .mig import MIGSelector
from .selective_context import SelectiveContext
from .simple import RandomDrop, Truncate

_REGISTRY: dict[str, type] = {
    cls.name: cls for cls in (Truncate, RandomDrop, SelectiveContext, LLMLingua, LongLLMLingua, MIGSelector)
}


def register(cls: type) -> type:
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Every method name the compressor accepts, HyCo2 first."""
    return ["hyco2", *_REGISTRY]


def get_selector(name: str) -> Selector:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise InvalidSettingError(
            f"Unknown method {name!r}; choose one of: {', '.join(available_methods())}."
        ) from None


__all__ = ["available_methods", "get_selector", "register"]
