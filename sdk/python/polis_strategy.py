"""polis strategy SDK for Python (``strategy.v1``, process tier).

A strategy is a class with the seed's four methods; ``serve`` runs it as a
polis process plugin::

    import polis_strategy as ps

    class MyStrategy:
        def validate_params(self, params):      # raise ps.InvalidParams([...]) or return
            self.threshold = params.get("threshold", 1.0)
        def required_features(self):
            return {"close", "rsi_14"}
        def warmup_bars(self):
            return 14
        def on_event(self, fv, ctx):             # fv: FeatureVectorV3, ctx: StrategyContext
            return None or ps.StrategyIntent(...)

    ps.serve(MyStrategy, manifest_path="manifest.json")

polis makes one instance per configured strategy and symbol; the worker
process keeps them all, keyed by the ``instance`` id each request carries,
so an instance's attributes are its state across events. ``fv.values``
holds only features that have a value on this bar. ``ctx.upstream`` lists
the intents an overlay consumes (dicts as the host records them).

Depends only on ``polis_plugin`` (beside this file).
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import polis_plugin


@dataclass(frozen=True)
class FeatureVectorV3:
    symbol: str
    event_ts: str
    timeframe: str
    schema_version: str
    values: dict


@dataclass(frozen=True)
class StrategyContext:
    strategy_id: str
    strategy_type: str
    version: str
    params: dict
    upstream: list = field(default_factory=list)


@dataclass(frozen=True)
class StrategyIntent:
    strategy_id: str
    symbol: str
    direction: str  # long | short | flat
    confidence: float
    target_notional: float
    horizon: str
    rationale: list
    meta: dict


class InvalidParams(Exception):
    """Raise from ``validate_params`` with every reason."""

    def __init__(self, errors):
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def serve(strategy_class, manifest_path="manifest.json", stdin=None, stdout=None):
    """Serves instances of ``strategy_class`` until shutdown."""
    instances = {}

    def instance(params):
        key = params["instance"]
        if key not in instances:
            instances[key] = strategy_class()
        return instances[key]

    def validate_params(params):
        try:
            instance(params).validate_params(params.get("params") or {})
        except InvalidParams as e:
            return {"errors": e.errors}
        return {"errors": []}

    def required_features(params):
        return sorted(instance(params).required_features())

    def warmup_bars(params):
        return int(instance(params).warmup_bars())

    def on_event(params):
        fv = FeatureVectorV3(**params["fv"])
        ctx = StrategyContext(upstream=params.get("upstream") or [], **params["ctx"])
        intent = instance(params).on_event(fv, ctx)
        if intent is None:
            return {"intent": None}
        return {"intent": asdict(intent) if isinstance(intent, StrategyIntent) else intent}

    polis_plugin.serve(None, manifest_path=manifest_path, stdin=stdin, stdout=stdout, methods={
        "validate_params": validate_params,
        "required_features": required_features,
        "warmup_bars": warmup_bars,
        "on_event": on_event,
    })
