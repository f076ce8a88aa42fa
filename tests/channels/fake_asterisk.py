"""A fake Asterisk that speaks real AGI over loopback, for protocol tests of the FastAGI
server: it sends an environment block, then answers each command line as Asterisk would,
from a script of caller behaviour (keys, queue outcome, hang-ups, odd replies)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

Rule = Callable[[str], Optional[list[str]]]


@dataclass
class Caller:
    """How the simulated caller and Asterisk behave."""

    keys: list[str] = field(default_factory=list)  # per WAIT FOR DIGIT: a key, "-" (time-out) or "hangup"
    queue_status: str = "CONTINUE"  # QUEUESTATUS after Queue returns
    queue_delay: float = 0.0  # seconds Queue holds the line
    agent: str = "Agent 101"
    hold: int = 12  # QEHOLDTIME
    missing_files: tuple[str, ...] = ()  # STREAM FILE of these answers -1 while the channel lives
    special: list[Rule] = field(default_factory=list)  # tried first: odd replies for a test
    hangs_up_with_agent: bool = False  # the caller ends the call while talking to the agent
    # the channel as the dialplan hands it over (the generated one answers, sets the language
    # and starts the recording); None: unset
    state: str = "Up"
    language: str = "pl"
    recording: Optional[str] = "/var/spool/ivr/recordings/2026-11-24/1700000000.1.wav"
    date: str = "2026-11-24"
    variables: dict[str, str] = field(default_factory=dict)  # set by SET VARIABLE

    def value(self, name: str) -> Optional[str]:
        """A variable or function as Asterisk would evaluate it on this channel; None if unset."""
        if name.startswith("SET(") and name.endswith(")") and "=" in name:  # sets, and reads as the value
            variable, _, value = name[4:-1].partition("=")
            self.variables[variable] = value
            return value
        if name in self.variables:
            return self.variables[name]
        answered = self.queue_status == "CONTINUE"
        return {"CHANNEL(state)": self.state, "CHANNEL(language)": self.language,
                "STRFTIME(${EPOCH},,%Y-%m-%d)": self.date, "IVR_RECORDING": self.recording,
                "QUEUESTATUS": self.queue_status, "MEMBERNAME": self.agent if answered else None,
                "MEMBERINTERFACE": "PJSIP/101" if answered else None, "QEHOLDTIME": str(self.hold)}.get(name)

    def evaluate(self, expression: str) -> str:
        """GET FULL VARIABLE: every ${...} replaced by its value ("" when unset)."""
        out, i = [], 0
        while (start := expression.find("${", i)) >= 0:
            out.append(expression[i:start])
            depth, j = 1, start + 2
            while j < len(expression) and depth:
                depth += {"{": 1, "}": -1}.get(expression[j], 0)
                j += 1
            out.append(self.value(expression[start + 2:j - 1]) or "")
            i = j
        return "".join(out) + expression[i:]

    def answer(self, line: str) -> list[str]:
        for rule in self.special:
            reply = rule(line)
            if reply is not None:
                return reply
        verb = line.split('"', 1)[0].strip()
        args = [re.sub(r"\\(.)", r"\1", a) for a in re.findall(r'"((?:[^"\\]|\\.)*)"', line)]
        if verb == "GET FULL VARIABLE":  # the first one also makes sure the environment block ended
            return [f"200 result=1 ({self.evaluate(args[0])})"]
        if verb == "ANSWER":
            self.state = "Up"
            return ["200 result=0"]
        if verb == "SET VARIABLE":
            self.variables[args[0]] = args[1]
            return ["200 result=1"]
        if verb == "CHANNEL STATUS":
            return ["200 result=6"]
        if verb == "STREAM FILE":
            if any(args[0].endswith(m) for m in self.missing_files):
                return ["200 result=-1 endpos=0"]
            return ["200 result=0 endpos=16000"]
        if verb == "WAIT FOR DIGIT":
            key = self.keys.pop(0) if self.keys else "hangup"
            if key == "hangup":
                return ["HANGUP"]
            if key == "-":
                return ["200 result=0 (timeout)"]
            return [f"200 result={ord(key)}"]
        if verb == "EXEC" and args[:1] == ["Queue"]:
            return ["DELAY", "200 result=-1" if self.hangs_up_with_agent else "200 result=0"]
        if verb == "GET VARIABLE":
            value = self.value(args[0])
            return [f"200 result=1 ({value})"] if value is not None else ["200 result=0"]
        if verb == "RECORD FILE":
            return ["200 result=0 (timeout) endpos=40000"]
        if verb == "EXEC":
            return ["200 result=0"]
        if verb == "HANGUP":
            return ["200 result=1"]
        return ["510 Invalid or unknown command"]


async def place_call(port: int, caller: Caller, env: dict[str, str], *, host: str = "127.0.0.1") -> list[bytes]:
    """Connect like Asterisk, play the call out, return every command line received (raw bytes)."""
    reader, writer = await asyncio.open_connection(host, port)
    block = "".join(f"{k}: {v}\n" for k, v in env.items()) + "\n"
    writer.write(block.encode())
    await writer.drain()
    received: list[bytes] = []
    hung_up = hangup_next = False
    try:
        while True:
            raw = await reader.readline()
            if not raw:
                break
            received.append(raw)
            text = raw.decode().rstrip("\n")
            if hangup_next:  # as Asterisk does: the HANGUP line first, then the command's reply
                writer.write(b"HANGUP\n")
                hung_up, hangup_next = True, False
            if hung_up:  # a dead channel: Asterisk still answers GET VARIABLE, refuses the rest
                if not text.startswith("GET "):
                    writer.write(b"511 Command Not Permitted on a dead channel or intercept routine\n")
                    await writer.drain()
                    continue
            for reply in caller.answer(text):
                if reply == "DELAY":
                    await asyncio.sleep(caller.queue_delay)
                    continue
                writer.write((reply + "\n").encode())
                if reply == "HANGUP":  # replies listed after it follow it, as the command's own
                    hung_up = True
            if caller.hangs_up_with_agent and text.startswith('EXEC "Queue"'):
                hangup_next = True
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
    return received


def environment(uniqueid: str = "1700000000.1", script: str = "main", **extra: str) -> dict[str, str]:
    env = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:4573/{script}",
        "agi_channel": f"PJSIP/caller-{uniqueid}",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid,
        "agi_callerid": "48221234567",
        "agi_calleridname": "Jan Kowalski",
        "agi_context": "ivr",
        "agi_extension": "100",
        "agi_priority": "3",
    }
    env.update(extra)
    return env
