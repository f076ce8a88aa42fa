"""survey: a score on the keypad (0-10 for NPS), asked of a sample of calls."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.flow.model import Survey

DIGITS = "0123456789"


async def run(node: Survey, call: Call):
    if not call.engine.sampler.should_ask(call.flow.id, node, call.elapsed()):
        call.emit(ev.SURVEY, asked=False)
        return "next", node.next
    low, high = node.scale
    width = len(str(high))
    failures = 0
    while failures < node.attempts:
        first = await call.play(node.prompt, DIGITS)
        digits = await call.read(width, node.timeout, "#", first)
        if digits.isdigit() and low <= int(digits) <= high:
            call.survey_score = int(digits)
            call.emit(ev.SURVEY, asked=True, score=call.survey_score)
            if node.thanks_prompt is not None:
                await call.play(node.thanks_prompt)
            return "next", node.next
        failures += 1
        call.emit(ev.TIMEOUT if not digits else ev.INVALID, digits=digits, attempt=failures, attempts=node.attempts)
        if digits and node.invalid_prompt is not None and failures < node.attempts:
            await call.play(node.invalid_prompt)
    call.emit(ev.SURVEY, asked=True, score=None)
    return "next", node.next
