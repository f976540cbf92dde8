"""A behaviour plugin (process tier): condition `low_energy` is true when the
NPC's energy is below `params.below` (default 50), read through the host's
`npc.get`; effect `rest` adds `params.amount` (default 5) energy by returning
`changes`, which the host applies only because the manifest grants
`npc:write`."""

import polis_plugin


def register(params):
    return {
        "conditions": [{"name": "low_energy", "description": "energy below `below`"}],
        "effects": [{"name": "rest", "description": "adds `amount` energy", "default_params": {"amount": 5}}],
    }


def evaluate_condition(request):
    npc = polis_plugin.call_host("npc.get", {"npc_id": request["npc_id"]})
    energy = (npc.get("state") or {}).get("energy", 100)
    return {"result": energy < request["params"].get("below", 50)}


def apply_effect(request):
    return {"changes": {"npcs": {request["npc_id"]: {"energy": request["params"]["amount"]}}}}


if __name__ == "__main__":
    polis_plugin.serve(None, methods={
        "register": register,
        "evaluate_condition": evaluate_condition,
        "apply_effect": apply_effect,
    })
