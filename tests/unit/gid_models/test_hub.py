"""Model folders: finding them (path, models folder, Hub cache) and reading them safely."""

import json

import pytest
import torch
from torch import nn

from gid_models.hub import (
    ModelFolderError,
    check_revision,
    download_model_folder,
    hub_folder_name,
    load_weights,
    read_config,
    read_safetensors,
    resolve_model_folder,
    save_weights,
)


def _fake_hub_cache(cache_dir, repo_id, files, commit="0123456789abcdef0123456789abcdef01234567"):
    """The on-disk layout huggingface_hub gives a downloaded repo (refs + snapshot)."""
    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, text in files.items():
        (snapshot / name).write_text(text)
    return snapshot


def test_a_local_folder_path_is_used_as_it_is(tmp_path):
    assert resolve_model_folder(tmp_path) == tmp_path


def test_a_folder_name_is_found_in_the_models_folder(tmp_path):
    (tmp_path / "gid" / "tiny").mkdir(parents=True)
    assert resolve_model_folder("tiny", search_dirs=[tmp_path / "gid"]) == tmp_path / "gid" / "tiny"


def test_a_repo_id_already_in_the_hub_cache_loads_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _fake_hub_cache(tmp_path / "hub", "someone/tiny-gid", {"config.json": "{}"})
    folder = resolve_model_folder("someone/tiny-gid", search_dirs=[tmp_path], download_dir=tmp_path / "hub")
    assert folder.resolve() == snapshot.resolve() and (folder / "config.json").is_file()


def test_an_unreachable_repo_names_the_repo_the_revision_and_the_folder_to_fill_by_hand(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFolderError) as error:
        resolve_model_folder(
            "someone/absent", search_dirs=[tmp_path / "gid"], download_dir=tmp_path / "hub", revision="v2"
        )
    message = str(error.value)
    assert "'someone/absent'" in message and "'v2'" in message and str(tmp_path / "gid" / "absent") in message


@pytest.mark.parametrize(
    "revision", ["../../../etc", "/etc/passwd", "main/../../x", "a b", "refs//main", ".hidden", "v1.", ""]
)
def test_a_revision_that_is_no_branch_tag_or_commit_is_refused_before_the_cache_is_read(
    revision, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_hub_cache(tmp_path / "hub", "someone/tiny-gid", {"config.json": "{}"})
    with pytest.raises(ModelFolderError, match="is not a Hub revision: give a branch or tag name"):
        download_model_folder("someone/tiny-gid", revision=revision, download_dir=tmp_path / "hub")


@pytest.mark.parametrize(
    "revision", ["main", "v1.0", "refs/pr/1", "0123456789abcdef0123456789abcdef01234567"]
)
def test_branch_tag_pull_request_and_commit_revisions_are_accepted(revision):
    assert check_revision(revision) == revision


def test_a_cached_ref_that_points_outside_the_cache_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_hub_cache(tmp_path / "hub", "someone/tiny-gid", {"config.json": "{}"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text("{}")
    refs = tmp_path / "hub" / "models--someone--tiny-gid" / "refs"
    (refs / "evil").write_text("../../../elsewhere")
    # Refused before huggingface_hub reads anything that the ref names (trees/<ref>.json, ...).
    with pytest.raises(
        ModelFolderError, match="holds '../../../elsewhere' where a commit hash belongs .*altered"
    ):
        download_model_folder("someone/tiny-gid", revision="evil", download_dir=tmp_path / "hub")


def test_a_name_that_is_neither_a_folder_nor_a_repo_id_says_where_it_looked(tmp_path):
    with pytest.raises(ModelFolderError, match="no model folder 'nothing here'"):
        resolve_model_folder("nothing here", search_dirs=[tmp_path])


def test_configs_of_another_type_or_a_newer_version_are_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"type": "gid-renderer", "version": 1}))
    with pytest.raises(ValueError, match="not a 'gid-motion-ldm'"):
        read_config(path, "gid-motion-ldm", 1)
    path.write_text(json.dumps({"type": "gid-motion-ldm", "version": 7}))
    with pytest.raises(ValueError, match="update the node pack"):
        read_config(path, "gid-motion-ldm", 1)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_config(path, "gid-motion-ldm", 1)


def test_weights_round_trip_and_mismatches_are_named(tmp_path):
    module = nn.Linear(3, 2)
    save_weights(module, tmp_path / "w.safetensors")
    other = nn.Linear(3, 2)
    load_weights(other, tmp_path / "w.safetensors", "config.json")
    assert torch.equal(other.weight, module.weight)
    with pytest.raises(
        ValueError, match=r"wrong shape: bias \(2,\) instead of \(4,\), weight \(2, 3\) instead of \(4, 3\)"
    ):
        load_weights(nn.Linear(3, 4), tmp_path / "w.safetensors", "config.json")


def test_a_truncated_weights_file_gives_a_clear_error(tmp_path):
    save_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[:40])
    with pytest.raises(ValueError, match="truncated or not a safetensors file"):
        read_safetensors(tmp_path / "w.safetensors")


@pytest.mark.parametrize("typed", ["/etc", "../../etc", "owner/..", "comfy/../../etc", "no-slash"])
def test_a_hub_repo_id_that_is_a_path_never_opens_a_local_folder(tmp_path, typed):
    with pytest.raises(ModelFolderError, match=r"is not a Hugging Face Hub repo id \(owner/name"):
        download_model_folder(typed, search_dirs=[tmp_path], download_dir=tmp_path / "hub")


def test_a_hub_repo_id_that_is_also_a_local_folder_goes_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    with pytest.raises(ModelFolderError, match="could not get the model 'owner/name'"):
        download_model_folder("owner/name", search_dirs=[tmp_path / "gid"], download_dir=tmp_path / "hub")


TINY_REPO = {
    "config.json": b"{}",
    "vae.safetensors": b"\0" * 100_000,
    "README.md": b"# tiny",
    "notes.bin": b"x",
}


def test_a_hub_repo_lands_as_a_named_folder_of_plain_files_in_the_models_folder(tmp_path, fake_hub):
    fake_hub.repos["someone/tiny-gid"] = TINY_REPO
    folder = download_model_folder("someone/tiny-gid", download_dir=tmp_path / "hub", models_dir=tmp_path)
    assert folder == (tmp_path / "someone--tiny-gid").resolve()
    assert sorted(path.name for path in folder.iterdir() if not path.name.startswith(".")) == [
        "README.md",
        "config.json",
        "vae.safetensors",
    ]  # model files only: notes.bin is not fetched
    assert (folder / "vae.safetensors").is_file() and not (folder / "vae.safetensors").is_symlink()


def test_a_downloaded_hub_repo_is_read_from_its_folder_offline(tmp_path, fake_hub, monkeypatch):
    fake_hub.repos["someone/tiny-gid"] = TINY_REPO
    download_model_folder("someone/tiny-gid", download_dir=tmp_path / "hub", models_dir=tmp_path)
    fake_hub.repos.clear()  # the Hub forgets the repo: only the folder on disk can answer
    downloads = len(fake_hub.downloads)
    folder = download_model_folder("someone/tiny-gid", download_dir=tmp_path / "hub", models_dir=tmp_path)
    assert (folder / "config.json").read_text() == "{}" and len(fake_hub.downloads) == downloads


def test_a_hub_download_reports_its_progress_up_to_the_whole_size(tmp_path, fake_hub):
    fake_hub.repos["someone/tiny-gid"] = TINY_REPO
    reports = []
    download_model_folder(
        "someone/tiny-gid",
        download_dir=tmp_path / "hub",
        models_dir=tmp_path,
        progress=lambda done, total: reports.append((done, total)),
    )
    assert reports and reports[-1][0] == reports[-1][1] > 0
    assert all(0 <= done <= total for done, total in reports)


def test_an_exception_from_the_progress_callback_stops_the_download_and_propagates(tmp_path, fake_hub):
    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled

    fake_hub.repos["someone/tiny-gid"] = TINY_REPO
    with pytest.raises(Cancelled):
        download_model_folder(
            "someone/tiny-gid", download_dir=tmp_path / "hub", models_dir=tmp_path, progress=cancel
        )


def test_a_revision_other_than_main_downloads_into_a_folder_of_its_own(tmp_path, fake_hub):
    fake_hub.repos["someone/tiny-gid"] = TINY_REPO
    folder = download_model_folder(
        "someone/tiny-gid", "v2", download_dir=tmp_path / "hub", models_dir=tmp_path
    )
    assert folder.name == "someone--tiny-gid@v2" == hub_folder_name("someone/tiny-gid", "v2")
    assert hub_folder_name("someone/tiny-gid", "refs/pr/1") == "someone--tiny-gid@refs-pr-1"


def test_a_repo_in_the_hub_cache_of_an_earlier_version_still_loads_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _fake_hub_cache(tmp_path / "hub", "someone/tiny-gid", {"config.json": "{}"})
    folder = download_model_folder("someone/tiny-gid", download_dir=tmp_path / "hub", models_dir=tmp_path)
    assert folder.resolve() == snapshot.resolve()
