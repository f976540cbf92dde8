"""A behaviour plugin (process tier) that overreaches: effect `gossip` tries
to write a session flag, but the manifest grants only `group:behavior`, which
has no `session:write`. The host refuses with an error naming the permission,
the effect is skipped, and the plugin's denial is counted."""

import polis_plugin


def register(params):
    return {"effects": [{"name": "gossip", "description": "remembers who was talked about"}]}


def apply_effect(request):
    polis_plugin.call_host("session.set_flag", {"key": "plugin:example.nosy:heard", "value": request["npc_id"]})
    return {}


if __name__ == "__main__":
    polis_plugin.serve(None, methods={"register": register, "apply_effect": apply_effect})
