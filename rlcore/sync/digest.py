"""Did each engine load exactly the bytes the learner sent? A per-tensor digest on both sides.

The probe check (verify.py) compares logprobs, which in bf16 cannot see one small optimizer step:
at lr 1e-5 most bf16 weights move by less than one ulp, so an engine that skipped an update serves
logprobs within rounding noise of the learner's. The digest is exact: the sender digests every
tensor it streams, each engine digests every tensor its loader takes, and any tensor whose digest
differs or is missing names the engine and the tensor.

Where the engine side digests: the HF engine digests its parameter after the copy (what it will
compute with); the vLLM engine digests each tensor as the model's loader pulls it from the stream
(on CPU the loaded linear weights are repacked for the GEMM kernels, so the parameters cannot be
read back byte for byte). What the loader was never handed is drained from the stream, so the
sender still finishes, and reported as missing. The kernel-cache traps (a stale pre-packed copy of
a weight that did load) are the probe's to catch.

The digest is computed where the tensor lives, over its raw bytes in logical order. On CPU it is
xxHash's XXH3-128: about 15 GiB/s on one core here, 6x the checksum below, which made the digests
a sixth of the engine's load (docs/benchmarks.md); where the `xxhash` package is missing (a machine
that only runs the GPU check) CPU tensors get the checksum too. On a GPU (no copy to the host) it
is a position-weighted checksum: the sum of the 64-bit words and the sum of word x position, each
modulo 2^64; any single changed word changes the first, and changes that cancel in the first must
also cancel in the second. Both sides of one sync hold their tensors on the same kind of device
(the transport needs it: gloo for CPU, NCCL or CUDA IPC for GPUs) and run one installation, so
they compute the same kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import torch

try:  # a declared dependency; a machine that only runs the GPU check may lack it
    import xxhash as _xxhash
except ImportError:  # pragma: no cover - then CPU tensors get the checksum too
    _xxhash = None

_CHUNK = 1 << 20  # 64-bit words per chunk: bounds the temporaries at 8 MiB
_MASK = (1 << 64) - 1
_POSITIONS: dict[tuple[str, int], torch.Tensor] = {}  # 1.._CHUNK per device, sliced per chunk


def _positions(device: torch.device) -> torch.Tensor:
    key = (str(device), _CHUNK)
    if key not in _POSITIONS:
        _POSITIONS[key] = torch.arange(1, _CHUNK + 1, dtype=torch.int64, device=device)
    return _POSITIONS[key]


def tensor_digest(tensor: torch.Tensor) -> str:
    """32 hex digits that change when any byte of `tensor` changes (see the module docstring)."""
    raw = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
    if raw.device.type == "cpu" and _xxhash is not None:
        return _xxhash.xxh3_128_hexdigest(raw.numpy().data)
    return checksum_digest(raw)


def checksum_digest(raw: torch.Tensor) -> str:
    """The on-device digest of a flat uint8 tensor: the words' sum and position-weighted sum."""
    pad = (-raw.numel()) % 8
    if pad or raw.storage_offset() % 8:
        raw = torch.cat([raw, raw.new_zeros(pad)])  # a copy: aligned, whole words
    words = raw.view(torch.int64)
    pos = _positions(words.device)
    plain = weighted = 0
    for start in range(0, words.numel(), _CHUNK):
        chunk = words[start : start + _CHUNK]
        total = int(chunk.sum())  # int64 wraps: sums modulo 2^64
        plain += total
        # sum of word x (start + i) = sum of word x i + start x sum of words
        weighted += int((chunk * pos[: chunk.numel()]).sum()) + start * total
    return f"{plain & _MASK:016x}{weighted & _MASK:016x}"


class DigestedStream:
    """Wraps a (name, tensor) stream: records each tensor's digest as the consumer takes it.

    `drain()` pulls what the consumer left (the transport must finish either way) without
    recording it, so a loader that stopped early shows as missing digests, not as a hang.
    """

    def __init__(self, stream: Iterable[tuple[str, torch.Tensor]]) -> None:
        self._stream = iter(stream)
        self.digests: dict[str, str] = {}

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in self._stream:
            self.digests[name] = tensor_digest(tensor)
            yield name, tensor

    def drain(self) -> int:
        """Receives and drops the rest of the stream; returns how many tensors that was."""
        return sum(1 for _ in self._stream)


def differing(sent: Mapping[str, str], loaded: Mapping[str, str]) -> list[str]:
    """Names of the tensors the engine did not load as sent (a different digest, or none)."""
    return [name for name, digest in sent.items() if loaded.get(name) != digest]


def digest_failure(
    sent: Mapping[str, str], engines: Sequence[Sequence[Mapping[str, str]]]
) -> str | None:
    """None when every worker of every engine loaded every tensor as sent, else what differed.

    `engines[i][w]`: the digests worker w of engine i reported (tensor-parallel workers each load
    the whole stream and take their shard).
    """
    problems = []
    for i, workers in enumerate(engines):
        for w, loaded in enumerate(workers):
            bad = differing(sent, loaded)
            if bad:
                shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
                problems.append(
                    f"engine {i} worker {w}: {len(bad)} of {len(sent)} tensors ({shown})"
                )
    if not problems:
        return None
    return (
        "after the weight sync an engine did not load the bytes the learner sent (per-tensor "
        "digests differ or are missing: " + "; ".join(problems) + "); refusing to train off-policy"
    )
