"""`make demo` end to end, shortened to one epoch on a small sample dataset."""

from petseg_lib import demo


def test_demo_writes_every_figure_and_prints_the_scores(sample_root, tmp_path, capsys,
                                                        monkeypatch):
    monkeypatch.setitem(demo.DEMO, "image_size", 32)
    monkeypatch.setitem(demo.DEMO, "model_kwargs", {"base_channels": 4})
    scores = demo.main(["--data_path", str(sample_root), "--epochs", "1", "--output_dir",
                        str(tmp_path / "out"), "--checkpoint_dir", str(tmp_path / "ckpt")])
    captured = capsys.readouterr()
    out = captured.out
    assert "best valid Dice" in out and f"{scores['dice']:.4f}" in out
    # Not a terminal: one line per epoch instead of progress bars.
    assert "epoch 1: train loss" in out and "\r" not in captured.err
    for name in ("samples.png", "demo_metrics.png", "demo_history.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    assert len(list((tmp_path / "out" / "predictions").glob("*.png"))) == 6
    assert (tmp_path / "ckpt" / "demo_best.pth").is_file()
