"""`redact`: strips anything that looks like a credential from text bound for a chat model.

An experiment's stderr reaches the modeler's debug prompt, and an experiment is hostile: whatever file it could
read, it can print, and the prompt carries it to a provider. The sandbox keeps secrets out of the experiment's
world; this is the second wall, at the one place every prompt passes (`ChatBrain`). It errs towards redacting:
a lost token of a traceback costs less than a leaked key.
"""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = ["REDACTED", "redact"]

REDACTED = "[redacted]"

_PATTERNS = [
    # PEM blocks: private keys, certificates with keys
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
    # provider key formats: AWS, OpenAI/Anthropic, GitHub, GitLab, Slack, Google, Stripe, Hugging Face
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),
    re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    # JSON web tokens and bearer headers
    re.compile(r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
    re.compile(r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=\-]{12,}"),
    # crypt(3) password hashes, as in /etc/shadow
    re.compile(r"\$(?:1|2[abxy]?|5|6|y|gy|7)\$[^\s:]{8,}"),
    # URLs with a password in them
    re.compile(r"(?<=://)[^\s/:@]+:[^\s/@]+(?=@)"),
]
# key = value, key: value, "key": "value" for names that hold secrets
_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9])((?:[A-Za-z0-9]+[_\-])*(?:api[_\-]?key|apikey|secret|token|passw(?:or)?d|pwd|"
    r"access[_\-]?key|private[_\-]?key|credentials?|authorization)(?:[_\-][A-Za-z0-9]+)*[\"']?\s*[:=]\s*[\"']?)"
    r"([^\s\"',;}]{4,})")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{32,}")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _random_looking(token: str) -> bool:
    """A long token of mixed case and digits with high entropy: a key, not a word, a path or a hex digest."""
    classes = sum(bool(re.search(p, token)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return classes == 3 and _entropy(token) >= 4.0


def redact(text: str) -> str:
    """`text` with every credential-looking span replaced by `[redacted]`."""
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _ASSIGNMENT.sub(lambda m: m.group(1) + REDACTED, text)
    return _LONG_TOKEN.sub(lambda m: REDACTED if _random_looking(m.group(0)) else m.group(0), text)
