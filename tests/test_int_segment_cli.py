"""``edgerun segment`` on a folder of images and a camera: masks named after the images, a JSON
line each, and the inputs it cannot read named while the others are still written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgerun.cli import main
from edgerun.cli.segment import mask_names, read_image
from edgerun.evaluation.int_seg.gate import calibrate_main
from edgerun.pipelines.int_seg.components import SHIPPED_CONFIG
from edgerun.sim.camouflage import SyntheticConfig, generate_sample


def test_segment_writes_a_mask_per_image_and_names_the_unreadable_one(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    sample = generate_sample(np.random.default_rng(5), SyntheticConfig(height=96, width=128))
    cv2.imwrite(str(folder / "field.png"), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR))
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not an image either, and not one by its name")
    with pytest.raises(SystemExit) as exit_:
        main(["segment", str(folder), "--out", str(tmp_path / "out"), "--method", "generic", "--vocabulary", "frog,crab,fish"])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert "broken.jpg: not an image OpenCV can read" in captured.err and "notes" not in captured.err
    mask = cv2.imread(str(tmp_path / "out" / "field.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (96, 128) and set(np.unique(mask)) <= {0, 255}
    lines = [json.loads(line) for line in (tmp_path / "out" / "segment.jsonl").read_text().splitlines()]
    assert [line["image"] for line in lines] == ["field"]
    assert lines[0]["method"] == "generic" and lines[0]["instance_prompt"] == "the camouflaged animal" and lines[0]["mining_score"] == 0.0
    assert lines[0]["trusted"] is True  # no negative mining, no gate: the threshold is calibrated on mined contrasts
    assert lines[0]["mask_pixels"] == int((mask > 0).sum()) and lines[0]["seconds"] > 0


def test_segment_reads_a_camera_and_names_its_frames(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["segment", "synthetic://camouflage?width=128&height=96", "--max-frames", "2", "--iterations", "1",
              "--out", str(tmp_path)])
    assert exit_.value.code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == ["frame_000000", "frame_000001"]
    assert all(line["method"] == "int" and line["instance_prompt"] for line in lines)
    assert (tmp_path / "frame_000001.png").is_file()
    with pytest.raises(SystemExit) as exit_:  # a score no prompt mines: every mask written empty, and said so
        main(["segment", "synthetic://camouflage?width=128&height=96", "--max-frames", "2", "--iterations", "1",
              "--out", str(tmp_path / "strict"), "--min-mining-score", "1000"])
    assert exit_.value.code == 0
    strict = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["instance_prompt"] for line in strict] == [line["instance_prompt"] for line in lines]
    assert not any(line["trusted"] or line["mask_pixels"] for line in strict)
    assert not cv2.imread(str(tmp_path / "strict" / "frame_000000.png"), cv2.IMREAD_UNCHANGED).any()


def test_images_sharing_a_name_get_a_mask_each_and_the_images_folder_is_refused_as_out(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    sample = generate_sample(np.random.default_rng(5), SyntheticConfig(height=96, width=128))
    image = cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)
    for name in ("photo.png", "photo.jpg", "field.jpg"):
        cv2.imwrite(str(folder / name), image)
    with pytest.raises(SystemExit) as exit_:
        main(["segment", str(folder), "--out", str(tmp_path / "out"), "--method", "generic", "--vocabulary", "frog,crab"])
    assert exit_.value.code == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["field.png", "photo.jpg.png", "photo.png.png"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["image"], line["source"]) for line in lines] == [
        ("field", str(folder / "field.jpg")), ("photo.jpg", str(folder / "photo.jpg")), ("photo.png", str(folder / "photo.png"))]
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    with pytest.raises(SystemExit) as exit_:  # masks written among the images would replace photo.png and be read next time
        main(["segment", str(folder / "field.jpg"), "--out", str(folder / ".." / "images"), "--components", "does-not-exist.yaml"])
    assert exit_.value.code == 2 and "is the folder of the inputs (field.jpg lies there)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a file where the folder should be
        main(["segment", str(folder / "field.jpg"), "--out", str(folder / "photo.png"), "--components", "does-not-exist.yaml"])
    assert exit_.value.code == 2 and "photo.png: a file, not a folder" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_segment_rewrites_its_log_each_run_and_reads_a_12_bit_image_in_a_16_bit_png(tmp_path, capsys):
    sample = generate_sample(np.random.default_rng(5), SyntheticConfig(height=96, width=128))
    bgr = cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "deep.png"), bgr.astype(np.uint16) * 16)  # a 12-bit camera's 0-4080
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), np.round(sample.image * (16 * 255 / 4095)).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "full.png"), bgr.astype(np.uint16) * 257)  # full 16-bit range: exactly the 8-bit image
    np.testing.assert_array_equal(read_image(tmp_path / "full.png"), sample.image)
    for _ in range(2):
        with pytest.raises(SystemExit) as exit_:
            main(["segment", str(tmp_path / "full.png"), "--out", str(tmp_path / "out"), "--method", "generic"])
        assert exit_.value.code == 0
    assert [json.loads(line)["image"] for line in (tmp_path / "out" / "segment.jsonl").read_text().splitlines()] == ["full"]


@pytest.mark.parametrize("vocabulary, message", [
    ("frog,crab,Frog ", "--vocabulary: INTConfig: 'Frog' is listed twice in the vocabulary and background names"),
    (",", "--vocabulary ',': no names"),
    ("frog,background", "'background' is listed twice in the vocabulary and background names"),
])
def test_segment_refuses_a_vocabulary_that_would_skew_the_scores_before_loading_the_models(tmp_path, capsys, vocabulary, message):
    cv2.imwrite(str(tmp_path / "field.png"), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(SystemExit) as exit_:
        main(["segment", str(tmp_path / "field.png"), "--out", str(tmp_path / "out"), "--vocabulary", vocabulary,
              "--components", "does-not-exist.yaml"])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_mask_names_stay_unique_whatever_the_images_are_called():
    names = mask_names([Path(n) for n in ("Photo.jpg", "photo.jpg.png", "photo.png", "photo.png.png", "x/field.png")])
    assert names == ["Photo.jpg", "photo.jpg_2", "photo.png", "photo.png_2", "field"]
    assert len({name.casefold() for name in names}) == len(names)


@pytest.mark.parametrize("source, message", [
    ("missing.png", "no such file or folder"),
    ("notes.txt", "expected an image"),
    ("empty", "a folder without images"),
])
def test_segment_refuses_sources_it_cannot_read_before_loading_the_models(tmp_path, monkeypatch, capsys, source, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["segment", source, "--out", "out", "--components", "does-not-exist.yaml"])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["segment", "field.png", "--out", "out", "--method", "generic", "--min-mining-score", "0.1"],
     "--min-mining-score: only with --method int"),
    (["eval", "int-seg", "--holdout-families", "--calibrate-gate"], "one evaluation at a time"),
    (["eval", "int-seg", "--holdout-families", "--seed", "5"], "--seed: --holdout-families draws its own split"),
    (["eval", "int-seg", "--calibrate-gate", "--seed", "2"], "--seed: --calibrate-gate draws its own split"),  # even the default's value
])
def test_options_that_would_be_ignored_are_refused_before_anything_runs(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_calibrating_the_gate_on_a_handful_of_images_shows_the_table_but_recommends_no_threshold(capsys):
    assert calibrate_main(SHIPPED_CONFIG, 2, None) == 0
    out = capsys.readouterr().out
    assert "trust every mask" in out and "2 images are too few to set a threshold from" in out and "set it in" not in out
