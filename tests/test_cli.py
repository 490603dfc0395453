"""The `sas-fast` command: augment (layouts, bit depths, broken pairs, manifest, replay, workers,
resume after losses and after SIGKILL, errors), demo, and the module entry point."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import sas_fast
from sas_fast.cli import main
from sas_fast.folder import MANIFEST, RUN_FILE, TMP_PREFIX, Pair, find_pairs, read_pair, replay

REPO = Path(__file__).resolve().parent.parent


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array), path


def _blob(h, w, value, y0, x0, dtype=np.uint8):
    mask = np.zeros((h, w), dtype)
    mask[y0 : y0 + h // 3, x0 : x0 + w // 3] = value
    return mask


@pytest.fixture
def busi(tmp_path):
    """BUSI layout: <name>.png beside <name>_mask.png in class folders, plus broken pairs."""
    root = tmp_path / "busi"
    rng = np.random.default_rng(5)
    for i in range(2):  # 8-bit colour
        _write(root / "benign" / f"benign ({i}).png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
        _write(root / "benign" / f"benign ({i})_mask.png", _blob(24, 32, 255, 4 + i, 6))
    _write(root / "benign" / "benign (0)_mask_1.png", _blob(24, 32, 255, 14, 20))  # BUSI's second lesion
    _write(root / "malignant" / "m16.png", rng.integers(0, 65536, (20, 28), dtype=np.uint16))  # 16-bit grey
    _write(root / "malignant" / "m16_mask.png", _blob(20, 28, 255, 5, 5))
    _write(root / "malignant" / "t16.tif", rng.integers(0, 65536, (16, 16), dtype=np.uint16))  # 16-bit TIFF
    _write(root / "malignant" / "t16_mask.tif", _blob(16, 16, 1, 3, 3, np.uint16))
    _write(root / "normal" / "j.jpg", rng.integers(0, 256, (16, 24), dtype=np.uint8))  # JPEG image
    _write(root / "normal" / "j_mask.png", _blob(16, 24, 255, 2, 2))
    # Broken: shape mismatch, missing mask, undecodable image.
    _write(root / "normal" / "bad.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    _write(root / "normal" / "bad_mask.png", _blob(12, 16, 255, 1, 1))
    _write(root / "normal" / "lonely.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    (root / "normal" / "corrupt.png").write_bytes(b"\x89PNG but not really")
    _write(root / "normal" / "corrupt_mask.png", _blob(16, 16, 255, 1, 1))
    return root


@pytest.fixture
def layout(tmp_path):
    """images/ + masks/ layout with small integer labels 0, 1, 2."""
    root = tmp_path / "layout"
    rng = np.random.default_rng(6)
    for name in ("a", "b", "sub/c"):
        _write(root / "images" / f"{name}.png", rng.integers(0, 256, (20, 20), dtype=np.uint8))
        _write(root / "masks" / f"{name}.png", _blob(20, 20, 1, 2, 2) + _blob(20, 20, 2, 10, 10))
    return root


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except the run record (it names the input folder): path -> bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != RUN_FILE}


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]


BUSI_PAIRS = [
    "benign/benign (0).png", "benign/benign (1).png", "malignant/m16.png", "malignant/t16.tif",
    "normal/bad.png", "normal/corrupt.png", "normal/j.jpg",
]


def test_augment_busi_layout_end_to_end(busi, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["augment", str(busi), str(out), "--copies", "2", "--seed", "11", "--backend", "numpy"])
    captured = capsys.readouterr()
    assert rc == 1  # finished, but skipped inputs
    for name in ("normal/bad.png", "normal/lonely.png", "normal/corrupt.png"):
        assert name in captured.err
    assert "image is 16x16 (HxW) but mask normal/bad_mask.png is 12x16 (HxW)" in captured.err

    pairs, problems = find_pairs(busi, exclude=out)
    assert [p.image for p in pairs] == BUSI_PAIRS  # sorted by relative path; sample id = index * copies + k
    assert problems == ["normal/lonely.png: missing mask (expected e.g. normal/lonely_mask.png)"]
    records = _manifest(out)
    good = [i for i, p in enumerate(pairs) if p.image not in ("normal/bad.png", "normal/corrupt.png")]
    assert [r["sample_id"] for r in records] == [i * 2 + k for i in good for k in range(2)]

    config = sas_fast.SASConfig()
    for record in records:
        pair = pairs[record["sample_id"] // 2]
        assert record["image_in"] == pair.image and record["copy"] == record["sample_id"] % 2
        image, mask = read_pair(busi, pair)
        params = config.sample(1, seed=11, sample_ids=[record["sample_id"]], masks=mask[None])
        assert record["params"] == params.to_dict()
        want_image, want_mask = sas_fast.augment(image[None], mask[None], params, seed=11, backend="numpy")
        got_image = cv2.imread(str(out / record["image_out"]), cv2.IMREAD_UNCHANGED)
        got_mask = cv2.imread(str(out / record["mask_out"]), cv2.IMREAD_UNCHANGED)
        assert got_image.dtype == image.dtype and got_image.shape == image.shape  # 16-bit stays 16-bit
        np.testing.assert_array_equal(got_image, want_image[0])
        np.testing.assert_array_equal(got_mask, want_mask[0])
    # The second BUSI mask was merged into the first; output names mirror the input folders.
    merged = read_pair(busi, pairs[0])[1]
    assert merged[14, 20] == 255 and merged[4, 6] == 255
    assert (out / "images/malignant/t16_sas1.png").is_file() and (out / "masks/normal/j_sas0.png").is_file()


def test_images_masks_layout_keeps_labels(layout, tmp_path):
    out = tmp_path / "out"
    assert main(["augment", str(layout), str(out), "--copies", "3", "--seed", "2", "--quiet", "--backend", "numpy"]) == 0
    records = _manifest(out)
    assert len(records) == 9
    assert {r["image_in"] for r in records} == {"images/a.png", "images/b.png", "images/sub/c.png"}
    labels = set()
    for record in records:
        labels |= set(np.unique(cv2.imread(str(out / record["mask_out"]), cv2.IMREAD_UNCHANGED)).tolist())
    assert labels == {0, 1, 2}


def test_replay_regenerates_identical_bytes(busi, tmp_path, capsys):
    out, again = tmp_path / "out", tmp_path / "again"
    main(["augment", str(busi), str(out), "--copies", "2", "--seed", "3", "--backend", "numpy", "--quiet"])
    assert main(["replay", str(out)]) == 0
    assert "10 outputs regenerated, 0 differ" in capsys.readouterr().out
    assert main(["replay", str(out), "--into", str(again)]) == 0
    original = {k: v for k, v in _tree(out).items() if k.startswith(("images/", "masks/"))}
    assert _tree(again) == original

    tampered = out / "images/benign/benign (1)_sas0.png"
    tampered.write_bytes(cv2.imencode(".png", np.zeros((24, 32, 3), np.uint8))[1].tobytes())
    assert replay(out).differ == ["images/benign/benign (1)_sas0.png"]
    assert main(["replay", str(out)]) == 1


def test_workers_do_not_change_a_byte(busi, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--copies", "2", "--seed", "9", "--backend", "numpy", "--quiet"]
    main(["augment", str(busi), str(one), *args, "--workers", "1"])
    main(["augment", str(busi), str(two), *args, "--workers", "2"])
    assert _tree(one) == _tree(two)
    assert len(_tree(one)) == 2 * 10 + 1  # 10 outputs of image + mask, the manifest


def test_resume_after_losses(busi, tmp_path, capsys):
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    args = ["--copies", "2", "--seed", "4", "--backend", "numpy", "--quiet"]
    main(["augment", str(busi), str(fresh), *args])
    main(["augment", str(busi), str(out), *args])
    capsys.readouterr()
    # Lose two outputs (one whole, one mask only), leave a stray temporary file, a duplicated line
    # and a line cut short by a kill.
    (out / "images/benign/benign (0)_sas1.png").unlink()
    (out / "masks/malignant/m16_sas0.png").unlink()
    (out / "images/benign" / f"{TMP_PREFIX}abc.tmp").write_bytes(b"half")
    lines = (out / MANIFEST).read_text().splitlines(keepends=True)
    (out / MANIFEST).write_text("".join(lines + [lines[3], lines[5][:40]]))

    assert main(["augment", str(busi), str(out), *args]) == 1  # 1: the broken pairs are still skipped
    assert "2 outputs written, 8 already done" in capsys.readouterr().out
    assert _tree(out) == _tree(fresh)
    assert not list(out.rglob(TMP_PREFIX + "*"))


def test_resume_after_sigkill(tmp_path):
    root, out, fresh = tmp_path / "many", tmp_path / "out", tmp_path / "fresh"
    rng = np.random.default_rng(8)
    for i in range(30):
        _write(root / f"s{i:02d}.png", rng.integers(0, 256, (160, 160), dtype=np.uint8))
        _write(root / f"s{i:02d}_mask.png", _blob(160, 160, 255, 40, 50))
    args = ["--copies", "4", "--seed", "21", "--backend", "numpy"]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sas_fast", "augment", str(root), str(out), *args, "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        manifest = out / MANIFEST
        if manifest.exists() and manifest.read_text().count("\n") >= 4:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done = len(list((out / "masks").glob("*.png")))
    assert 0 < done < 120
    for path in (out / "images").glob("*.png"):  # whole files only: every visible output decodes
        assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None, path

    assert main(["augment", str(root), str(out), *args, "--quiet"]) == 0
    assert main(["augment", str(root), str(fresh), *args, "--quiet"]) == 0
    assert _tree(out) == _tree(fresh)


def test_resume_with_other_settings_is_refused(layout, tmp_path, capsys):
    out = tmp_path / "out"
    main(["augment", str(layout), str(out), "--seed", "1", "--backend", "numpy", "--quiet"])
    assert main(["augment", str(layout), str(out), "--seed", "2", "--backend", "numpy", "--quiet"]) == 2
    assert "seed: 1 then, 2 now" in capsys.readouterr().err


def test_errors_say_what_is_wrong(layout, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    (tmp_path / "empty").mkdir()
    cases = [
        (["augment", str(tmp_path / "nowhere"), str(tmp_path / "o1")], "does not exist"),
        (["augment", str(layout), str(blocker / "out")], "cannot write to output folder"),
        (["augment", str(tmp_path / "empty"), str(tmp_path / "o2")], "no image/mask pairs found"),
        (["augment", str(layout), str(tmp_path / "o3"), "--seed", "-1"], "seed: expected an integer in [0, 2**64)"),
    ]
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    for name, text, message in [
        ("code.json", "__import__('os').system('echo hacked')", "not valid JSON"),
        ("unknown.json", '{"scale": 0.5}', "unknown key(s) ['scale']"),
        ("bad.json", '{"scale_range": [0, 1]}', "scale_range: expected finite lo <= hi with lo > 0"),
        ("list.json", "[1, 2]", "expected a JSON object"),
    ]:
        (config_dir / name).write_text(text)
        cases.append((["augment", str(layout), str(tmp_path / "o4"), "--config", str(config_dir / name)], message))
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("sas-fast: error: ") and message in err, (argv, err)


def test_config_file_is_applied(layout, tmp_path):
    out = tmp_path / "out"
    config = {"scale_range": [0.5, 0.5], "placement": "center", "noise": {"gaussian": 1.0}, "sigma_range": [0.2, 0.2]}
    (tmp_path / "c.json").write_text(json.dumps(config))
    main(["augment", str(layout), str(out), "--config", str(tmp_path / "c.json"), "--backend", "numpy", "--quiet"])
    params = [r["params"] for r in _manifest(out)]
    assert {p["scale"][0] for p in params} == {0.5} and {p["kind"][0] for p in params} == {"gaussian"}
    assert {tuple(p["offset"][0]) for p in params} == {(5, 5)}  # (20 - 10) // 2


def test_find_pairs_reports_ambiguity(tmp_path):
    for name in ("x.png", "x.jpg", "x_mask.png", "y.png", "y_mask.png", "y_mask.tif", "orphan_mask.png"):
        _write(tmp_path / name, np.zeros((4, 4), np.uint8))
    pairs, problems = find_pairs(tmp_path)
    assert pairs == []
    assert problems == [
        "orphan_mask.png: mask without an image",
        "x.jpg: ambiguous, several images named 'x': x.jpg, x.png",
        "y.png: ambiguous, several masks: y_mask.png, y_mask.tif",
    ]
    assert find_pairs(tmp_path / "nothing") == ([], [])
    assert isinstance(Pair("a", "a.png", ("a_mask.png",)), Pair)


def test_output_inside_input_is_refused(layout, capsys):
    # Outputs inside the input tree would be read back as inputs (and could replace them): refused,
    # before anything is created (tests/test_cli_hardening.py covers the other overlaps).
    before = _tree(layout)
    out = layout / "augmented"
    assert main(["augment", str(layout), str(out), "--backend", "numpy", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sas-fast: error: ") and "is inside the input folder" in err and err.count("\n") == 1
    assert not out.exists() and _tree(layout) == before


def test_demo_writes_grid(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--limit", "2", "--copies", "2"]) == 0
    report = capsys.readouterr().out
    grid = cv2.imread(str(out / "sas_demo.png"), cv2.IMREAD_UNCHANGED)
    from sas_fast.data import load_samples

    images, _, _ = load_samples()
    h, w = images.shape[1:3]
    assert grid.shape == (2 * (h + 18 + 4), 3 * (w + 4), 3)
    # Contours are drawn in colour on grey images: some pixels are not grey.
    assert (grid[..., 0] != grid[..., 1]).any()
    for text in ("backend", "2 samples", "4 augmented images", "ms per image", "MPix/s", "first call"):
        assert text in report


def test_module_entry_point():
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "sas_fast", "--version"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"sas-fast {sas_fast.__version__}"


def test_bench_delegates_to_the_source_checkout(capfd, monkeypatch, tmp_path):
    import sas_fast.cli as cli

    assert main(["bench", "--help"]) == 0  # benchmarks.compare's own help, from this checkout
    assert "usage: python -m benchmarks.compare" in capfd.readouterr().out
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "sas_fast" / "cli.py"))
    assert main(["bench"]) == 2
    assert "bench needs a source checkout" in capfd.readouterr().err


def test_full_disk_mid_run_is_a_clear_error_and_resumes(layout, tmp_path, capsys, monkeypatch):
    import errno

    from sas_fast.folder import OutputTree

    out, fresh = tmp_path / "out", tmp_path / "fresh"
    args = ["--copies", "2", "--seed", "3", "--backend", "numpy", "--quiet", "--workers", "1"]
    assert main(["augment", str(layout), str(fresh), *args]) == 0
    real_write, calls = OutputTree.write, []

    def write_until_full(self, rel, data):
        calls.append(rel)
        if len(calls) > 4:  # the probe, the run record, the manifest, then two outputs
            raise OSError(errno.ENOSPC, "No space left on device", str(self.root / rel))
        real_write(self, rel, data)

    monkeypatch.setattr(OutputTree, "write", write_until_full)
    assert main(["augment", str(layout), str(out), *args]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "rerun the same command to resume" in err
    assert not list(out.rglob(TMP_PREFIX + "*"))
    monkeypatch.setattr(OutputTree, "write", real_write)
    assert main(["augment", str(layout), str(out), *args]) == 0
    assert _tree(out) == _tree(fresh)


def test_grey_images_stored_as_rgb_stay_grey_and_replay(tmp_path, capsys):
    """Issue #11: BUSI's PNGs are grey stored as RGB; independent channel noise turned the lesion
    into colour speckle. The CLI gives such files shared noise (and replay derives the same)."""
    root, out = tmp_path / "in", tmp_path / "out"
    rng = np.random.default_rng(2)
    grey = rng.integers(30, 200, (24, 32), dtype=np.uint8)
    _write(root / "g.png", np.repeat(grey[..., None], 3, axis=2))
    _write(root / "g_mask.png", _blob(24, 32, 255, 4, 6))
    _write(root / "c.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))  # real colour: independent
    _write(root / "c_mask.png", _blob(24, 32, 255, 4, 6))
    assert main(["augment", str(root), str(out), "--copies", "3", "--seed", "1", "--quiet"]) == 0
    for k in range(3):
        noisy = cv2.imread(str(out / "images" / f"g_sas{k}.png"), cv2.IMREAD_UNCHANGED)
        assert noisy.shape == (24, 32, 3) and (noisy == noisy[..., :1]).all()
    colour = [cv2.imread(str(out / "images" / f"c_sas{k}.png"), cv2.IMREAD_UNCHANGED) for k in range(3)]
    mask = [cv2.imread(str(out / "masks" / f"c_sas{k}.png"), cv2.IMREAD_UNCHANGED) for k in range(3)]
    assert any(((c[..., 1] != c[..., 0]) & (m != 0)).any() for c, m in zip(colour, mask))
    assert main(["replay", str(out)]) == 0
    assert "6 outputs regenerated, 0 differ" in capsys.readouterr().out
