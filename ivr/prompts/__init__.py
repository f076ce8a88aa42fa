"""Prompts: what callers hear, rendered to the audio format Asterisk plays as it is.

Text-to-speech backends (espeak-ng offline, gTTS online), recorded files that win over
speech, a cache keyed by what makes a rendering, and the build that writes them all.
"""
