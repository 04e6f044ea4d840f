"""Query-driven navigation (the paper's downstream use): start at the page that best matches a free-
text query by TF-IDF, then follow the learned policy with the query as the target, never revisiting
a page, and report the pages visited as evidence candidates."""

import numpy as np
import torch

from protege.nn.link_scorer import candidates
from protege.nn.text_encoders import encode_texts


def tfidf_scores(texts: list[str], query: str) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    x = tfidf.fit_transform(texts)
    return (x @ tfidf.transform([query]).T).toarray().ravel()


def query_embedding(query: str, encoder: str, emb: np.ndarray, lexical: np.ndarray) -> np.ndarray:
    """The query in the page-embedding space: encoded directly by MiniLM; for the TF-IDF+SVD encoder
    (whose fitted projection is not kept) the normalised mean of the 10 best lexical matches."""
    if encoder == "minilm":
        return encode_texts([query], "minilm")[0]
    top = np.argsort(-lexical)[:10]
    v = emb[top].mean(0)
    return v / max(np.linalg.norm(v), 1e-9)


def search(model, graph, encoder: str, query: str, steps: int = 6) -> list[dict]:
    """The start page and the pages the policy visits next, with their lexical match to the query."""
    titles = graph.titles()
    lexical = tfidf_scores(graph.texts(), query)
    emb = model.emb.numpy()
    q = query_embedding(query, encoder, emb, lexical)
    cur = int(np.argmax(lexical))
    path, seen = [cur], {cur}
    for _ in range(steps):
        cand, seg, _ = candidates(graph.offsets, graph.targets, np.array([cur]))
        fresh = np.array([c not in seen for c in cand], bool)
        if not fresh.any():
            break
        with torch.inference_mode():
            logits = model(torch.tensor([cur]), torch.tensor([cur]), torch.from_numpy(cand),
                           torch.from_numpy(seg), goal_emb=torch.from_numpy(q[None].astype(np.float32)))
        scores = np.where(fresh, logits.numpy(), -np.inf)
        cur = int(cand[int(np.argmax(scores))])
        path.append(cur)
        seen.add(cur)
    return [{"step": i, "page": titles[p], "tfidf": round(float(lexical[p]), 4),
             "similarity": round(float(emb[p] @ q), 4)} for i, p in enumerate(path)]
