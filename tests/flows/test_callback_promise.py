"""The example line's call-back prompts promise only what the engine does: every callback
node of flows/main.yaml promises "within the hour" in each language and says `within: 1h`,
dials in the office's hours and says so, and asks for the number the way the node reads it."""

from __future__ import annotations

from pathlib import Path

from ivr.flow.nodes.callback import Callback
from ivr.flow.project import load_flows

REPO = Path(__file__).resolve().parents[2]
PROMISE = {"en": "within the hour", "pl": "w ciągu godziny"}
HOURS = {"en": "in our opening hours", "pl": "w godzinach pracy biura"}


def test_the_example_callback_prompts_promise_what_the_nodes_do():
    flows, _ = load_flows([REPO / "flows"], REPO / "config.yaml")
    nodes = [n for n in flows["main"].nodes.values() if isinstance(n, Callback)]
    assert {n.name for n in nodes} == {"callback_offer", "support_callback"}
    for node in nodes:
        assert node.within == 3600 and node.schedule is not None and node.schedule.name == "office"
        for language, phrase in PROMISE.items():
            text = node.confirm_prompt.text(language)
            assert phrase in text and HOURS[language] in text, (node.name, language, text)
        # the keys the prompts name are the node's
        assert (node.accept_key, node.other_key) == ("1", "2")
        assert "press 1" in node.number_prompt.text("en") and "press 2" in node.number_prompt.text("en")
        assert "hash" in node.type_prompt.text("en") and "krzyżykiem" in node.type_prompt.text("pl")
