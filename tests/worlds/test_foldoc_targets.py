import pytest

from protege.worlds.text.foldoc import first_sentence, foldoc_examples
from protege.worlds.text.tasks import TaskConfig, load_task
from tests.conftest import write_dictd

ENTRIES = [(["cml"], "cml\n\n   1. A query language. Used by {Borgida}.\n\n   2. Chemical Markup Language.\n"),
           (["juno"], "juno\n\n   A numerical constraint-oriented language for graphics, e.g. the one at MIT.\n"),
           (["tiny"], "tiny\n\n   Too short.\n"),
           (["bogon"], "bogon\n\n   (By analogy with proton) 1. An incorrect bit of data! Also a person.\n")]


def test_first_sentence_drops_sense_numbers_and_keeps_abbreviations():
    assert first_sentence("1. A query language. Used by Borgida. 2. Chemical Markup.") == "A query language."
    assert first_sentence("A language, e.g. the one at MIT. More text.") == "A language, e.g. the one at MIT."
    assert first_sentence("No full stop at all") == "No full stop at all"
    assert first_sentence("Is it? Yes.") == "Is it?"


def test_first_sentence_target_holds_out_the_same_terms(tmp_path):
    base = write_dictd(tmp_path, ENTRIES)
    full = foldoc_examples(str(base))
    short = foldoc_examples(str(base), only_first_sentence=True)
    assert [e.prompt for e in short] == [e.prompt for e in full] == ["Define: cml", "Define: juno", "Define: bogon"]
    assert [e.completion for e in short] == [
        "A query language.", "A numerical constraint-oriented language for graphics, e.g. the one at MIT.",
        "(By analogy with proton) An incorrect bit of data!"]
    assert full[0].completion.startswith("1. A query language. Used by Borgida. 2.")
    # a cap on words applies before the cut: the first sentence of a cut-short definition
    assert foldoc_examples(str(base), max_words=4, only_first_sentence=True)[0].completion == "A query language."


def test_task_config_takes_the_target_and_refuses_bad_values(tmp_path, monkeypatch):
    from protege.worlds.text import foldoc
    base = write_dictd(tmp_path, ENTRIES)
    real = foldoc.split
    monkeypatch.setattr(foldoc, "split", lambda *a, **k: real(*a, **{**k, "database": str(base)}))
    data = load_task(TaskConfig(kind="foldoc", train_size=0, eval_size=1, definition="first_sentence"), seed=0)
    assert len(data.train) == 2 and all(e.completion.endswith((".", "!")) for e in data.train + data.eval)
    with pytest.raises(ValueError, match="definition_words"):
        TaskConfig(kind="foldoc", definition_words=0)


CASED = [(["berard object and class specifier", "bocs"],
          "Berard Object and Class Specifier\nBOCS\n\n   <programming> (BOCS) An object-oriented {CASE} tool.\n"),
         (["beos"], "BeOS\n\n   <operating system> An operating system by Be, Inc. for the BeBox.\n"),
         (["language for the on-line investigation and transformation of abstractions", "lolita"],
          ("Language for the On-Line Investigation and Transformation of\nAbstractions\nLOLITA\n\n"
           "   A library of functions for vector-space analysis.\n"))]


def test_term_as_written_prompts_with_the_header_and_drops_alias_lines(tmp_path):
    base = write_dictd(tmp_path, CASED)
    index = foldoc_examples(str(base), only_first_sentence=True)
    written = foldoc_examples(str(base), only_first_sentence=True, term="as_written")
    assert [e.prompt for e in index] == ["Define: berard object and class specifier", "Define: beos",
                                         ("Define: language for the on-line investigation and "
                                          "transformation of abstractions")]
    # the index target begins with the alias line; the as-written one after the whole header
    assert index[0].completion == "BOCS (BOCS) An object-oriented CASE tool."
    assert [(e.prompt, e.completion) for e in written] == [
        ("Define: Berard Object and Class Specifier", "(BOCS) An object-oriented CASE tool."),
        ("Define: BeOS", "An operating system by Be, Inc. for the BeBox."),
        # a header wrapped over two lines matches no line: the index headword stands in
        ("Define: language for the on-line investigation and transformation of abstractions",
         "A library of functions for vector-space analysis.")]


def test_task_config_passes_the_term_and_the_loader_refuses_an_unknown_one(tmp_path, monkeypatch):
    from protege.core.config import from_dict
    from protege.core.errors import UserError
    from protege.worlds.text import foldoc
    base = write_dictd(tmp_path, CASED)
    real = foldoc.split
    monkeypatch.setattr(foldoc, "split", lambda *a, **k: real(*a, **{**k, "database": str(base)}))
    data = load_task(TaskConfig(kind="foldoc", train_size=0, eval_size=1, term="as_written"), seed=0)
    assert {e.prompt for e in data.train + data.eval} >= {"Define: BeOS"}
    with pytest.raises(UserError, match="term must be one of index, as_written, got 'cased'"):
        from_dict(TaskConfig, {"kind": "foldoc", "term": "cased"}, "recipe.yaml", "task.")
    with pytest.raises(UserError, match="task.term: unknown value 'cased'; valid: index, as_written"):
        foldoc.foldoc_examples(str(base), term="cased")


def _lm_margin():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("lm_margin", Path(__file__).parents[2] / "scripts" / "lm_margin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_term_baselines_copy_the_term_and_pick_the_constant_that_scores_best_after_it():
    from protege.data.text import TextExample
    from protege.eval.text_metrics import rouge_l
    lm_margin = _lm_margin()
    train = [TextExample("Define: Foo Bar", "(FB) Foo Bar is a network protocol."),
             TextExample("Define: Baz", "Baz is a network protocol."),
             TextExample("Define: Qux", "A language."), TextExample("Define: Quux", "A language."),
             TextExample("Define: Corge", "A language.")]
    held_out = [TextExample("Define: Grault", "Grault is a network protocol.")]
    out = lm_margin.baseline_completions("foldoc", train, held_out, seed=0)
    assert out["term"] == ["Grault"]
    # naive reference: every training completion, scored after each training example's own term
    after_term = {c: sum(rouge_l(e.completion, f"{e.prompt[8:]} {c}") for e in train)
                  for c in {e.completion for e in train}}
    assert out["term+best_constant"] == [f"Grault {max(after_term, key=after_term.get)}"] == ["Grault A language."]
    assert "term" not in lm_margin.baseline_completions("arithmetic", train, held_out, seed=0)


def test_copy_stats_count_term_tokens_initials_and_case():
    from protege.data.text import TextExample
    stats = _lm_margin().copy_stats([
        TextExample("Define: Media Access Control", "(MAC) The lower sublayer of access control."),
        TextExample("Define: Berard Object", "A CASE tool."),
        TextExample("Define: BeOS", "BeOS is an operating system."),
        TextExample("Define: beos", "An operating system, (BeOS) by Be.")])
    assert stats["multiword_terms"] == 2 and stats["one_word_terms"] == 2
    assert stats["initials_in_reference"] == 0.5  # "mac" is a token of the first reference only
    assert stats["one_word_term_in_reference"] == 1.0 and stats["one_word_term_same_case"] == 0.5
    # reference tokens found in the term: 2 of 7 ("access control"), 0 of 3, 1 of 5, 1 of 6
    assert stats["reference_tokens_in_term"] == pytest.approx((2 / 7 + 0 + 1 / 5 + 1 / 6) / 4)


def test_model_copies_counts_initials_one_word_terms_and_loops():
    copies = _lm_margin().model_copies([
        ("Define: Media Access Control", "(MAC) A protocol.", "(MAC) The lower sublayer."),
        ("Define: Service Advertising Protocol", "(SSSS) A protocol.", "(SAP) A protocol."),
        ("Define: time complexity", "A function.", "The way in which ..."),
        ("Define: BeOS", "BeOS is a system.", "An operating system."),
        ("Define: locality", "a program or program or program or program", "In sequential ...")])
    assert copies == {"initials_references": 2, "initials_copied": 1, "one_word_terms": 2,
                      "one_word_copied": 1, "looping": 1}


def test_restate_term_changes_only_what_the_model_trains_on(tmp_path, monkeypatch):
    from protege.worlds.text import foldoc
    from protege.worlds.text.tasks import training_examples
    base = write_dictd(tmp_path, ENTRIES)
    real = foldoc.split
    monkeypatch.setattr(foldoc, "split", lambda *a, **k: real(*a, **{**k, "database": str(base)}))
    cfg = TaskConfig(kind="foldoc", train_size=0, eval_size=1, definition="first_sentence", restate_term=True)
    data = load_task(cfg, seed=0)
    plain = load_task(TaskConfig(kind="foldoc", train_size=0, eval_size=1, definition="first_sentence"), seed=0)
    assert data == plain  # the references and the baselines' training completions are the plain ones
    trained = training_examples(cfg, data)
    assert [e.prompt for e in trained] == [e.prompt for e in data.train]
    assert [e.completion for e in trained] == [f"{foldoc.term_of(e)}: {e.completion}" for e in data.train]
    assert training_examples(TaskConfig(kind="foldoc"), data) is data.train
    with pytest.raises(ValueError, match="restate_term=true is for kind=foldoc"):
        TaskConfig(kind="arithmetic", restate_term=True)
