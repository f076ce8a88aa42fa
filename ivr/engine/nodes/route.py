"""route: the first rule that matches the call decides; otherwise the default.

A rule on a lookup segment waits for the lookup (at most its time-out); a lookup that
fails counts as "not in the segment", so the caller goes on down the normal path, and the
route event records each lookup's answer (and why one failed) under `lookups`.
"""

from typing import Any

from ivr import events as ev
from ivr.engine.call import Call
from ivr.engine.lookups import ask_guarded
from ivr.flow.nodes.route import Route, RouteRule


async def matches(rule: RouteRule, call: Call, lookups: list[dict[str, Any]]) -> bool:
    if rule.segment is not None:
        if rule.segment.lookup is None:
            return call.caller in rule.segment
        answer = await ask_guarded(call.engine.lookups, rule.segment, call.caller)
        lookups.append(answer.to_event())
        return answer.member
    if rule.var is not None:
        value = call.var_text(rule.var)
        return value is not None and rule.matches is not None and rule.matches.search(value) is not None
    if rule.caller is not None:
        return rule.caller.search(call.caller or "") is not None
    return call.language == rule.language


async def run(node: Route, call: Call):
    lookups: list[dict[str, Any]] = []
    for rule in node.when:
        if await matches(rule, call, lookups):
            call.emit(ev.ROUTE, rule=rule.label, **({"lookups": lookups} if lookups else {}))
            return rule.label, rule.next
    call.emit(ev.ROUTE, rule="otherwise", **({"lookups": lookups} if lookups else {}))
    return "otherwise", node.otherwise
