"""What names a brain: the team's role names and the model specs `--llm` and task.yaml's `llm:` accept.

Its own module so that task validation (`crew._task`) checks `llm:` without importing the chat-model machinery.
"""

from __future__ import annotations

__all__ = ["ROLES", "llm_spec_problem"]

ROLES = ("analyst", "planner", "modeler", "critic", "reviewer", "optimizer")
"""The team's role profiles, the names `--llm role=model` and task.yaml's `llm:` mapping accept."""

_PROVIDERS = {
    "openai": ("langchain_openai", "ChatOpenAI"),
    "anthropic": ("langchain_anthropic", "ChatAnthropic"),
    "ollama": ("langchain_ollama", "ChatOllama"),
}


def llm_spec_problem(spec: object) -> str | None:
    """Why `spec` cannot name a brain (None when it can): `offline`, `provider:model`, or an http(s) URL."""
    if not isinstance(spec, str) or not spec.strip():
        return "must be a string: offline, provider:model or an OpenAI-compatible URL"
    if spec == "offline" or spec.startswith(("http://", "https://")):
        return None
    provider, sep, model = spec.partition(":")
    if not sep or provider not in _PROVIDERS or not model:
        return f"cannot read {spec!r} as a model (offline, provider:model with provider one of {', '.join(_PROVIDERS)}, or a URL)"
    return None
