"""A config key added after a run was saved: the run resumes as it started, and only as it started."""

import pytest
import yaml

from protege.core.errors import UserError
from protege.core.runs import Run, added_config_key


def saved_run(tmp_path, config):
    run = Run(tmp_path / "r", config)
    run.close()
    return tmp_path / "r"


def test_an_absent_added_key_resumes_with_its_legacy_value(tmp_path, monkeypatch):
    monkeypatch.setattr("protege.core.runs._ADDED_KEYS", {})
    added_config_key("model.forward_kind", "old")
    folder = saved_run(tmp_path, {"seed": 0, "model": {"width": 8}})  # saved before the key existed
    Run(folder, {"seed": 0, "model": {"width": 8, "forward_kind": "old"}}, resume=True).close()
    with pytest.raises(UserError, match=r"model.forward_kind: saved 'old', now 'new'"):
        Run(folder, {"seed": 0, "model": {"width": 8, "forward_kind": "new"}}, resume=True)
    assert "forward_kind" not in yaml.safe_load((folder / "config.yaml").read_text())["model"]


def test_other_sections_and_unregistered_keys_are_compared_as_saved(tmp_path, monkeypatch):
    monkeypatch.setattr("protege.core.runs._ADDED_KEYS", {})
    added_config_key("model.forward_kind", "old")
    folder = saved_run(tmp_path, {"seed": 0, "policy": {"width": 8}})
    Run(folder, {"seed": 0, "policy": {"width": 8}}, resume=True).close()  # no model section: nothing filled
    with pytest.raises(UserError, match=r"policy.depth: saved '<absent>', now 2"):
        Run(folder, {"seed": 0, "policy": {"width": 8, "depth": 2}}, resume=True)


def test_the_lm_training_forward_is_registered():
    import protege.nn.lm  # noqa: F401  (registers where the key is defined)
    from protege.core.runs import _ADDED_KEYS
    assert _ADDED_KEYS["model.train_forward"] == "transformers"
