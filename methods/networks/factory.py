"""``build_network``: construct a registration network from a name and keyword settings.

The trainer and the method configuration (YAML presets) describe a network as
``{"kind": "unet" | "poolnet", **settings}``; this module turns that into the module, validating
the kind and the setting names so that a typo in a preset fails with a clear message.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from benchmark.core.errors import BenchError
from methods.networks.poolnet import PoolNet
from methods.networks.unet import UNet

#: Network kinds and their classes.
NETWORKS: dict[str, type[nn.Module]] = {"unet": UNet, "poolnet": PoolNet}


def network_settings(kind: str) -> tuple[str, ...]:
    """Keyword settings accepted by the network ``kind`` (besides ``ndim``)."""
    cls = _network_class(kind)
    params = inspect.signature(cls.__init__).parameters
    return tuple(name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def build_network(kind: str, ndim: int = 3, **settings: Any) -> nn.Module:
    """Construct a registration network.

    Parameters
    ----------
    kind : {"unet", "poolnet"}
        :class:`~methods.networks.UNet` (dense field) or :class:`~methods.networks.PoolNet`
        (B-spline control points).
    ndim : {2, 3}
        Number of spatial axes. Default 3.
    **settings
        Keyword arguments of the class, e.g. ``factors=(2, 2, 1)`` for the U-Net or
        ``grid_spacing=(8, 8, 1)`` for PoolNet; ``features``, ``in_channels``, ``seed``, ...

    Returns
    -------
    nn.Module
        ``forward(fixed, moving)`` returns the displacement ``(N, ndim, *spatial)`` in voxels.

    Raises
    ------
    BenchError
        Unknown ``kind`` or setting name (the allowed ones are listed), or an invalid value.
    """
    cls = _network_class(kind)
    allowed = network_settings(kind)
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise BenchError(
            f"unknown setting(s) {', '.join(map(repr, unknown))} for network {kind!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    return cls(ndim, **settings)


def _network_class(kind: str) -> type[nn.Module]:
    if not isinstance(kind, str) or kind not in NETWORKS:
        raise BenchError(
            f"network kind must be one of {', '.join(map(repr, NETWORKS))}, got {kind!r}"
        )
    return NETWORKS[kind]
