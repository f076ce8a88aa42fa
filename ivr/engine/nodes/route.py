"""route: the first rule that matches the call decides; otherwise the default."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.flow.nodes.route import Route, RouteRule


def matches(rule: RouteRule, call: Call) -> bool:
    if rule.segment is not None:
        return call.caller in rule.segment
    if rule.var is not None:
        value = call.var_text(rule.var)
        return value is not None and rule.matches is not None and rule.matches.search(value) is not None
    if rule.caller is not None:
        return rule.caller.search(call.caller or "") is not None
    return call.language == rule.language


async def run(node: Route, call: Call):
    for rule in node.when:
        if matches(rule, call):
            call.emit(ev.ROUTE, rule=rule.label)
            return rule.label, rule.next
    call.emit(ev.ROUTE, rule="otherwise")
    return "otherwise", node.otherwise
