"""What `eval lm` writes by hand to avoid importing transformers, scikit-learn and scipy gives their
numbers: the tokenizer read with `tokenizers` alone, generate's sampling warpers, the retrieval
baseline's TF-IDF and Spearman's correlation."""

import json
import random
import warnings

import numpy as np
import pytest
import torch

from protege.nn.tokenizer import (
    BackendTokenizer,
    load_inference_tokenizer,
    load_tokenizer,
    save_tokenizer,
    train_bpe,
)
from protege.worlds.text.arithmetic import generate as arithmetic

SPECIAL_TEXTS = ["", " ", "\n", "  two  spaces ", "<eos>", "a<eos>b", "<pad> <eos>", "<s>x</s>", "héllo wörld ✓",
                 "日本語のテキスト", "tabs\tand\r\nnewlines", "What is 12 plus 30?\n", "emoji 🙂🙂 end", "<unk>"]


def texts(n: int = 300, seed: int = 0) -> list[str]:
    """Arithmetic problems and their answers, random byte soup and the awkward cases above."""
    rng = random.Random(seed)
    alphabet = "abcdefghij XYZ0123456789.,?!\n\t-éß✓<>/"
    soup = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(n)]
    return [e.prompt + "\n" + e.completion for e in arithmetic(n, seed)] + soup + SPECIAL_TEXTS


def assert_same_tokenizer(ours, reference, strings: list[str]):
    for name in ("bos_token", "eos_token", "pad_token", "bos_token_id", "eos_token_id", "pad_token_id"):
        assert getattr(ours, name) == getattr(reference, name), name
    assert len(ours) == len(reference)
    for text in strings:
        for specials in (True, False):
            assert ours(text, add_special_tokens=specials)["input_ids"] == \
                reference(text, add_special_tokens=specials)["input_ids"], (text, specials)
    rng = random.Random(1)
    rows = [[rng.randrange(len(reference)) for _ in range(rng.randrange(0, 12))] for _ in range(200)]
    rows += [reference(t)["input_ids"] + [reference.eos_token_id] for t in strings]
    for skip in (True, False):
        assert ours.batch_decode(rows, skip_special_tokens=skip) == reference.batch_decode(rows, skip_special_tokens=skip)
        assert ours.decode(rows[0], skip_special_tokens=skip) == reference.decode(rows[0], skip_special_tokens=skip)


@pytest.fixture(scope="module")
def builtin_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok") / "builtin"
    save_tokenizer(train_bpe(texts(), 300), folder)
    return folder


def test_builtin_bpe_reads_without_transformers_and_matches_it(builtin_folder):
    ours = load_inference_tokenizer(builtin_folder)
    assert isinstance(ours, BackendTokenizer)
    assert_same_tokenizer(ours, load_tokenizer(builtin_folder), texts(200, seed=7))


def bos_template_tokenizer(folder, add_eos: bool = False):
    """A Llama-style tokenizer whose tokenizer.json itself puts BOS (and optionally EOS) around a text,
    saved as transformers' generic class."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    from tokenizers import decoders
    bpe.decoder = decoders.Metaspace()
    bpe.train_from_iterator(texts(), trainers.BpeTrainer(vocab_size=200, show_progress=False,
                                                         special_tokens=["<unk>", "<s>", "</s>"]))
    single = "<s> $A" + (" </s>" if add_eos else "")
    bpe.post_processor = processors.TemplateProcessing(single=single, pair=f"{single} $B",
                                                       special_tokens=[("<s>", 1), ("</s>", 2)])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    save_tokenizer(tok, folder)
    return folder


@pytest.mark.parametrize("add_eos", [False, True])
def test_a_bos_template_reads_without_transformers_and_matches_it(tmp_path, add_eos):
    from protege.data.tokens import special_prefix
    folder = bos_template_tokenizer(tmp_path / "bos", add_eos)
    ours, reference = load_inference_tokenizer(folder), load_tokenizer(folder)
    assert isinstance(ours, BackendTokenizer)
    assert special_prefix(ours) == special_prefix(reference) == [ours.bos_token_id]
    assert ours.pad_token == "</s>"  # no pad token: the EOS, as load_tokenizer sets
    assert_same_tokenizer(ours, reference, texts(100, seed=3))


def test_what_transformers_would_change_loads_through_transformers(tmp_path, builtin_folder):
    """A model-specific class (Llama's rebuilds the template from add_bos_token), an option that edits
    the backend, a special token that is not yet an added special token, padding in tokenizer.json:
    transformers' tokenizer, so the ids are still transformers'."""
    from tests.systems.lm_irl.test_special_tokens import llama_tokenizer
    llama = tmp_path / "llama"
    save_tokenizer(llama_tokenizer(texts(100)), llama)
    loaded = load_inference_tokenizer(llama)
    assert not isinstance(loaded, BackendTokenizer)
    assert_same_tokenizer(loaded, load_tokenizer(llama), texts(20))

    def edited(name, config_edit=None, json_edit=None):
        folder = tmp_path / name
        folder.mkdir()
        config = json.loads((builtin_folder / "tokenizer_config.json").read_text())
        backend = json.loads((builtin_folder / "tokenizer.json").read_text())
        (config_edit or (lambda c: None))(config)
        (json_edit or (lambda b: None))(backend)
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        (folder / "tokenizer.json").write_text(json.dumps(backend))
        return load_inference_tokenizer(folder)
    assert isinstance(edited("same"), BackendTokenizer)
    assert not isinstance(edited("bos", lambda c: c.update(add_bos_token=True, bos_token="<eos>")), BackendTokenizer)
    assert not isinstance(edited("class", lambda c: c.update(tokenizer_class="GPT2Tokenizer")), BackendTokenizer)
    assert not isinstance(edited("new_special", lambda c: c.update(unk_token="<unk>")), BackendTokenizer)
    assert not isinstance(edited("cleanup", lambda c: c.update(clean_up_tokenization_spaces=True)), BackendTokenizer)
    padding = {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
               "pad_type_id": 0, "pad_token": "<pad>"}
    assert not isinstance(edited("padding", json_edit=lambda b: b.update(padding=padding)), BackendTokenizer)
    not_special = edited("not_special", json_edit=lambda b: b["added_tokens"][1].update(special=False))
    assert not isinstance(not_special, BackendTokenizer)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer_config.json").write_text("{")
    with pytest.raises(Exception):  # noqa: B017 - transformers' own error, as before
        load_inference_tokenizer(tmp_path / "broken")


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 50, 1.0), (0.7, 5, 0.9), (1.3, 0, 0.5),
                                                     (1.0, 1, 1.0), (0.5, 300, 0.999), (1.0, 0, 0.01)])
def test_warp_is_generates_warpers(temperature, top_k, top_p):
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    from protege.nn.decode import Sampling, warp
    reference = LogitsProcessorList()  # the order generate applies them in
    if temperature != 1.0:
        reference.append(TemperatureLogitsWarper(temperature))
    if top_k:
        reference.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        reference.append(TopPLogitsWarper(top_p))
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 200, generator=generator) * 3
    logits[:4] = torch.round(logits[:4])  # ties at the top-k and top-p cut
    logits[4, :] = 0.0
    got = warp(logits, Sampling(temperature, top_k, top_p))
    assert torch.equal(got, reference(None, logits))


def test_tfidf_nearest_prompts_are_scikit_learns():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from protege.systems.lm_irl.baselines import nearest_prompts, tfidf_similarities
    rng = random.Random(0)
    words = ["apple", "Apple", "car", "cars", "x", "ab", "Ünïcode", "42", "4", "the", "of", "a", "B2", "n_1"]
    train = [e.prompt for e in arithmetic(400, 0)] + \
        [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 9))) for _ in range(200)]
    prompts = [e.prompt for e in arithmetic(100, 1)] + \
        [" ".join(rng.choice(words + ["unseen"]) for _ in range(rng.randrange(0, 9))) for _ in range(100)]
    vectorizer = TfidfVectorizer().fit(train)
    expected = (vectorizer.transform(prompts) @ vectorizer.transform(train).T).toarray()
    got = np.stack(list(tfidf_similarities(train, prompts)))
    assert np.array_equal(got, expected)  # bit for bit, so ties break alike
    picks = [int(np.asarray(row).argmax()) for row in expected]
    assert nearest_prompts(train, prompts) == (picks, "tfidf")
    assert sum(np.sort(row)[-1] == np.sort(row)[-2] for row in expected) > 10  # ties were tested


def test_spearman_is_scipys():
    from scipy.stats import spearmanr

    from protege.eval.stats import spearman
    rng = np.random.default_rng(0)
    for trial in range(400):
        n = int(rng.integers(2, 50))
        x = rng.normal(size=n) if trial % 2 else rng.integers(0, 4, n).astype(float)  # ties
        y = rng.integers(0, 2, n).astype(float) if trial % 3 else rng.normal(size=n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on constant input
            expected = spearmanr(x, y).statistic
        assert spearman(x, y) == expected or (np.isnan(expected) and np.isnan(spearman(x, y)))
    assert np.isnan(spearman([1.0, 2.0, np.nan], [1.0, 2.0, 3.0])) and np.isnan(spearman([1.0], [2.0]))
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2], [1, 2, 3])


def test_self_bleu_is_sacrebleus_sentence_bleu():
    import sacrebleu

    from protege.eval.text_metrics import self_bleu
    rng = random.Random(0)
    words = ["the", "a", "program", "of", "is", "to", "and", "function", "in", "language", "computer",
             "data", ".", ",", "(", ")", ";", "12", "3.5", "é", "✓", "don't"]
    groups = [[" ".join(rng.choice(words) for _ in range(rng.randrange(0, 30))) for _ in range(rng.randrange(2, 9))]
              for _ in range(150)]
    groups += [["", ""], ["a", ""], ["same text"] * 3, ["x y z ", " x y z"], ["a b", "a b c d e", "a"]]
    for group in groups:
        expected = np.mean([sacrebleu.sentence_bleu(s, group[:i] + group[i + 1:]).score for i, s in enumerate(group)])
        assert self_bleu(group) == expected, group
    assert np.isnan(self_bleu(["alone"]))


def test_rouge_tokens_load_without_the_rest_of_nltk_and_leave_it_importable():
    """In a fresh process: ROUGE-L's stemming tokenizer loads without nltk's package __init__ (all of
    nltk), leaves no nltk or rouge_score module behind, a later `import nltk` and rouge-score load
    whole as usual, and the stems are rouge-score's own."""
    import subprocess
    import sys
    code = """
import sys
from protege.eval import text_metrics
texts = ["The programs were running quickly, generalizations abound", "Ünïcode café naïve", "", "a-b c_d 3.5 x",
         "caresses ponies ties caress cats feed agreed plastered motoring sing conflated troubling sized"]
ours = [text_metrics._rouge_tokens(t) for t in texts]
assert ours[0] == ("the", "program", "were", "run", "quickli", "gener", "abound"), ours[0]
left = [m for m in sys.modules if m.split(".")[0] in ("nltk", "rouge_score")]
assert left == [], left
import nltk
from rouge_score import rouge_scorer, tokenizers
assert tokenizers.porter is nltk.stem.porter and hasattr(nltk, "word_tokenize")
assert ours == [tuple(tokenizers.DefaultTokenizer(use_stemmer=True).tokenize(t)) for t in texts]
assert text_metrics.rouge_l(texts[4], texts[0]) == text_metrics.rouge(texts[0], texts[4])["rougeL"]
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
