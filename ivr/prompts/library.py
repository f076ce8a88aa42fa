"""The audio of built prompts, for the simulator's call recordings.

A prompt not built yet is built on the spot (through the same cache as `ivr prompts
build`), so `ivr simulate --record` works on a fresh checkout.
"""

from __future__ import annotations

from typing import Optional

from ivr.config import Config
from ivr.errors import PromptError
from ivr.flow.model import FlowSet, Prompt
from ivr.prompts import audio
from ivr.prompts.backends import Backend, make_backend
from ivr.prompts.build import build, job_for


class PromptLibrary:
    def __init__(self, flows: FlowSet, config: Config, backend: Optional[Backend] = None):
        self.flows = flows
        self.config = config
        self.backend = backend or make_backend(config.prompts)
        self._pcm: dict[tuple[str, str, str], bytes] = {}
        self._owner = {id(p): f for f in flows.flows.values() for p in f.prompts.values()}

    def pcm(self, prompt: Prompt, language: str) -> bytes:
        """The samples (8 kHz mono 16-bit) of a prompt in a language."""
        flow = self._owner.get(id(prompt))
        if flow is None:
            raise PromptError(f'prompt "{prompt.name}" belongs to no loaded flow')
        key = (flow.id, prompt.name, language)
        if key not in self._pcm:
            job = job_for(flow, prompt, language, self.config, self.backend)
            result = build([job], self.config, backend=self.backend, workers=1)
            if result.errors:
                raise PromptError(str(result.errors[0]))
            self._pcm[key] = audio.read_pcm(job.out)
        return self._pcm[key]
