"""Specification of training.clips: the manifest's rows and the start frames of a clip's windows.

Listing folders and cutting decoded clips into motion windows are specified where they are used:
tests/unit/training/test_prepare.py (find_sources), test_evaluate.py (clip_sources) and
test_analysis.py (clips_in_folder, motion_windows).
"""

import pytest

from gid_models.flow import source_frames_needed
from training.clips import ClipInfo, clips_from_manifest, window_starts


def test_a_window_starts_every_step_frames_while_a_whole_window_fits():
    needed = source_frames_needed(150, fps=25.0, target_fps=30.0)  # 126 frames at 25 fps
    assert list(window_starts(400, needed, 10)) == list(range(0, 275, 10))
    assert list(window_starts(400, needed, needed)) == [0, 126, 252]  # non-overlapping
    assert list(window_starts(400, needed, needed, max_windows=2)) == [0, 126]
    assert list(window_starts(needed, needed, 10)) == [0]
    assert list(window_starts(needed - 1, needed, 10)) == []  # shorter than one window


def test_a_manifest_row_keeps_where_the_clip_comes_from_and_its_licence(tmp_path):
    (tmp_path / "MANIFEST.tsv").write_text(
        "file\tsource\tlicense\tfps\toscillatory_natural\tsplit\n"
        "clips/trees.mp4\tgithub:someone/trees\tCC-BY 4.0\t15.0\tYES-trees\tval\n"
    )
    assert clips_from_manifest(tmp_path / "MANIFEST.tsv") == [
        ClipInfo(
            str(tmp_path / "clips" / "trees.mp4"),
            15.0,
            "YES-trees",
            "val",
            "github:someone/trees",
            "CC-BY 4.0",
        )
    ]


def test_a_manifest_without_the_needed_columns_is_refused_with_their_names(tmp_path):
    (tmp_path / "MANIFEST.tsv").write_text("file\tnotes\nclips/trees.mp4\t\n")
    with pytest.raises(ValueError, match=r"lacks the columns \['fps', 'oscillatory_natural'\]"):
        clips_from_manifest(tmp_path / "MANIFEST.tsv")
