"""What every part of the fuzz campaign shares: paths, the case and outcome records, the
byte-level mutator and the odd values the structure-aware mutators put in."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
FORMATS = ("mat7", "mat73", "caffemodel", "prototxt", "features", "checkpoint")
CONVERTER_FORMATS = ("mat7", "mat73", "caffemodel", "prototxt")
MARKER = "PWNED"


class Hang(BaseException):
    """Raised by SIGALRM inside a case that ran too long (BaseException: code under test
    catching ``Exception`` must not swallow it)."""


@dataclass
class Case:
    """One generated input: files to write into the case folder, the argv to run, and the
    mutation's description."""

    files: dict[str, bytes]
    mutation: str
    run: str  # which runner
    argv: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    kind: str
    detail: str = ""



class Payload:
    """Unpickling this would create the marker file (the fuzz checks it never does)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))



# --------------------------------------------------------------------------------------------
# Byte-level mutators
# --------------------------------------------------------------------------------------------

def mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Flips, truncations, insertions, deletions, block copies (what damaged downloads do)."""
    kind = rng.choice(["flip", "flip", "truncate", "insert", "delete", "zero", "copy"])
    buf = bytearray(data)
    n = len(buf)
    if n == 0:
        return bytes([rng.randrange(256)]), "insert-into-empty"
    if kind == "flip":
        k = rng.choice([1, 1, 2, 4, 16])
        for _ in range(k):
            buf[rng.randrange(n)] ^= 1 << rng.randrange(8) if rng.random() < 0.5 \
                else rng.randrange(1, 256)
        return bytes(buf), f"flip x{k}"
    if kind == "truncate":
        cut = rng.choice([rng.randrange(n), int(n * rng.random() ** 3), n - rng.randrange(1, 64)])
        cut = max(0, min(n - 1, cut))
        return bytes(buf[:cut]), f"truncate at {cut}/{n}"
    if kind == "insert":
        pos = rng.randrange(n)
        chunk = bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 64])))
        return bytes(buf[:pos] + chunk + buf[pos:]), f"insert {len(chunk)} at {pos}"
    if kind == "delete":
        pos = rng.randrange(n)
        k = rng.choice([1, 8, 256])
        return bytes(buf[:pos] + buf[pos + k:]), f"delete {k} at {pos}"
    if kind == "zero":
        pos = rng.randrange(n)
        k = rng.choice([8, 512, 4096])
        buf[pos:pos + k] = bytes(len(buf[pos:pos + k]))
        return bytes(buf), f"zero {k} at {pos}"
    a, b = rng.randrange(n), rng.randrange(n)
    k = rng.choice([16, 256])
    buf[b:b + k] = buf[a:a + k]
    return bytes(buf[:n]), f"copy {k} from {a} to {b}"


# Values a structure-aware mutator puts where a number, vector or tensor was.
def weird_number(rng: random.Random) -> float:
    return rng.choice([0, -1, 1, 2, 0.5, 1e9, 2 ** 31, 2 ** 63, -1e9, float("nan"), float("inf"),
                       -float("inf"), 60000, 3.7])
