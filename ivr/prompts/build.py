"""`ivr prompts build`: every prompt of every flow in every language, as Asterisk audio.

Each rendering is cached under a hash of what makes it (text, voice, backend; or the
recorded file), so an unchanged prompt is never rendered twice, and a prompt with the
same words in two flows is rendered once. Outputs land in prompts/<language>/<flow>/
<name>.wav; a manifest remembers which hash each output holds, so a rebuild of unchanged
flows reads no audio at all. Files are replaced atomically: a failed rendering leaves the
previous good file in place.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from ivr.settings.config import Config
from ivr.errors import PromptError
from ivr.yamldoc.diagnostics import Diagnostic, Location
from ivr.flow.model import Flow, Prompt
from ivr.prompts import audio
from ivr.prompts.backends import Backend, make_backend
from ivr.prompts.recorded import dropped_files, named_file

MANIFEST = ".manifest.json"
CACHE = ".cache"


@dataclass(frozen=True)
class PromptJob:
    flow: str
    prompt: Prompt
    language: str
    location: Location  # the prompt in its flow file, for errors
    out: Path
    key: str  # the cache key: a hash of everything that decides the sound
    text: Optional[str] = None  # for speech
    source: Optional[Path] = None  # for a recorded file


@dataclass
class BuildResult:
    rendered: int = 0
    reused: int = 0  # taken from the cache, not rendered again
    up_to_date: int = 0
    errors: list[Diagnostic] = field(default_factory=list)


def prompts_dir(config: Config) -> Path:
    return config.root / config.prompts.dir


def output_path(base: Path, flow: str, prompt: str, language: str) -> Path:
    """Where a built prompt lives; Asterisk plays it by this path without the extension."""
    return base / language / flow / f"{prompt}.wav"


def plan(flows: Iterable[Flow], config: Config, backend: Optional[Backend] = None, *,
         recorded_only: bool = False) -> list[PromptJob]:
    """One job per prompt and language of the flows (with `recorded_only`, recorded files only)."""
    backend = backend or make_backend(config.prompts)
    dropped = dropped_files(prompts_dir(config) / "recorded")
    jobs = []
    for flow in flows:
        for prompt in flow.prompts.values():
            for language in flow.languages:
                if recorded_only and not prompt.files and (language, prompt.name) not in dropped:
                    continue
                job = job_for(flow, prompt, language, config, backend, dropped)
                # a prompt recorded in one language may be spoken in another
                if recorded_only and job.source is None:
                    continue
                jobs.append(job)
    return jobs


def job_for(flow: Flow, prompt: Prompt, language: str, config: Config, backend: Backend,
            dropped: Optional[dict[tuple[str, str], Path]] = None) -> PromptJob:
    """What it takes to have one prompt in one language: a recorded file, or speech."""
    base = prompts_dir(config)
    if dropped is None:
        dropped = dropped_files(base / "recorded")
    location = Location(flow.file, prompt.line or 1, 3)
    out = output_path(base, flow.id, prompt.name, language)
    source = named_file(prompt, language, config.root) or dropped.get((language, prompt.name))
    if source is not None:
        try:
            stat = source.stat()
            stamp = f"{stat.st_size}|{stat.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        key = _hash(f"recorded|{source.resolve()}|{stamp}")
        return PromptJob(flow.id, prompt, language, location, out, key, source=source)
    text = prompt.text(language)
    key = _hash(f"{backend.identity(language)}|{text}")
    return PromptJob(flow.id, prompt, language, location, out, key, text=text)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def build(
    jobs: list[PromptJob],
    config: Config,
    *,
    backend: Optional[Backend] = None,
    workers: Optional[int] = None,
    force: bool = False,
    progress: Optional[Callable[[int], object]] = None,
) -> BuildResult:
    """Bring every output up to date; render only what the cache lacks.

    `progress`, when given, is called with the number of outputs finished, as they finish.
    """
    backend = backend or make_backend(config.prompts)
    base = prompts_dir(config)
    cache = base / CACHE
    manifest = _read_manifest(base)
    result = BuildResult()
    pending: dict[str, list[PromptJob]] = {}
    for job in jobs:
        name = _relative(job.out, base)
        if not force and manifest.get(name) == job.key and job.out.exists():
            result.up_to_date += 1
        else:
            pending.setdefault(job.key, []).append(job)

    def make(key: str, group: list[PromptJob]) -> tuple[str, bool]:
        cached = cache / f"{key}.wav"
        fresh = force or not cached.exists()
        if fresh:
            _render(group[0], backend, cached)
        for job in group:
            audio.install(cached, job.out)
        return key, fresh

    if pending:
        with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2) * 2)) as pool:
            futures = {pool.submit(make, key, group): group for key, group in pending.items()}
            for future in as_completed(futures):
                group = futures[future]
                try:
                    _key, fresh = future.result()
                except (PromptError, OSError) as exc:
                    for job in group:
                        result.errors.append(Diagnostic(job.location, _describe_failure(job, exc)))
                else:
                    if fresh:
                        result.rendered += 1
                        result.reused += len(group) - 1
                    else:
                        result.reused += len(group)
                    for job in group:
                        manifest[_relative(job.out, base)] = job.key
                if progress is not None:
                    progress(len(group))
        _write_manifest(base, manifest)
    return result


def _render(job: PromptJob, backend: Backend, dest: Path) -> None:
    if job.source is not None:
        if not job.source.is_file():
            raise PromptError(f"the recorded file {job.source.name} is missing")
        audio.convert(job.source, dest)
        if audio.inspect(dest).is_silent:
            dest.unlink()
            raise PromptError(f"the recorded file {job.source.name} is silent")
    else:
        backend.render(job.text or "", job.language, dest)


def _describe_failure(job: PromptJob, exc: Exception) -> str:
    what = f'prompt "{job.prompt.name}" ({job.language})'
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"{what}: the disk is full; the previous file was kept"
    if isinstance(exc, OSError):
        return f"{what}: {exc.strerror or exc}; the previous file was kept"
    return f"{what}: {exc}; the previous file was kept"


def _relative(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def _read_manifest(base: Path) -> dict[str, str]:
    try:
        data = json.loads((base / MANIFEST).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_manifest(base: Path, manifest: dict[str, str]) -> None:
    base.mkdir(parents=True, exist_ok=True)
    target = base / MANIFEST
    tmp = target.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(manifest, indent=0, sort_keys=True), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise PromptError(f"cannot write {target}: {reason}; the prompts are in place, "
                          f"the next build records them") from None
    finally:
        tmp.unlink(missing_ok=True)  # left only by a failure
