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
          "Language for the On-Line Investigation and Transformation of\nAbstractions\nLOLITA\n\n"
          "   A library of functions for vector-space analysis.\n")]


def test_term_as_written_prompts_with_the_header_and_drops_alias_lines(tmp_path):
    base = write_dictd(tmp_path, CASED)
    index = foldoc_examples(str(base), only_first_sentence=True)
    written = foldoc_examples(str(base), only_first_sentence=True, term="as_written")
    assert [e.prompt for e in index] == ["Define: berard object and class specifier", "Define: beos",
                                         "Define: language for the on-line investigation and "
                                         "transformation of abstractions"]
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
