"""menu: one key chooses a branch; a key pressed during the prompt counts."""

from ivr import events as ev
from ivr.engine.call import Call
from ivr.engine.nodes.attempts import Attempts, answer_key
from ivr.flow.nodes.menu import Menu

# A caller may ask for the menu again this often before repeats start to use attempts,
# so a stuck key cannot hold a line forever.
FREE_REPEATS = 5


async def run(node: Menu, call: Call):
    escape = "".join(node.options) + (node.repeat_key or "")
    tries = Attempts(call, node.attempts, timeout_prompt=node.timeout_prompt, invalid_prompt=node.invalid_prompt)
    repeats = 0
    while tries.left:
        key = await answer_key(call, await _prompt(node, call, escape), node.timeout)
        if not key:
            await tries.timed_out()
            continue
        if key == node.repeat_key:
            repeats += 1
            call.emit(ev.REPEAT)
            if repeats > FREE_REPEATS:
                tries.use()
            continue
        option = node.options.get(key)
        if option is None:
            await tries.invalid(key=key)
            continue
        if option.language:
            await call.set_language(option.language)
        for name, value in option.set.items():
            call.set_var(name, value)
        return key, option.next
    return "fail", node.on_fail


async def _prompt(node: Menu, call: Call, escape: str):
    if not node.all_languages:
        return await call.play(node.prompt, escape)
    # a language menu: each language's line in its own voice, until a key is pressed
    for language in call.flow.languages:
        key = await call.play(node.prompt, escape, language)
        if key:
            return key
    return None
