"""Fine-tuning end to end on the real ORL faces: the book's two tasks reach the accuracy the issue demands,
the kept weights are the best epoch's (by value), runs are reproducible, resumable, and survive bad images."""

import shutil
import warnings
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import imagesasdata as iad
from learned import assert_learned
from imagesasdata.train import trainer as train_module
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.data.transforms import IMAGENET_MEAN

TINY = dict(image_size=64, epochs=2, progress=False, seed=0)


def val_history(run):
    return [r for r in run.history.to_pylist() if r["split"] == "val"]


@pytest.mark.trains
@pytest.mark.slow
def test_who_is_this_40_people(orl_faces, tmp_path):
    """The world-leaders task stand-in: 40 people, stratified 8/2 per person, 112 px."""
    run = iad.finetune(orl_faces, out=tmp_path / "run", image_size=112, epochs=5, learning_rate=0.005,
                       augment_crop=False, progress=False, seed=0)
    splits = run.splits.to_pylist()
    per_person = {}
    for row in splits:
        per_person.setdefault(row["label"], []).append(row["split"])
    assert all(sorted(v) == ["train"] * 8 + ["val"] * 2 for v in per_person.values())
    # Why 0.90 holds on any CPU: measured 0.9625 (77 of 80) on an AVX-512 machine and above 0.95 on an AVX2 one;
    # the bound leaves 5 more mistakes of 80 for another float path. A broken pipeline lands near 1/40.
    assert_learned(run, "the 40-people fit (112 px, 5 epochs)", margin=0.875)   # chance 1/40: 0.90 of 80
    # model selection was on validation; the macro averages are reported too
    assert run.metric("f1", "val", "macro") >= 0.85


@pytest.mark.trains
@pytest.mark.slow
def test_one_person_versus_others(orl_faces, tmp_path):
    """The John Legend task stand-in: person s1 against the 39 others."""
    paths = sorted(orl_faces.glob("s*/*.pgm"))
    table = pa.table({"path": [str(p) for p in paths],
                      "label": ["positive" if p.parent.name == "s1" else "negative" for p in paths]})
    run = iad.finetune(table, out=tmp_path / "run", image_size=112, epochs=5, learning_rate=0.005,
                       augment_crop=False, val_fraction=0.3, progress=False, seed=0)
    assert run.positive_class == "positive"
    # Measured 1.0 on accuracy, recall and precision (AVX-512 and AVX2), already 0.975 accuracy after epoch 1: the
    # bounds leave room for one missed positive of the 3 and six false alarms of the 117 negatives.
    assert_learned(run, "the one-against-39 fit (112 px, 5 epochs)", margin=0.3)   # chance 0.5
    assert run.metric("accuracy", "val") >= 0.95
    # accuracy alone would reward calling everyone "negative": the positives must be found too
    assert run.metric("recall", "val") >= 2 / 3
    assert run.metric("precision", "val") >= 0.75


@pytest.mark.trains
def test_book_layout_keeps_its_splits(book_layout, tmp_path):
    run = iad.finetune(book_layout, out=tmp_path / "run", **TINY)
    splits = run.splits
    assert pc.sum(pc.equal(splits["split"], "val")).as_py() == 6
    assert run.classes == ["negative", "positive"] and run.positive_class == "positive"
    assert run.predictions.num_rows == 6
    assert set(run.metrics["split"].to_pylist()) == {"val"}


def wreck_before_validation(monkeypatch, from_epoch: int, favoured: int = 0):
    """From epoch `from_epoch` on, overwrite the new last layer just before validation so that the network calls
    every image class `favoured` with a margin of 30 nats. That epoch's validation is then at chance level or
    below with a loss of about 25 (6 classes, 2 validation images each), whatever CPU computed the epochs before
    it: this forces a worse epoch deterministically instead of hoping a learning rate overshoots."""
    import torch

    run_epoch, validate = train_module.Trainer.run_epoch, train_module.Trainer.validate

    def wrecked_validate(self):
        head = self.model.get_submodule(self.backbone.head[0])
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[favoured] = 30.0
        return validate(self)

    def patched_run_epoch(self, epoch):
        if epoch >= from_epoch:
            monkeypatch.setattr(self, "validate", lambda: wrecked_validate(self))
        return run_epoch(self, epoch)

    monkeypatch.setattr(train_module.Trainer, "run_epoch", patched_run_epoch)


@pytest.mark.trains
def test_the_best_epoch_is_kept_by_value(sample_data, tmp_path, monkeypatch):
    """The kept weights must be the best epoch's, by value — the book's reference code returned the last epoch's
    by keeping a live reference. Epochs 1-3 train normally (which of them wins depends on the CPU's arithmetic,
    so the test computes the winner from the history by the rule); epoch 4 is wrecked (see above), so the best
    epoch is never the last, on any machine."""
    wreck_before_validation(monkeypatch, from_epoch=4)
    run = iad.finetune(sample_data / "faces", out=tmp_path / "run", image_size=64, epochs=4, learning_rate=0.01,
                       progress=False, seed=0)
    history = val_history(run)
    # Why the wrecked epoch loses on any CPU: it predicts one class for all 12 validation images (accuracy 2/12,
    # loss ~25); a real epoch that did no better than that, with a loss below 25, would still win the tie-break.
    assert history[3]["accuracy"] == pytest.approx(2 / 12) and history[3]["loss"] > 20
    # the rule: best validation accuracy, ties to the lower validation loss, then the earlier epoch
    expected = 1 + max(range(4), key=lambda k: (history[k]["accuracy"], -history[k]["loss"]))
    assert run.best_epoch == expected < 4
    best, last = history[run.best_epoch - 1], history[-1]
    assert last["loss"] - best["loss"] > 5
    # the saved weights reproduce the best epoch's validation loss and accuracy, not the last one's; the same
    # code computed both numbers, so a relative 1e-3 holds on any CPU
    val = run.predictions.filter(pc.equal(run.predictions["split"], "val"))
    truth = val["label"].to_pylist()
    probability_of_truth = [row[f"prob_{label}"] for row, label in zip(val.to_pylist(), truth)]
    assert float(np.mean(-np.log(probability_of_truth))) == pytest.approx(best["loss"], rel=1e-3)
    assert run.metric("accuracy", "val") == pytest.approx(best["accuracy"])
    again = run.predict(val["path"].to_pylist(), progress=False)
    assert np.allclose(again[f"prob_{truth[0]}"].to_numpy(), val[f"prob_{truth[0]}"].to_numpy(), atol=1e-5)


@pytest.mark.trains
def test_reproducible_with_a_seed_and_with_or_without_the_cache(sample_data, tmp_path):
    first = iad.finetune(sample_data / "faces", out=tmp_path / "a", **TINY)
    second = iad.finetune(sample_data / "faces", out=tmp_path / "b", cache="none", **TINY)
    for one, two in zip(first.history.to_pylist(), second.history.to_pylist()):
        assert one["loss"] == pytest.approx(two["loss"], rel=1e-5)
        assert one["accuracy"] == two["accuracy"]
    other_seed = iad.finetune(sample_data / "faces", out=tmp_path / "c", **{**TINY, "seed": 1})
    assert other_seed.history["loss"].to_pylist() != first.history["loss"].to_pylist()


@pytest.mark.trains
def test_interrupted_run_keeps_the_best_model_and_resumes_to_the_same_result(sample_data, tmp_path, monkeypatch):
    options = dict(image_size=64, epochs=3, progress=False, seed=0)
    straight = iad.finetune(sample_data / "faces", out=tmp_path / "straight", **options)

    original = train_module.Trainer.run_epoch

    def interrupt_at_epoch_3(self, epoch):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(train_module.Trainer, "run_epoch", interrupt_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        iad.finetune(sample_data / "faces", out=tmp_path / "resumed", **options)
    interrupted = iad.load_run(tmp_path / "resumed")
    assert interrupted.status == "interrupted"
    assert interrupted.description["epochs_run"] == 2
    # an unfinished run is refused unless the caller opts in, and then it is usable as is
    with pytest.raises(ImagesAsDataError, match="did not finish: it was interrupted after epoch 2.*resume=True"):
        interrupted.predict(sample_data / "new_images", progress=False)
    assert interrupted.predict(sample_data / "new_images", progress=False, allow_unfinished=True).num_rows == 12

    monkeypatch.setattr(train_module.Trainer, "run_epoch", original)
    resumed = iad.finetune(sample_data / "faces", out=tmp_path / "resumed", resume=True, **options)
    assert resumed.status == "complete"
    assert [r["epoch"] for r in val_history(resumed)] == [1, 2, 3]
    for one, two in zip(straight.history.to_pylist(), resumed.history.to_pylist()):
        assert one["loss"] == pytest.approx(two["loss"], rel=1e-4)
    a = straight.predict(sample_data / "new_images", progress=False)
    b = resumed.predict(sample_data / "new_images", progress=False)
    assert np.allclose(a["prob_s1"].to_numpy(), b["prob_s1"].to_numpy(), atol=1e-4)
    assert not (tmp_path / "resumed" / "checkpoint").exists()


@pytest.mark.trains
def test_resume_with_different_options_is_refused(sample_data, tmp_path, monkeypatch):
    def interrupt(self, epoch):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_module.Trainer, "run_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        iad.finetune(sample_data / "faces", out=tmp_path / "run", **TINY)
    # no epoch finished: nothing to resume, but a finished epoch is needed for the check; make one
    monkeypatch.undo()
    original = train_module.Trainer.run_epoch

    def stop_at_two(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)
    monkeypatch.setattr(train_module.Trainer, "run_epoch", stop_at_two)
    with pytest.raises(KeyboardInterrupt):
        iad.finetune(sample_data / "faces", out=tmp_path / "run2", **TINY)
    monkeypatch.undo()
    with pytest.raises(ImagesAsDataError, match=r"other options \(learning_rate \(CLI: --learning-rate\): the run has 0\.004, this call 0\.01\)"):
        iad.finetune(sample_data / "faces", out=tmp_path / "run2", resume=True, learning_rate=0.01, **TINY)


@pytest.mark.trains
def test_bad_images_are_skipped_and_listed(small_faces, rekognition_examples, tmp_path):
    (small_faces / "s1" / "empty.jpg").write_bytes(b"")
    data = (rekognition_examples / "ex_1.jpg").read_bytes()
    (small_faces / "s2" / "cut.jpg").write_bytes(data[: len(data) // 3])
    (small_faces / "s3" / "notes.png").write_text("not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = iad.finetune(small_faces, out=tmp_path / "run", **TINY)
    assert any("skipped 3 unreadable image(s)" in str(w.message) for w in caught)
    skipped = {r["image_id"]: r["error"] for r in run.skipped.to_pylist()}
    assert set(skipped) == {"s1/empty.jpg", "s2/cut.jpg", "s3/notes.png"}
    assert "empty file" in skipped["s1/empty.jpg"] and "truncated" in skipped["s2/cut.jpg"]
    assert run.description["training_images"]["count"] == 30
    assert len(run.description["training_images"]["sha256"]) == 30


def test_a_class_with_no_readable_validation_image(tmp_path, orl_faces):
    for label, person in (("a", "s1"), ("b", "s2")):
        shutil.copytree(orl_faces / person, tmp_path / "data" / "train" / label)
    (tmp_path / "data" / "val" / "a").mkdir(parents=True)
    (tmp_path / "data" / "val" / "a" / "x.jpg").write_bytes(b"")
    (tmp_path / "data" / "val" / "b").mkdir()
    shutil.copy(orl_faces / "s2" / "2.pgm", tmp_path / "data" / "val" / "b" / "2.pgm")
    with pytest.raises(ImagesAsDataError, match=r"val split has no readable images of class\(es\) a"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            iad.finetune(tmp_path / "data", out=tmp_path / "run", **TINY)


@pytest.mark.trains
def test_test_split_is_evaluated_once_and_reported_separately(sample_data, tmp_path):
    run = iad.finetune(sample_data / "faces", out=tmp_path / "run", val_fraction=0.25, test_fraction=0.25, **TINY)
    assert set(run.metrics["split"].to_pylist()) == {"val", "test"}
    assert set(run.history["split"].to_pylist()) == {"train", "val"}  # never looked at during training
    assert run.predictions.filter(pc.equal(run.predictions["split"], "test")).num_rows == 12


@pytest.mark.trains
def test_a_test_split_by_default_when_every_class_is_large_enough(orl_faces, tmp_path):
    """Two classes of 20 real photos: test_fraction's default holds out 2 of each as a test split, scored once; the
    sample's classes of 8 get none, and the run says why and that its validation metrics are optimistic."""
    table = pa.table({"path": [str(orl_faces / f"s{p}" / f"{k}.pgm") for p in range(1, 5) for k in range(1, 11)],
                      "label": ["a" if p <= 2 else "b" for p in range(1, 5) for k in range(1, 11)]})
    options = dict(image_size=32, epochs=1, freeze="backbone", augment_crop=False, progress=False)
    run = iad.finetune(table, out=tmp_path / "large", **options)
    assert Counter(run.splits["split"].to_pylist()) == {"train": 28, "val": 8, "test": 4}
    assert set(run.metrics["split"].to_pylist()) == {"val", "test"}
    assert run.description["test_split"] == {"fraction": 0.1, "images": 4, "why_none": None}
    assert "val: optimistic (this split chose the kept epoch); test: held out, scored once" in repr(run)
    small = iad.finetune(table.slice(0, 30), out=tmp_path / "small", **options)   # a: 20, b: 10
    assert "test" not in small.splits["split"].to_pylist()
    assert "b (10)" in small.description["test_split"]["why_none"]
    assert "no test split: a test split needs at least 20 images in every class" in repr(small)


@pytest.mark.trains
def test_early_stopping(sample_data, tmp_path, monkeypatch):
    """Patience 2: training stops two epochs after the last improvement of the validation loss. From epoch 2 on
    every epoch is wrecked before validation (loss ~25, far above any trained epoch's), so the loss improves only
    at epoch 1 on every CPU and the run must stop after epoch 3 and keep epoch 1."""
    wreck_before_validation(monkeypatch, from_epoch=2)
    # recipe "head-first" (StepLR): early stopping counts from epoch 1 (the default's one-cycle warm-up is not counted)
    run = iad.finetune(sample_data / "faces", out=tmp_path / "run", image_size=64, epochs=10, patience=2,
                       recipe="head-first", progress=False, seed=0)
    assert run.description["stopped_early"] is True
    assert run.description["epochs_run"] == 3
    assert run.best_epoch == 1
    losses = [r["loss"] for r in val_history(run)]
    assert len(losses) == 3 and min(losses[1:]) > losses[0]


@pytest.mark.trains
def test_no_early_stopping_without_patience(sample_data, tmp_path, monkeypatch):
    wreck_before_validation(monkeypatch, from_epoch=2)
    run = iad.finetune(sample_data / "faces", out=tmp_path / "run", image_size=64, epochs=4, progress=False, seed=0)
    assert run.description["stopped_early"] is False and run.description["epochs_run"] == 4


def test_unknown_option_suggests_the_right_name(sample_data):
    with pytest.raises(ImagesAsDataError, match="unknown option 'lr'"):
        iad.finetune(sample_data / "faces", lr=0.01)
    with pytest.raises(ImagesAsDataError, match="Did you mean 'learning_rate'"):
        iad.finetune(sample_data / "faces", learning_rte=0.01)


@pytest.mark.trains
def test_class_order_and_the_positive_class_follow_the_user(sample_data, tmp_path):
    """R passes a factor's levels as class_order and its first level as the positive class (yardstick's event)."""
    csv = pa.csv.read_csv(sample_data / "person_vs_others.csv")
    table = csv.set_column(0, "path", pa.array([str(sample_data / p) for p in csv["path"].to_pylist()]))
    run = iad.finetune(table, out=tmp_path / "run", class_order=["positive", "negative"], positive_class="positive",
                       **TINY)
    assert run.classes == ["positive", "negative"]
    assert [c for c in run.predictions.column_names if c.startswith("prob_")] == ["prob_positive", "prob_negative"]
    assert {r["class"] for r in run.metrics.to_pylist() if r["estimator"] == "binary" and r["metric"] != "accuracy"} \
        == {"positive"}
    with pytest.raises(ImagesAsDataError, match=r"class_order \['positive'\] does not match .* it lacks negative"):
        iad.finetune(table, out=tmp_path / "bad", class_order=["positive"], **TINY)
    with pytest.raises(ImagesAsDataError, match=r"no image is labelled maybe"):
        iad.finetune(table, out=tmp_path / "bad", class_order=["positive", "negative", "maybe"], **TINY)


@pytest.mark.trains
def test_head_epochs_train_only_the_new_last_layer_first(sample_data, tmp_path):
    """head_epochs: the new last layer learns on features computed once, the pretrained layers stay as they were."""
    import torch

    from imagesasdata.train.config import TrainConfig
    from imagesasdata.train.callbacks import train_head_first
    from imagesasdata.train.trainer import prepare_trainer

    config = TrainConfig.from_options(image_size=64, epochs=1, head_epochs=5, progress=False, seed=0)
    trainer = prepare_trainer(sample_data / "faces", config, tmp_path, write=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    targets = torch.from_numpy(trainer.targets[trainer.rows["train"]])
    fresh = float(torch.nn.functional.cross_entropy(trainer.logits(trainer.rows["train"]), targets))
    assert train_head_first(trainer)
    trained = float(torch.nn.functional.cross_entropy(trainer.logits(trainer.rows["train"]), targets))
    changed = {k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"classifier.weight", "classifier.bias"}
    # A fresh N(0, 0.01) head is at chance (ln 6 = 1.79); 36 images are linearly separable in 1,280 ImageNet
    # features, and 5 epochs of SGD took the loss to 0.23 here: below 0.9 leaves a margin of 4× for other CPUs.
    assert fresh > 1.6 and trained < 0.9


def same_outcome(one, two) -> None:
    """Two runs ended alike bit for bit: kept weights, history (but seconds), predictions, metrics, outcome."""
    from safetensors.torch import load_file

    first, second = load_file(str(one.path / "model.safetensors")), load_file(str(two.path / "model.safetensors"))
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k].numpy(), second[k].numpy()) for k in first)
    assert one.history.drop_columns(["seconds"]).equals(two.history.drop_columns(["seconds"]))
    assert one.predictions.drop_columns(["path"]).equals(two.predictions.drop_columns(["path"]))
    assert one.metrics.equals(two.metrics)
    assert [one.description[k] for k in ("best_epoch", "epochs_run", "stopped_early", "status")] == \
        [two.description[k] for k in ("best_epoch", "epochs_run", "stopped_early", "status")]


@pytest.mark.trains
def test_head_first_repeats_bit_for_bit(sample_data, tmp_path):
    """The head's epochs run on the one loop (a phase of Trainer.train_pass): with the same seed, two runs in one
    process give the same weights bit for bit."""
    options = dict(image_size=32, epochs=1, head_epochs=2, progress=False, seed=3)
    same_outcome(iad.finetune(sample_data / "faces", out=tmp_path / "a", **options),
                 iad.finetune(sample_data / "faces", out=tmp_path / "b", **options))


@pytest.mark.trains
def test_early_stopping_repeats_and_resumes_to_the_same_end(sample_data, tmp_path, monkeypatch):
    """Early stopping is a callback of fit whose decision is committed with the epoch that made it: a second run
    with the same seed, interrupted right after that epoch's checkpoint and resumed, ends bit for bit where the
    first did, without training another epoch. From epoch 2 on the validation is wrecked, so patience=1 stops
    every CPU after epoch 2."""
    wreck_before_validation(monkeypatch, from_epoch=2)
    options = dict(image_size=32, epochs=3, patience=1, freeze="backbone", augment_crop=False, progress=False, seed=0,
                   recipe="head-first")   # StepLR: early stopping counts from epoch 1
    reference = iad.finetune(sample_data / "faces", out=tmp_path / "reference", **options)
    assert (reference.description["stopped_early"], reference.description["epochs_run"]) == (True, 2)
    checkpoint = train_module.Trainer._checkpoint

    def interrupt_once_stopped(self, state):
        checkpoint(self, state)
        if state.stopped_early:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module.Trainer, "_checkpoint", interrupt_once_stopped)
    with pytest.raises(KeyboardInterrupt):
        iad.finetune(sample_data / "faces", out=tmp_path / "run", **options)
    monkeypatch.setattr(train_module.Trainer, "_checkpoint", checkpoint)
    resumed = iad.finetune(sample_data / "faces", out=tmp_path / "run", resume=True, **options)
    assert resumed.description["epochs_run"] == 2
    same_outcome(resumed, reference)


@pytest.mark.trains
def test_the_head_epochs_are_passes_of_the_one_loop(sample_data, tmp_path, monkeypatch):
    """The head's epochs pass the loop's crash points and its divergence check: features that turn into NaN stop
    the run in the first head epoch, which is marked failed and keeps the starting weights (finite)."""
    from imagesasdata.io import faults
    from imagesasdata.train.features import HeadFeatures

    log = tmp_path / "crash-points.log"
    monkeypatch.setattr(faults, "_CRASH_LOG", str(log))
    iad.finetune(sample_data / "faces", out=tmp_path / "run", image_size=32, epochs=1, head_epochs=2,
                 progress=False, seed=0)
    points = [line.split("\t", 1)[1] for line in log.read_text().splitlines()]
    firsts = [p for p in points if p.endswith("first batch")]
    assert firsts == ["head epoch 1: first batch", "head epoch 2: first batch", "epoch 1: first batch"]
    monkeypatch.setattr(faults, "_CRASH_LOG", None)

    batch = HeadFeatures.batch
    monkeypatch.setattr(HeadFeatures, "batch", lambda self, rows, flips=None: batch(self, rows, flips) * float("nan"))
    with pytest.raises(ImagesAsDataError, match=r"training diverged in head epoch 1: in batch 1 of \d+ the training "
                                                r"loss became nan"):
        iad.finetune(sample_data / "faces", out=tmp_path / "nan", image_size=32, epochs=1, head_epochs=2,
                     progress=False, seed=0)
    failed = iad.load_run(tmp_path / "nan")
    assert failed.status == "failed" and failed.description["epochs_run"] == 0
    predictions = failed.predict(sample_data / "faces", progress=False, allow_unfinished=True)
    assert np.isfinite(predictions["prob_" + failed.classes[0]].to_numpy()).all()


@pytest.mark.trains
def test_head_epochs_are_the_same_with_or_without_the_cache(sample_data, tmp_path):
    options = {**TINY, "head_epochs": 3}
    first = iad.finetune(sample_data / "faces", out=tmp_path / "a", **options)
    second = iad.finetune(sample_data / "faces", out=tmp_path / "b", cache="none", **options)
    for one, two in zip(first.history.to_pylist(), second.history.to_pylist()):
        assert one["loss"] == pytest.approx(two["loss"], rel=1e-5)
    assert first.description["hyperparameters"]["head_epochs"] == 3
    # The book's recipe on the offline backbone: the override is on the record.
    book = iad.finetune(sample_data / "faces", out=tmp_path / "c", recipe="book", architecture="efficientnet_lite0",
                        **TINY)
    assert book.description["hyperparameters"]["head_epochs"] == 0
    assert book.description["preprocessing"]["mean"] == list(IMAGENET_MEAN)
    assert book.description["recipe"] == {
        "name": "book", "chose": {"normalize": "imagenet", "head_epochs": 0},
        "overridden": {"architecture": {"recipe": "resnet18", "used": "efficientnet_lite0"}}}
    with pytest.raises(ImagesAsDataError, match="head_epochs=-1"):
        iad.finetune(sample_data / "faces", head_epochs=-1)


def test_recipes_name_their_defaults_and_explicit_options_win():
    from imagesasdata.train.config import TrainConfig

    engine = TrainConfig()                                  # the default since issue 28: "fast"
    assert (engine.recipe, engine.architecture, engine.head_epochs, engine.normalize, engine.freeze) == \
        ("fast", "efficientnet_lite0", 2, "imagenet", "blocks.3")
    head_first = TrainConfig.from_options(recipe="head-first")
    assert (head_first.architecture, head_first.head_epochs, head_first.normalize, head_first.freeze,
            head_first.schedule, head_first.learning_rate) == ("efficientnet_lite0", 10, "imagenet", "none", "step", 0.001)
    book = TrainConfig.from_options(recipe="book")          # Listing 1
    assert (book.architecture, book.weights, book.head_epochs, book.normalize) == ("resnet18", "imagenet", 0, "imagenet")
    # ... and every other option at the book's value: 25 epochs, batch 4, SGD 0.001 / 0.9, StepLR 7 / 0.1, random
    # resized crops and flips, Resize 256 + CenterCrop 224 (the architecture's 224), a N(0, 0.01) head.
    listing_1 = {"epochs": 25, "batch_size": 4, "optimizer": "sgd", "learning_rate": 0.001, "momentum": 0.9,
                 "weight_decay": 0.0, "step_size": 7, "gamma": 0.1, "augment_crop": True, "augment_flip": True,
                 "resize": "rescale-crop", "image_size": None, "resize_size": None, "head_init": "normal",
                 "freeze": "none", "select_on": "accuracy", "val_fraction": 0.2}
    assert {k: getattr(book, k) for k in listing_1} == listing_1
    assert TrainConfig.from_options(recipe="book", architecture="vgg16").architecture == "vgg16"
    with pytest.raises(ImagesAsDataError, match="head_init='uniform': choose one of normal, pytorch"):
        TrainConfig.from_options(head_init="uniform")
    assert TrainConfig.from_options(recipe="book", head_epochs=2, normalize="backbone").head_epochs == 2
    assert TrainConfig.from_options(head_epochs=0).normalize == "imagenet"
    with pytest.raises(ImagesAsDataError, match="recipe='bok': choose one of head-first, book, fast. Did you mean 'book'"):
        TrainConfig.from_options(recipe="bok")
    # From random weights there are no features to probe, nor early layers worth keeping: no head epochs and nothing
    # frozen unless asked for.
    assert (TrainConfig.from_options(weights="none").head_epochs, TrainConfig.from_options(weights="none").freeze) == \
        (0, "none")
    assert TrainConfig.from_options(weights="none", head_epochs=3).head_epochs == 3


@pytest.mark.trains
def test_progress_epochs_writes_a_line_per_epoch_and_no_bar(tiny_faces, tmp_path, capsys):
    """progress='epochs' (R's default: what a knitted document, Rscript or a log can show) writes one line per epoch
    to stdout and draws no progress bar; False is silent."""
    from imagesasdata.train.config import TrainConfig

    assert (TrainConfig(progress="bars").progress, TrainConfig(progress="none").progress) == (True, False)
    with pytest.raises(ImagesAsDataError, match="progress='lines': choose one of"):
        TrainConfig(progress="lines")
    options = dict(image_size=32, epochs=2, freeze="backbone", augment_crop=False, seed=0)
    iad.finetune(tiny_faces, out=tmp_path / "lines", progress="epochs", **options)
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all("val loss" in line and "acc" in line for line in lines)
    assert "\r" not in captured.err and "it/s" not in captured.err and "batch/s" not in captured.err
    iad.finetune(tiny_faces, out=tmp_path / "silent", progress=False, **options)
    captured = capsys.readouterr()
    assert "epoch" not in captured.out and "epoch" not in captured.err


@pytest.mark.trains
def test_book_recipe_fine_tunes_resnet18_from_imagenet_weights(fake_torchvision_release, sample_data, tmp_path):
    """recipe="book" is Listing 1's network: ResNet-18 with torchvision's ImageNet file (here a file named and
    served like torchvision's, on localhost), its choices on the run's record."""
    run = iad.finetune(sample_data / "faces", out=tmp_path / "book", recipe="book", epochs=1, image_size=32,
                       progress=False)
    description = run.description
    assert (description["architecture"], description["library"]) == ("resnet18", "torchvision")
    assert description["weights"].startswith("torchvision:ResNet18_Weights")
    assert description["recipe"] == {"name": "book", "overridden": {},
                                     "chose": {"architecture": "resnet18", "normalize": "imagenet", "head_epochs": 0}}
    assert description["hyperparameters"]["head_init"] == "normal"
    assert fake_torchvision_release["cache"].exists()


@pytest.mark.trains
def test_book_recipe_without_its_weights_says_how_to_get_them(fake_torchvision_release, sample_data, tmp_path,
                                                               monkeypatch):
    """Offline, with an empty cache: no silent swap of the network, but an error that names the cache, a local
    file, and the one option that runs the recipe on the offline backbone."""
    import imagesasdata.model.backbones as backbones

    monkeypatch.setattr(backbones, "IMAGENET_URL", lambda name: "http://127.0.0.1:9/resnet18-f37072fd.pth")
    with pytest.raises(ImagesAsDataError, match=r"recipe='book' fine-tunes resnet18 from ImageNet weights.*"
                                                r"copy that file to .*checkpoints.*weights='/path/to/.*"
                                                r"pass architecture='efficientnet_lite0'"):
        iad.finetune(sample_data / "faces", out=tmp_path / "offline", recipe="book", epochs=1, image_size=64,
                     progress=False)


def test_head_initialisations():
    """normal: N(0, 0.01) and zero bias (the book); pytorch: nn.Linear's own uniform draw, bias included."""
    import torch

    from imagesasdata.model.backbones import create_backbone

    torch.manual_seed(0)
    normal = create_backbone("resnet18", None, num_classes=40).model.fc.requires_grad_(False)
    assert abs(float(normal.weight.std()) - 0.01) < 0.001 and not normal.bias.any()
    pytorch = create_backbone("resnet18", None, num_classes=40, head_init="pytorch").model.fc.requires_grad_(False)
    bound = 1 / 512 ** 0.5
    assert float(pytorch.weight.abs().max()) <= bound and float(pytorch.weight.std()) > 0.015
    assert pytorch.bias.abs().max() > 0

