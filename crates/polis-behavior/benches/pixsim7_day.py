"""Drives the original's behaviour code (Sakenfor/pixsim7 at 4315e13,
`pixsim7/backend/main/domain/behavior/`) over the same 1,000-NPC world as
polis's `day` bench: 96 ticks of 900 s, every NPC deciding when its
decision is due and otherwise spending the tick on its activity.

Usage: python3 pixsim7_day.py DIR, where DIR holds the original's
`pixsim7/backend/main/domain/behavior/*.py` and
`pixsim7/backend/main/infrastructure/plugins/behavior_registry.py` from
that commit, empty `__init__.py` files on the way, and a `structlog.py`
stand-in (the registry imports structlog only to log). BENCHMARKS.md
gives the commands. The original has no `roles` requirement, so both its
work activities are open to every NPC here."""
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
from pixsim7.backend.main.domain.behavior import routine_resolver as rr

class Obj:
    def __init__(self, **kw): self.__dict__.update(kw)

def world():
    acts = {
        "sleep": {"id": "sleep", "category": "rest", "effects": {"energyDeltaPerHour": 12}, "minDurationSeconds": 7200},
        "forge": {"id": "forge", "category": "work", "requirements": {"minEnergy": 20}, "effects": {"energyDeltaPerHour": -10}, "minDurationSeconds": 3600},
        "farm": {"id": "farm", "category": "work", "requirements": {"minEnergy": 20}, "effects": {"energyDeltaPerHour": -9}, "minDurationSeconds": 3600},
        "walk": {"id": "walk", "category": "leisure", "effects": {"energyDeltaPerHour": -3, "moodImpact": {"valence": 4}}, "minDurationSeconds": 1800, "cooldownSeconds": 7200},
        "chat": {"id": "chat", "category": "social", "requirements": {"conditions": [{"type": "random_chance", "probability": 0.5}]}, "effects": {"moodImpact": {"valence": 5, "arousal": 5}, "relationshipChanges": {"npc:self": {"affinity": 1}}}, "minDurationSeconds": 1800, "cooldownSeconds": 3600},
    }
    slot = lambda s, e, offers: {"nodeType": "time_slot", "timeRangeSeconds": {"start": s, "end": e}, "preferredActivities": offers}
    routine = {"id": "day", "nodes": [
        slot(79200, 21600, [{"activityId": "sleep"}]),
        slot(21600, 64800, [{"activityId": "forge", "weight": 2}, {"activityId": "farm", "weight": 2}, {"activityId": "walk"}]),
        {"nodeType": "activity", "preferredActivities": [{"activityId": "chat", "weight": 2}, {"activityId": "walk"}, {"activityId": "sleep"}]},
    ]}
    return Obj(id=1, meta={"behavior": {"activities": acts, "routines": {"day": routine}}})

def main():
    random.seed(1)
    w = world()
    npcs = [Obj(id=i, meta={"behavior": {"routineId": "day"}}) for i in range(1000)]
    session = Obj(flags={"npcs": {}}, relationships={})
    decisions = 0
    started = time.perf_counter()
    for tick in range(96):
        now = tick * 900
        w.world_time = now
        for npc in npcs:
            state = session.flags["npcs"].setdefault(f"npc:{npc.id}", {}).setdefault("state", {"energy": 100})
            if now < state.get("nextDecisionAtSeconds", 0):
                activity = w.meta["behavior"]["activities"].get(state.get("currentActivityId"))
                if activity:
                    due = state.get("nextDecisionAtSeconds", 0)
                    rr.apply_activity_to_npc(npc, session, activity, now, 900)
                    session.flags["npcs"][f"npc:{npc.id}"]["state"]["nextDecisionAtSeconds"] = due
                continue
            decisions += 1
            chosen = rr.choose_npc_activity(npc, w, session, now)
            if chosen and chosen["id"] != state.get("currentActivityId"):
                rr.finish_activity(npc, session, now)
                rr.apply_activity_to_npc(npc, session, chosen, now, 0)
            elif chosen:
                rr.apply_activity_to_npc(npc, session, chosen, now, 900)
    took = time.perf_counter() - started
    print(json.dumps({"seconds": round(took, 3), "decisions": decisions, "python": sys.version.split()[0]}))

main()
