"""Grids (the book's section 7): one split for all configurations, the best chosen on validation, the test split
evaluated once, resumable; the fast paths (decoded-image cache, frozen-backbone features) compute what the plain
path computes; the learning-rate finder."""

import pyarrow.compute as pc
import pytest

import imagesasdata as iad
from imagesasdata.train import trainer as train_module
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.train.grids import expand_grid

FAST = dict(image_size=64, epochs=2, freeze="backbone", augment_crop=False, progress=False, seed=0)
GRID = {"learning_rate": [0.001, 0.01], "momentum": [0.7, 0.9]}


def test_the_books_grid_is_one_call():
    configurations, fixed = expand_grid("book")
    assert len(configurations) == 12
    assert {c["learning_rate"] for c in configurations} == {0.0005, 0.001, 0.005}
    assert {c["momentum"] for c in configurations} == {0.7, 0.9} and {c["batch_size"] for c in configurations} == {1, 4}
    assert fixed == {"recipe": "head-first", "epochs": 50, "step_size": 7, "gamma": 0.1}


@pytest.mark.trains
def test_grid_results_choice_and_test_split(sample_data, tmp_path):
    # StepLR's per-epoch rate is checked below: the head-first recipe (the default's one-cycle has no step size)
    grid = iad.tune(sample_data / "faces", GRID, out=tmp_path / "grid", test_fraction=0.25, step_size=1,
                    recipe="head-first", **FAST)
    results = grid.results.to_pylist()
    assert [r["config_id"] for r in results] == ["config_001", "config_002", "config_003", "config_004"]
    assert {(r["learning_rate"], r["momentum"]) for r in results} == {(0.001, 0.7), (0.001, 0.9), (0.01, 0.7), (0.01, 0.9)}
    for column in ("best_epoch", "val_accuracy", "val_precision", "val_recall", "val_f1", "val_loss", "seconds"):
        assert all(r[column] is not None for r in results)
    best = max(results, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    assert grid.best_config == best["config_id"]
    # every configuration saw the same split; none of them saw the test images
    splits = {tuple(sorted(grid.best.splits["image_id"].to_pylist()))}
    for r in results:
        run = iad.load_run(tmp_path / "grid" / "configs" / r["config_id"])
        splits.add(tuple(sorted(run.splits["image_id"].to_pylist())))
        assert set(run.metrics["split"].to_pylist()) == {"val"}
    assert len(splits) == 1 and len(next(iter(splits))) == 36
    # the test split is evaluated once, for the chosen configuration
    assert set(grid.test_metrics["split"].to_pylist()) == {"test"}
    assert pc.sum(pc.equal(grid.test_metrics["metric"], "accuracy")).as_py() == 1
    # the full per-epoch history of every configuration
    assert grid.history.num_rows == 4 * 2 * 2
    assert {"config_id", "learning_rate", "momentum", "epoch", "split", "loss", "accuracy"} <= set(grid.history.column_names)
    # the configuration's learning rate stays put; the epoch's scheduled rate (StepLR, step size 1) has its own column
    for row in grid.history.to_pylist():
        assert row["epoch_learning_rate"] == pytest.approx(row["learning_rate"] * 0.1 ** (row["epoch"] - 1))


@pytest.mark.trains
def test_interrupted_grid_resumes_without_rerunning_finished_configurations(sample_data, tmp_path, monkeypatch):
    straight = iad.tune(sample_data / "faces", GRID, out=tmp_path / "straight", **FAST)

    original = train_module.Trainer.run_epoch
    calls, interrupted = [], []

    def interrupt_in_third_configuration(self, epoch):
        calls.append((str(self.out.name), epoch))
        if self.out.name == "config_003" and epoch == 2 and not interrupted:
            interrupted.append(True)  # Ctrl-C once
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(train_module.Trainer, "run_epoch", interrupt_in_third_configuration)
    with pytest.raises(KeyboardInterrupt):
        iad.tune(sample_data / "faces", GRID, out=tmp_path / "resumed", **FAST)
    calls.clear()
    resumed = iad.tune(sample_data / "faces", GRID, out=tmp_path / "resumed", **FAST)
    # configurations 1 and 2 were not re-run; 3 continued at epoch 2; 4 ran whole
    assert calls == [("config_003", 2), ("config_004", 1), ("config_004", 2)]
    for one, two in zip(straight.results.to_pylist(), resumed.results.to_pylist()):
        assert one["val_accuracy"] == two["val_accuracy"]
        assert one["val_loss"] == pytest.approx(two["val_loss"], rel=1e-4)
    assert resumed.best_config == straight.best_config


@pytest.mark.trains
def test_a_different_grid_in_the_same_directory_is_refused(sample_data, tmp_path):
    iad.tune(sample_data / "faces", {"learning_rate": [0.01]}, out=tmp_path / "grid", **FAST)
    with pytest.raises(ImagesAsDataError, match=r"holds a different grid \(the configurations: the grid has 1 "
                                                r"\(learning_rate=0.01\), this call 1 \(learning_rate=0.02\)\)"):
        iad.tune(sample_data / "faces", {"learning_rate": [0.02]}, out=tmp_path / "grid", **FAST)
    with pytest.raises(ImagesAsDataError, match=r"holds a different grid \(seed: the grid has 0, this call 3\)"):
        iad.tune(sample_data / "faces", {"learning_rate": [0.01]}, out=tmp_path / "grid", **{**FAST, "seed": 3})


@pytest.mark.parametrize("grid, message", [
    ({"momentum": [0.9, 1.5]}, "momentum=1.5"),
    ({"normalize": ["imagenet", "imagnet"]}, "normalize='imagnet': choose one of .*Did you mean 'imagenet'"),
    ({"resize": ["crop", "squash"]}, "resize='squash': choose one of"),
    ({"image_size": [64, 8]}, "image_size=8 is too small"),
    ({"architecture": ["efficientnet_lite0", "resnet18x"]}, "unknown architecture 'resnet18x'"),
    ({"freeze": ["backbone", "layer3"]}, "freeze='layer3' names no stage of efficientnet_lite0.*blocks"),
])
def test_bad_configuration_fails_before_training(sample_data, tmp_path, grid, message):
    """The second configuration is the bad one: it is refused before the first trains (not hours into a grid)."""
    with pytest.raises(ImagesAsDataError, match=message):
        iad.tune(sample_data / "faces", grid, out=tmp_path / "grid", **{k: v for k, v in FAST.items() if k not in grid})
    assert not (tmp_path / "grid").exists()


@pytest.mark.parametrize("resources, message", [
    (dict(cpus_per_trial=2), "cpus_per_trial applies only to Ray Tune trials: pass backend='ray'"),
    (dict(cpus_per_trial=2, gpus_per_trial=1, backend="ray_cluster"), "cpus_per_trial and gpus_per_trial apply only to Ray Tune trials"),
    (dict(cpus_per_trial=0, backend="ray"), "cpus_per_trial=0: give a number of at least 0.01"),
    (dict(gpus_per_trial="one", backend="ray"), "gpus_per_trial='one'"),
])
def test_trial_resources_are_checked_before_anything_runs(sample_data, tmp_path, resources, message):
    with pytest.raises(ImagesAsDataError, match=message):
        iad.tune(sample_data / "faces", {"momentum": [0.7, 0.9]}, out=tmp_path / "grid", **resources, **FAST)
    assert not (tmp_path / "grid").exists()


@pytest.mark.parametrize("options", [
    dict(image_size=64, epochs=1, progress=False, seed=3),                                   # full fine-tuning
    dict(image_size=64, epochs=1, progress=False, seed=3, freeze="backbone", augment_crop=False, dropout=0.3),
])
@pytest.mark.trains
def test_fast_paths_compute_what_the_plain_path_computes(sample_data, tmp_path, options):
    """Same data order and seed: the decoded-image cache and the frozen-backbone features give the first-epoch
    loss of the plain path (decode every image every time, run the whole network)."""
    fast = iad.finetune(sample_data / "faces", out=tmp_path / "fast", **options)
    plain = iad.finetune(sample_data / "faces", out=tmp_path / "plain", cache="none", feature_cache="off", **options)
    first_fast = fast.history.to_pylist()[0]
    first_plain = plain.history.to_pylist()[0]
    assert first_fast["split"] == "train" and first_fast["loss"] == pytest.approx(first_plain["loss"], rel=1e-5)
    assert fast.history.to_pylist()[1]["loss"] == pytest.approx(plain.history.to_pylist()[1]["loss"], rel=1e-5)


@pytest.mark.trains
def test_table_7_2_for_several_tasks(sample_data, tmp_path):
    import pyarrow as pa

    csv = pa.csv.read_csv(sample_data / "person_vs_others.csv")
    one_vs_others = csv.set_column(0, "path", pa.array([str(sample_data / p) for p in csv["path"].to_pylist()]))
    grids = iad.tune_tasks({"who": sample_data / "faces", "s1_or_not": one_vs_others}, {"learning_rate": [0.001, 0.01]},
                           out=tmp_path / "tasks", **FAST)
    summary = iad.grid_summary(grids)
    assert summary["task"].to_pylist() == ["who", "s1_or_not"]
    assert summary.column_names[:6] == ["task", "accuracy", "f1", "precision", "recall", "learning_rate"]
    for task, grid in grids.items():
        row = [r for r in summary.to_pylist() if r["task"] == task][0]
        best = [r for r in grid.results.to_pylist() if r["config_id"] == grid.best_config][0]
        assert row["accuracy"] == best["val_accuracy"] and row["learning_rate"] == best["learning_rate"]
    assert iad.load_grid(tmp_path / "tasks" / "who").best_config == grids["who"].best_config


@pytest.mark.trains
def test_learning_rate_finder(sample_data):
    finder = iad.lr_find(sample_data / "faces", image_size=64, num_steps=60, progress=False, seed=0)
    rates = finder.table["learning_rate"].to_pylist()
    assert rates == sorted(rates) and rates[0] == pytest.approx(1e-7)
    assert 10 <= finder.table.num_rows <= 60
    assert rates[0] < finder.suggestion < rates[-1]
    with pytest.raises(ImagesAsDataError, match="start_lr"):
        iad.lr_find(sample_data / "faces", start_lr=1.0, end_lr=0.1)
