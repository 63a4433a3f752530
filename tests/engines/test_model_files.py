"""model.path as a local folder or a hub id, tested on local files (no network here)."""

import shutil

import pytest

from oreal.engines.model_files import looks_like_hub_id, resolve_model_path
from oreal.errors import ModelPathError


def test_a_local_folder_is_used_as_it_is(tiny_model_dir, tmp_path):
    assert resolve_model_path(str(tiny_model_dir), str(tmp_path)) == str(tiny_model_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelPathError, match=r"model.path=.*empty: the folder has no config.json"):
        resolve_model_path(str(tmp_path / "empty"), str(tmp_path))


def test_a_path_that_is_neither_folder_nor_hub_id_names_itself(tmp_path):
    with pytest.raises(ModelPathError, match=r"^model.path=/nonexistent/model: no such folder, and not a Hugging Face hub id"):
        resolve_model_path("/nonexistent/model", str(tmp_path))
    assert looks_like_hub_id("Qwen/Qwen2.5-7B") and looks_like_hub_id("internlm/OREAL-7B-SFT")
    assert not any(map(looks_like_hub_id, ["/a/b", "./a/b", "a/b/c", "../x/y", "x"]))


def fake_hub_cache(cache, repo_id, model_dir):
    """The layout huggingface_hub keeps on disk: models--org--name/{refs/main, snapshots/<rev>}."""
    repo = cache / "hub" / f"models--{repo_id.replace('/', '--')}"
    rev = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(model_dir, repo / "snapshots" / rev)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    return repo / "snapshots" / rev


def test_a_hub_id_comes_from_the_shared_cache_without_a_network(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = fake_hub_cache(tmp_path, "oreal/tiny", tiny_model_dir)
    assert resolve_model_path("oreal/tiny", str(tmp_path)) == str(snapshot)
    with pytest.raises(ModelPathError, match=r"model.path=oreal/other: not in the cache .* and the hub is unreachable .*"
                                             r"huggingface-cli download oreal/other"):
        resolve_model_path("oreal/other", str(tmp_path))
