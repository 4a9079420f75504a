"""Model files: safetensors + JSON round trip, and a clear error for every kind of damage."""

from __future__ import annotations

import json

import pytest
import torch

from etm import ETM
from etm.persistence import load_model, save_model

VOCAB = [f"word{i}" for i in range(40)]


def _model(**kw) -> ETM:
    torch.manual_seed(0)
    return ETM(5, 40, 16, 8, **kw)


def test_round_trip_gives_identical_outputs(tmp_path) -> None:
    m = _model(theta_act="tanh")
    save_model(tmp_path / "m", m, VOCAB, extra={"note": "hello"})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    loaded, vocab, config = load_model(tmp_path / "m")
    assert vocab == VOCAB
    assert config["note"] == "hello" and config["model"]["theta_act"] == "tanh"
    x = torch.rand(3, 40)
    assert torch.equal(m.eval().get_theta(x)[0], loaded.get_theta(x)[0])
    assert torch.equal(m.get_beta(), loaded.get_beta())


def test_fixed_embeddings_travel_with_the_model(tmp_path) -> None:
    emb = torch.randn(40, 8)
    m = ETM.from_pretrained(emb, num_topics=5, t_hidden_size=16)
    save_model(tmp_path / "m", m, VOCAB)
    loaded, _, _ = load_model(tmp_path / "m")
    assert not loaded.train_embeddings
    assert torch.equal(loaded.rho.weight, emb)


def test_no_pickle_in_model_files(tmp_path) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    raw = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert not raw.startswith(b"\x80") and b"PK\x03\x04" not in raw[:4]


def test_missing_directory(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model directory .*nowhere does not exist"):
        load_model(tmp_path / "nowhere")


def test_missing_config(tmp_path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(FileNotFoundError, match=r"config.json is missing: .* is not a model saved by etm"):
        load_model(tmp_path / "m")


def test_truncated_weights(tmp_path) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    path = tmp_path / "m" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"model.safetensors is corrupt or truncated"):
        load_model(tmp_path / "m")


def test_garbage_weights(tmp_path) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=r"corrupt or truncated"):
        load_model(tmp_path / "m")


def test_corrupt_config(tmp_path) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    (tmp_path / "m" / "config.json").write_text('{"format": "etm-model",\n "format_version": ')
    with pytest.raises(ValueError, match=r"config.json is corrupt: invalid JSON at line 2"):
        load_model(tmp_path / "m")


def test_config_that_is_not_an_object_is_named(tmp_path) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    (tmp_path / "m" / "config.json").write_text("[1, 2]")
    expected = r"m/config\.json is not an etm model config: expected a JSON object, got a list"
    with pytest.raises(ValueError, match=expected):
        load_model(tmp_path / "m")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_topics", "fifteen", r'model\.num_topics must be a positive integer, got "fifteen"'),
        ("num_topics", 0, r"model\.num_topics must be a positive integer, got 0"),
        ("vocab_size", 40.0, r"model\.vocab_size must be a positive integer, got 40\.0"),
        ("t_hidden_size", True, r"model\.t_hidden_size must be a positive integer, got true"),
        ("rho_size", None, r"model\.rho_size must be a positive integer, got null"),
        ("theta_act", 3, r"model\.theta_act must be an activation name \(a string\), got 3"),
        ("train_embeddings", "yes", r'model\.train_embeddings must be true or false, got "yes"'),
        ("enc_drop", "0.1", r'model\.enc_drop must be a number in \[0, 1\), got "0\.1"'),
        ("similarity", "euclid", r'model\.similarity must be one of \[\'dot\', \'cosine\'\], got "euclid"'),
        ("temperature", 0, r"model\.temperature must be a positive number, got 0"),
    ],
)
def test_config_model_section_types_are_checked(tmp_path, field, value, message) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model"][field] = value
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"m/config\.json: " + message):
        load_model(tmp_path / "m")


def test_config_model_section_that_is_not_an_object(tmp_path) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model"] = [5, 40]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config\.json: the 'model' section must be a JSON object, got a list"):
        load_model(tmp_path / "m")


def test_newer_format_version(tmp_path) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["format_version"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"model format version 99 is not supported; this etm reads version 1"):
        load_model(tmp_path / "m")


def test_vocabulary_length_mismatch(tmp_path) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    (tmp_path / "m" / "vocab.txt").write_text("\n".join(VOCAB[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"vocab.txt has 39 words but config.json says vocab_size=40"):
        load_model(tmp_path / "m")


def test_shape_mismatch_names_the_tensor(tmp_path) -> None:
    save_model(tmp_path / "m", _model(), VOCAB)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["model"]["num_topics"] = 6
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"tensor 'mu_q_theta.weight' has shape \(5, 16\), expected \(6, 16\)"):
        load_model(tmp_path / "m")


def test_missing_and_unexpected_tensors_are_listed(tmp_path) -> None:
    from safetensors.torch import save_file

    m = _model()
    save_model(tmp_path / "m", m, VOCAB)
    state = {k: v.contiguous() for k, v in m.state_dict().items() if k != "alphas.weight"}
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing tensors \['alphas.weight'\], unexpected \['extra.weight'\]"):
        load_model(tmp_path / "m")


def test_save_refuses_wrong_vocabulary_length(tmp_path) -> None:
    with pytest.raises(ValueError, match="vocabulary has 3 words but the model has vocab_size=40"):
        save_model(tmp_path / "m", _model(), ["a", "b", "c"])


def test_writes_are_atomic(tmp_path, monkeypatch) -> None:
    """A crash while writing leaves the previous file intact and no temporary file behind."""
    import etm._io as io

    save_model(tmp_path / "m", _model(), VOCAB)
    before = (tmp_path / "m" / "model.safetensors").read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", boom)
    torch.manual_seed(1)
    with pytest.raises(OSError, match="disk full"):
        save_model(tmp_path / "m", ETM(5, 40, 16, 8), VOCAB)
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.endswith(".tmp")]


def test_background_bias_round_trips(tmp_path) -> None:
    torch.manual_seed(0)
    bg = torch.log(torch.softmax(torch.randn(40), 0))
    m = ETM(5, 40, 16, 8, background=bg)
    save_model(tmp_path / "m", m, VOCAB)
    loaded, _, config = load_model(tmp_path / "m")
    assert config["model"]["background"] is True
    assert torch.equal(loaded.background, bg)
    assert torch.allclose(loaded.get_beta(), m.eval().get_beta())


def test_cosine_similarity_round_trips(tmp_path) -> None:
    m = _model(similarity="cosine", temperature=0.25)
    save_model(tmp_path / "m", m, VOCAB)
    loaded, _, config = load_model(tmp_path / "m")
    assert (config["model"]["similarity"], config["model"]["temperature"]) == ("cosine", 0.25)
    assert (loaded.similarity, loaded.temperature) == ("cosine", 0.25)
    assert torch.equal(loaded.get_beta(), m.eval().get_beta())


def test_models_saved_before_similarity_existed_load_as_dot_product(tmp_path) -> None:
    m = _model()
    save_model(tmp_path / "m", m, VOCAB)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    del cfg["model"]["similarity"], cfg["model"]["temperature"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    loaded, _, _ = load_model(tmp_path / "m")
    assert loaded.similarity == "dot"
    assert torch.equal(loaded.get_beta(), m.eval().get_beta())
