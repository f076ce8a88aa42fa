"""survey: a score on the keypad (0-10 for NPS), asked of a sample of calls."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.engine.nodes.attempts import Attempts
from ivr.flow.nodes.survey import Survey

DIGITS = "0123456789"


async def run(node: Survey, call: Call):
    if not await call.engine.sampler.should_ask(call.flow.id, node, call.elapsed()):
        call.emit(ev.SURVEY, asked=False)
        return "next", node.next
    low, high = node.scale
    width = len(str(high))
    tries = Attempts(call, node.attempts, invalid_prompt=node.invalid_prompt, prompt_after_last=False)
    while tries.left:
        first = await call.play(node.prompt, DIGITS)
        digits = await call.read(width, node.timeout, "#", first)
        if digits.isdigit() and low <= int(digits) <= high:
            call.survey_score = int(digits)
            call.emit(ev.SURVEY, asked=True, score=call.survey_score)
            if node.thanks_prompt is not None:
                await call.play(node.thanks_prompt)
            return "next", node.next
        if digits:
            await tries.invalid(digits=digits)
        else:
            await tries.timed_out(digits=digits)
    call.emit(ev.SURVEY, asked=True, score=None)
    return "next", node.next
