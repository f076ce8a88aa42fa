"""The audio of built prompts, for the simulator's call recordings.

A prompt not built yet is built on the spot (through the same cache as `ivr prompts
build`), so `ivr simulate --record` works on a fresh checkout.
"""

from __future__ import annotations

from typing import Optional

from ivr.settings.config import Config
from ivr.errors import PromptError
from ivr.flow.model import FlowSet, Prompt
from ivr.prompts import audio
from ivr.prompts.backends import Backend, make_backend
from ivr.prompts.build import build, job_for, prompts_dir
from ivr.prompts.recorded import dropped_files


class PromptLibrary:
    def __init__(self, flows: FlowSet, config: Config, backend: Optional[Backend] = None):
        self.flows = flows
        self.config = config
        self.backend = backend or make_backend(config.prompts)
        self._pcm: dict[tuple[str, str, str], bytes] = {}
        self._dropped = dropped_files(prompts_dir(config) / "recorded")  # one folder listing, not one a prompt

    def pcm(self, prompt: Prompt, language: str) -> bytes:
        """The samples (8 kHz mono 16-bit) of a prompt in a language."""
        flow = self.flows.flows.get(prompt.flow)
        if flow is None or flow.prompts.get(prompt.name) is not prompt:
            raise PromptError(f'prompt "{prompt.name}" belongs to no loaded flow')
        key = (flow.id, prompt.name, language)
        if key not in self._pcm:
            job = job_for(flow, prompt, language, self.config, self.backend, self._dropped)
            result = build([job], self.config, backend=self.backend, workers=1)
            if result.errors:
                raise PromptError(str(result.errors[0]))
            self._pcm[key] = audio.read_pcm(job.out)
        return self._pcm[key]
