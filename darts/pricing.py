"""What a DARTS network costs: its evaluation network through :func:`hwmodel.costing.price`.

``hwcost estimate``, the search's summary, the train and evaluate reports and sweeps all ask
this one question of a genotype, with the same meaning of a forced multiplier: ``multiplier``
given replaces every multiplier of the network, the genotype's per-edge choices included
(it is what ``hwcost train --multiplier`` trains and ``hwcost evaluate --multiplier`` swaps
in); ``multiplier`` left out prices the genotype as it is, each edge with its own multiplier
and every other layer with the genotype's network-wide one (``exact8u`` when it has none).
"""

from __future__ import annotations

from typing import Any

from hwmodel.costing import CostContext, NetworkCost, price

from .cellgraph import NetworkConfig, list_layers
from .genotype import Genotype

#: the multiplier of a genotype that names none (what ``hwcost train`` builds it with)
DEFAULT_MULTIPLIER = "exact8u"


def network_arithmetic(genotype: Genotype, multiplier: Any = None) -> Any:
    """The arithmetic that prices the layers no edge choice covers."""
    return multiplier if multiplier is not None else genotype.multiplier or DEFAULT_MULTIPLIER


def price_network(genotype: Genotype, config: NetworkConfig, context: CostContext,
                  multiplier: Any = None) -> NetworkCost:
    """``genotype``'s evaluation network (``config``) priced in ``context``; ``multiplier``
    (a name or an arithmetic), when given, replaces every multiplier of the network."""
    per_edge = "keep" if multiplier is None else "override"
    return price(list_layers(genotype, config), network_arithmetic(genotype, multiplier),
                 context, per_edge)
