"""Checks of the composite values of flow nodes: menu options, route rules, survey scale
and sample.

A mixin of the flow checker (ivr.flow.checks): it reports through the checker's `error`
and resolves names through its `_node_ref`, `languages` and `ctx`.
"""

from __future__ import annotations

import re
from typing import Any

from ivr.flow import spec
from ivr.yamldoc.diagnostics import did_you_mean
from ivr.yamldoc.loader import describe
from ivr.flow.nodes.route import RouteRule
from ivr.flow.nodes.survey import Sample
from ivr.yamldoc.values import parse_duration, parse_key, is_name

INVALID = object()  # a value that failed its check (None can be a real value)


class CompositeValues:
    def _options(self, value: Any, path: tuple, what: str) -> Any:
        if not isinstance(value, dict) or not value:
            self.error(path, f"{what} must map keys to nodes, such as {{\"1\": sales}}, not {describe(value)}")
            return INVALID
        result: dict[str, dict] = {}
        first_keys: dict[str, Any] = {}  # key -> the key as first written (1 or "1")
        ok = True
        menu = what.split(" of ", 1)[-1]
        for raw_key, option in value.items():
            key_path = path + (raw_key,)
            key = parse_key(raw_key)
            if key is None:
                extra = " (one key per option; use an input node for several digits)" if str(raw_key).isdigit() and len(str(raw_key)) > 1 else ""
                self.error(key_path, f"menu key {describe(raw_key)} of {menu} is not one keypad key: 0-9, * or #{extra}", at_key=True)
                ok = False
            elif key in first_keys:
                first = first_keys[key]
                line = self.doc.key_at(path + (first,)).line
                self.error(key_path, f'option "{key}" of {menu} is given twice (also as {describe(first)} on line {line}; quoted or not, it is the same key)', at_key=True)
                ok = False
            else:
                first_keys[key] = raw_key
            # the option itself is checked whatever its key: every finding in one run
            label = f'option "{key}" of {menu}' if key is not None else f"option {describe(raw_key)} of {menu}"
            parsed = self._option(option, key_path, label)
            if parsed is INVALID:
                ok = False
            elif ok:
                result[key] = {**parsed, "key_path": key_path}
        return result if ok else INVALID

    def _option(self, option: Any, key_path: tuple, label: str) -> Any:
        """One menu option: a node name, or {next, language, set}."""
        if not isinstance(option, dict):
            target = self._node_ref(option, key_path, label)
            return INVALID if target is INVALID else {"next": target, "language": None, "set": {}, "path": key_path}
        ok = True
        misspelt = set()
        for field_name, val in option.items():
            if field_name not in spec.OPTION_FIELDS:
                meant = self._intended(field_name, list(spec.OPTION_FIELDS))
                if meant == "next":  # `nxt: x` still leads to x; "needs next" would repeat the typo
                    misspelt.add(meant)
                    self._loose_references(key_path[1], val, prompts=False)
                hint = f' (did you mean "{meant}"?)' if meant else ""
                self.error(key_path + (field_name,), f'"{field_name}" is no field of a menu option{hint} (fields: {", ".join(spec.OPTION_FIELDS)})', at_key=True)
                ok = False
        if "next" not in option:
            if "next" not in misspelt:
                self.error(key_path, f'{label} needs "next": where the key leads', at_key=True)
            return INVALID
        target = self._node_ref(option["next"], key_path + ("next",), label)
        language = option.get("language")
        if language is not None and not self._speaks(language):
            self.error(key_path + ("language",), f'{label} picks language {describe(language)}, which the flow does not speak ({", ".join(self.languages)}){did_you_mean(language, self.languages)}')
            ok = False
        variables = option.get("set", {})
        if not isinstance(variables, dict) or not all(is_name(k) and isinstance(v, (str, int, float, bool)) for k, v in variables.items()):
            self.error(key_path + ("set",), f"set of {label} must map variable names to values, such as {{reason: delivery}}")
            ok = False
            variables = {}
        if target is INVALID or not ok:
            return INVALID
        return {"next": target, "language": language, "set": {k: str(v) for k, v in variables.items()}, "path": key_path + ("next",)}

    def _rules(self, value: Any, path: tuple, what: str) -> Any:
        if not isinstance(value, list) or not value:
            self.error(path, f"{what} must be a list of rules such as - {{segment: vip, next: vip_desk}}, not {describe(value)}")
            return INVALID
        rules = []
        ok = True
        for i, item in enumerate(value):
            where = path + (i,)
            label = f"rule {i + 1} of {what.split(' of ', 1)[-1]}"
            if not isinstance(item, dict):
                self.error(where, f"{label} must be a mapping such as {{segment: vip, next: vip_desk}}, not {describe(item)}")
                ok = False
                continue
            allowed = (*spec.RULE_CONDITIONS, "matches", "next")
            for key in item:
                if key not in allowed:
                    self.error(where + (key,), f'"{key}" is no field of a route rule{did_you_mean(key, allowed)}', at_key=True)
                    ok = False
            conditions = [c for c in spec.RULE_CONDITIONS if c in item]
            if len(conditions) != 1:
                self.error(where, f"{label} needs exactly one condition of {', '.join(spec.RULE_CONDITIONS)}, not {len(conditions)}")
                ok = False
                continue
            if "next" not in item:
                self.error(where, f'{label} needs "next": where matching calls go')
                ok = False
                continue
            target = self._node_ref(item["next"], where + ("next",), label)
            rule = self._rule(conditions[0], item, where, label, target)
            if rule is None or target is INVALID:
                ok = False
                continue
            rules.append((rule, where + ("next",)))
        return tuple(rules) if ok else INVALID

    def _rule(self, condition: str, item: dict, where: tuple, label: str, target: Any) -> RouteRule | None:
        next_node = target if isinstance(target, str) else ""
        if condition == "segment":
            segments = self.ctx.config.segments
            name = item["segment"]
            if not isinstance(name, str) or name not in segments:
                if self._declared_broken("segments", name):
                    return None
                if self.ctx.config.path is None:
                    self.error(where + ("segment",), f"{label} tests segment {describe(name)}, but no config.yaml was found to define it")
                else:
                    self.error(where + ("segment",), f"{label} tests segment {describe(name)}, which is not in {self.ctx.config_name}{did_you_mean(name, segments)} (segments: {', '.join(segments) or 'none'})")
                return None
            return RouteRule(next_node, segment=segments[name])
        if condition == "language":
            lang = item["language"]
            if not self._speaks(lang):
                self.error(where + ("language",), f"{label} tests language {describe(lang)}, which the flow does not speak ({', '.join(self.languages)}){did_you_mean(lang, self.languages)}")
                return None
            return RouteRule(next_node, language=lang)
        if condition == "var":
            if not is_name(item["var"]):
                self.error(where + ("var",), f"{label} tests {describe(item['var'])}, which is not a variable name")
                return None
            if "matches" not in item:
                self.error(where, f'{label} tests variable "{item["var"]}" but has no "matches" pattern')
                return None
            pattern = self._regex(item["matches"], where + ("matches",), label)
            return None if pattern is None else RouteRule(next_node, var=item["var"], matches=pattern)
        pattern = self._regex(item["caller"], where + ("caller",), label)
        return None if pattern is None else RouteRule(next_node, caller=pattern)

    def _regex(self, value: Any, path: tuple, label: str) -> re.Pattern | None:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            self.error(path, f"the pattern of {label} must be a regular expression in quotes, not {describe(value)}")
            return None
        try:
            return re.compile(str(value))
        except re.error as exc:
            hint = ""
            if exc.pos is not None and exc.pos < len(str(value)) and str(value)[exc.pos] in "+*?" and "repeat" in str(exc):
                char = str(value)[exc.pos]
                hint = f"; \"{char}\" repeats what stands before it, so for the character itself write '\\{char}' (in single quotes) or \"\\\\{char}\" (in double quotes)"
            self.error(path, f"the pattern of {label} is not a valid regular expression: {exc}{hint}")
            return None

    def _scale(self, value: Any, path: tuple, what: str) -> Any:
        if (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            and 0 <= value[0] < value[1] <= 99
        ):
            return (value[0], value[1])
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value) and value[0] >= value[1]:
            self.error(path, f"{what} goes from {value[0]} to {value[1]}; write the lowest score first, such as [0, 10]")
        else:
            shown = f"[{', '.join(str(v) for v in value)}]" if isinstance(value, list) else describe(value)
            self.error(path, f"{what} must be [lowest, highest] whole numbers from 0 to 99, such as [0, 10], not {shown}")
        return INVALID

    def _sample(self, value: Any, path: tuple, what: str) -> Any:
        if not isinstance(value, dict) or not value:
            self.error(path, f"{what} must be a mapping such as {{every: 10, shorter_than: 2m}}, not {describe(value)}")
            return INVALID
        ok = True
        for key in value:
            if key not in ("every", "shorter_than"):
                self.error(path + (key,), f'"{key}" is no field of a survey sample{did_you_mean(key, ["every", "shorter_than"])}', at_key=True)
                ok = False
        every = value.get("every")
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            self.error(path + ("every",), f'"every" of the sample of {what.split(" of ", 1)[-1]} must be a whole number of calls, 1 or more, not {describe(every)}')
            ok = False
        shorter = value.get("shorter_than")
        seconds = parse_duration(shorter) if shorter is not None else None
        if shorter is not None and seconds is None:
            self.error(path + ("shorter_than",), f'"shorter_than" of the sample of {what.split(" of ", 1)[-1]} must be a duration such as 2m, not {describe(shorter)}')
            ok = False
        return Sample(every, seconds) if ok else INVALID

