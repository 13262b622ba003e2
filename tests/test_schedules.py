"""Issue 28's options, by their mechanics and never by what a fit reaches: the learning-rate schedules' shapes (run on
a dummy optimizer), the book's recipe unchanged, discriminative learning rates (which parameters get which rate),
progressive resizing (the training images' side per epoch, through the real data pipeline), the head's own rate,
early stopping on a plateau, the recipe "fast" and the learning-rate finder's suggestion for it."""

import json
import types
import warnings

import pytest
import torch

import imagesasdata as iad
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.train.callbacks import EarlyStopping, HeadFirst, make_optimizer
from imagesasdata.train.config import TrainConfig
from imagesasdata.train.schedules import make_scheduler, per_step, progressive_start, training_sizes

# Listing 1 as the book's recipe resolves it, every option (the options of issue 28 off).
BOOK_RESOLVED = {
    "architecture": "resnet18", "weights": "imagenet", "image_size": None, "resize": "rescale-crop",
    "resize_size": None, "recipe": "book", "normalize": "imagenet", "augment_crop": True, "augment_flip": True,
    "val_fraction": 0.2, "test_fraction": None, "balance": False, "group": None, "seed": 0, "epochs": 25,
    "batch_size": 4, "optimizer": "sgd", "learning_rate": 0.001, "schedule": "step", "warmup_fraction": None,
    "momentum": 0.9, "weight_decay": 0.0, "step_size": 7, "gamma": 0.1, "lr_decay_per_block": None,
    "progressive_resize": None, "full_size_epochs": None, "head_init": "normal", "dropout": 0.0, "head_epochs": 0,
    "head_learning_rate": None, "freeze": "none", "patience": None, "select_on": "accuracy", "positive_class": None,
    "class_order": None, "device": "auto", "precision": "auto", "channels_last": "auto", "cache": "auto",
    "feature_cache": "auto", "num_workers": None, "progress": True,
}


def dummy_optimizer(rates=(0.01,)):
    """SGD over one scalar parameter per group, at the given rates (nothing is trained)."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": rate} for rate in rates]
    return torch.optim.SGD(groups, lr=rates[-1], momentum=0.9)


def rates_per_step(config, steps_per_epoch, rates=None):
    """The rate of every group at each optimizer step of a run (the scheduler stepped as the trainer steps it);
    the groups start at `rates` (default: the config's learning rate)."""
    optimizer = dummy_optimizer(rates or (config.learning_rate,))
    scheduler = make_scheduler(optimizer, config, steps_per_epoch)
    seen = []
    for _ in range(config.epochs):
        for _ in range(steps_per_epoch):
            seen.append([group["lr"] for group in optimizer.param_groups])
            optimizer.step()
            if per_step(config):
                scheduler.step()
        if not per_step(config):
            scheduler.step()
    return seen


def test_the_book_recipe_is_unchanged():
    """recipe="book" resolves to Listing 1 on every option, records the same choices, and its rate is 0.001 for
    epochs 1-7, then ten times smaller every 7 epochs (StepLR 7 / 0.1), constant within an epoch."""
    book = TrainConfig(recipe="book")
    assert book.to_dict() == BOOK_RESOLVED
    assert book.recipe_chose == ["architecture", "normalize", "head_epochs"]
    assert not per_step(book)
    per_epoch = [steps[0][0] for steps in zip(*[iter(rates_per_step(book, 3))] * 3)]
    expected = [0.001] * 7 + [1e-4] * 7 + [1e-5] * 7 + [1e-6] * 4
    assert per_epoch == pytest.approx(expected, rel=1e-9)
    assert all(len({r[0] for r in steps}) == 1 for steps in zip(*[iter(rates_per_step(book, 3))] * 3))
    # The head-first recipe's resolved options are the book's but for its own three.
    default = TrainConfig(recipe="head-first").to_dict()
    assert {k: v for k, v in default.items() if k not in ("recipe", "architecture", "head_epochs")} == \
        {k: v for k, v in BOOK_RESOLVED.items() if k not in ("recipe", "architecture", "head_epochs")}


def test_one_cycle_survives_runs_of_a_few_steps():
    """OneCycleLR divides by zero at 4 steps with a quarter rising (a learning curve's smallest fraction): short
    runs rise over at least 2 steps, and runs of 1 or 2 steps stay at the peak."""
    for steps in range(1, 13):
        rates = [r[0] for r in rates_per_step(TrainConfig(learning_rate=0.01, epochs=1), steps)]
        assert len(rates) == steps and all(0 <= r <= 0.01 + 1e-12 for r in rates)
        assert max(rates) == pytest.approx(0.01, rel=0.1)
        if steps >= 3:
            assert rates[0] == pytest.approx(0.01 / 25) and rates[-1] < rates[0]


@pytest.mark.parametrize("schedule, warmup", [("one_cycle", None), ("one_cycle", 0.4), ("warmup_cosine", None),
                                              ("warmup_cosine", 0.3)])
def test_per_step_schedules_rise_to_the_peak_then_fall_to_nearly_zero(schedule, warmup):
    config = TrainConfig(schedule=schedule, warmup_fraction=warmup, learning_rate=0.01, epochs=10)
    assert per_step(config)
    rates = [r[-1] for r in rates_per_step(config, steps_per_epoch=20)]
    assert len(rates) == 200
    peak = max(range(len(rates)), key=rates.__getitem__)
    fraction = warmup if warmup is not None else {"one_cycle": 0.25, "warmup_cosine": 0.1}[schedule]
    assert abs(peak - fraction * len(rates)) <= 1.5, (peak, fraction)
    assert rates[peak] == pytest.approx(0.01)
    assert rates[0] == pytest.approx(0.01 / 25)
    assert all(a < b for a, b in zip(rates[:peak], rates[1:peak + 1]))        # rises
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:]))        # then falls
    assert rates[-1] < 0.001 * 0.01                                             # to nearly zero
    assert rates[len(rates) // 2] < 0.01 and rates[len(rates) // 2] > rates[-1]


def test_per_step_schedules_keep_each_groups_share_and_resume_from_json():
    """Discriminative rates keep their ratio all along; a checkpoint's scheduler and optimizer state, through JSON
    as runs.write_checkpoint stores them, resume to the very rates of an uninterrupted run."""
    config = TrainConfig(schedule="one_cycle", learning_rate=0.01, epochs=4)
    whole = rates_per_step(config, 10, rates=(0.0025, 0.005, 0.01))
    assert all(r[0] / r[2] == pytest.approx(0.25) and r[1] / r[2] == pytest.approx(0.5) for r in whole)
    for schedule in ("one_cycle", "warmup_cosine"):
        config = TrainConfig(schedule=schedule, learning_rate=0.01, epochs=4)
        optimizer = dummy_optimizer((0.005, 0.01))
        scheduler = make_scheduler(optimizer, config, 10)
        for _ in range(17):
            optimizer.step()
            scheduler.step()
        saved = json.loads(json.dumps({"scheduler": scheduler.state_dict(),
                                       "param_groups": optimizer.state_dict()["param_groups"]}, default=str))
        uninterrupted = []
        for _ in range(23):
            uninterrupted.append([g["lr"] for g in optimizer.param_groups])
            optimizer.step()
            scheduler.step()
        resumed_optimizer = dummy_optimizer((0.005, 0.01))
        resumed = make_scheduler(resumed_optimizer, config, 10)
        resumed_optimizer.load_state_dict({"state": {}, "param_groups": saved["param_groups"]})
        resumed.load_state_dict(saved["scheduler"])
        again = []
        for _ in range(23):
            again.append([g["lr"] for g in resumed_optimizer.param_groups])
            resumed_optimizer.step()
            resumed.step()
        assert sum(again, []) == pytest.approx(sum(uninterrupted, [])), schedule


def test_schedule_options_are_checked():
    with pytest.raises(ImagesAsDataError, match="schedule='cosine': choose one of step, one_cycle, warmup_cosine"):
        TrainConfig(schedule="cosine")
    with pytest.raises(ImagesAsDataError, match="warmup_fraction=1.0 must be above 0 and below 1"):
        TrainConfig(schedule="one_cycle", warmup_fraction=1)
    with pytest.raises(ImagesAsDataError, match="lr_decay_per_block=0.0 must be above 0 and at most 1"):
        TrainConfig(lr_decay_per_block=0)
    with pytest.raises(ImagesAsDataError, match="progressive_resize=16 must be 0 \\(off\\) or at least 32"):
        TrainConfig(progressive_resize=16)
    with pytest.raises(ImagesAsDataError, match="head_learning_rate=-0.1 must be above 0"):
        TrainConfig(head_learning_rate=-0.1)
    with pytest.raises(ImagesAsDataError, match="full_size_epochs=0 must be at least 1"):
        TrainConfig(full_size_epochs=0)


def test_discriminative_rates_fall_by_block_from_the_new_last_layer():
    """lr_decay_per_block: one parameter group per block, input first; the new last layer at learning_rate and each
    block below at decay times the rate of the block above. Every parameter that trains is in exactly one group."""
    from imagesasdata.model.backbones import create_backbone, parameter_blocks

    backbone = create_backbone("efficientnet_lite0", None, 3, progress=False)
    blocks = parameter_blocks(backbone)
    assert [b[0].split(".")[0] for b in blocks] == ["conv_stem"] + ["blocks"] * 7 + ["classifier"]
    assert blocks[-1] == ["classifier.weight", "classifier.bias"]
    assert "conv_head.weight" in blocks[-2]                      # timm's coarse groups: the last stage with its 1×1
    config = TrainConfig(learning_rate=0.01, lr_decay_per_block=0.5)
    optimizer = make_optimizer(backbone.model, config, blocks=blocks)
    rates = [group["lr"] for group in optimizer.param_groups]
    assert rates == pytest.approx([0.01 * 0.5 ** (8 - k) for k in range(9)])
    names = {id(p): n for n, p in backbone.model.named_parameters()}
    grouped = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    assert sorted(grouped) == sorted(n for n, p in backbone.model.named_parameters() if p.requires_grad)
    assert [names[id(p)] for p in optimizer.param_groups[-1]["params"]] == ["classifier.weight", "classifier.bias"]
    # Without the option (the book's and head-first's recipes) or at 1: one group at learning_rate, as the book.
    for config in (TrainConfig(recipe="head-first", learning_rate=0.01), TrainConfig(lr_decay_per_block=1)):
        assert len(make_optimizer(backbone.model, config, blocks=blocks).param_groups) == 1
    # A torchvision network is cut at its top-level stages; frozen layers are left out.
    resnet = create_backbone("resnet18", None, 3, freeze="layer2", progress=False)
    assert [b[0] for b in parameter_blocks(resnet)] == ["layer3.0.conv1.weight", "layer4.0.conv1.weight", "fc.weight"]


def test_the_learning_rate_finder_keeps_each_groups_share_and_suggests_for_the_schedule():
    from imagesasdata.train.lr_find import ExponentialRateSchedule, valley_rate

    optimizer = dummy_optimizer((0.25, 0.5, 1.0))
    for group, scale in zip(optimizer.param_groups, (0.25, 0.5, 1.0)):
        group["lr_scale"] = scale
    finder = ExponentialRateSchedule(1e-6, 1.0, 20)
    finder.before_batch(types.SimpleNamespace(optimizer=optimizer), 5)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([finder.rate(5) * s for s in (0.25, 0.5, 1)])
    # fastai's valley: the longest fall of the loss is steps 20-69 here; the suggestion lies half-way down it.
    rates = [10 ** (-7 + 8 * k / 99) for k in range(100)]
    losses = [2.0] * 20 + [2.0 - 1.5 * k / 50 for k in range(50)] + [0.5 + 0.2 * k for k in range(30)]
    suggestion = valley_rate(rates, losses, 100)
    assert rates[40] <= suggestion <= rates[50]


def test_progressive_resizing_follows_its_rule():
    assert training_sizes(10, 128, 224) == [128, 128, 160, 160, 192, 224, 224, 224, 224, 224]
    assert training_sizes(8, 128, 224, full_size_epochs=2) == [128, 128, 160, 160, 192, 192, 224, 224]
    assert training_sizes(3, None, 224) == training_sizes(3, 0, 224) == [224] * 3
    assert training_sizes(4, 224, 224) == [224] * 4
    assert training_sizes(1, 96, 224) == [224]                   # the last epoch is always at full size
    for epochs in range(1, 12):
        sizes = training_sizes(epochs, 100, 224)
        assert sizes == sorted(sizes) and sizes[-((epochs + 1) // 2):] == [224] * ((epochs + 1) // 2)
        assert all(s == 100 or s % 32 == 0 for s in sizes) and (epochs < 2 or sizes[0] == 100)
    # A start the user gave must be below the full size; the recipe's is dropped for small images.
    assert progressive_start(TrainConfig(recipe="fast"), 224) == 128
    assert progressive_start(TrainConfig(recipe="fast"), 128) is None
    with pytest.raises(ImagesAsDataError, match="progressive_resize=128 must be below image_size \\(96\\)"):
        progressive_start(TrainConfig(progressive_resize=128), 96)


def test_the_fast_recipe_stops_early_on_a_cpu_when_no_epoch_count_is_given():
    fast = TrainConfig(recipe="fast", device="cpu")
    assert (fast.epochs, fast.patience, fast.schedule, fast.learning_rate) == (8, 2, "one_cycle", 0.004)
    assert (fast.head_epochs, fast.head_learning_rate, fast.lr_decay_per_block, fast.progressive_resize) == \
        (2, 0.01, 0.7, 128)
    assert "patience" in fast.recipe_chose
    assert TrainConfig(recipe="fast", device="cpu", epochs=8).patience is None     # an epoch count: all of them
    assert TrainConfig(recipe="fast", device="cpu", patience=4).patience == 4
    assert TrainConfig(recipe="fast", device="cuda").patience is None             # a GPU: cheap epochs
    assert TrainConfig(device="cpu").patience == 2                                # the default recipe is fast
    assert TrainConfig(recipe="head-first", device="cpu").patience is None        # the others never stop early
    assert TrainConfig(recipe="fast", schedule="step", learning_rate=0.001).schedule == "step"
    # The trainer's callbacks follow: the head first, then early stopping on the validation loss.
    trainer = types.SimpleNamespace(config=fast, train_sizes=training_sizes(8, 128, 224))
    from imagesasdata.train.trainer import Trainer

    callbacks = Trainer.callbacks(trainer)
    assert [type(c) for c in callbacks] == [HeadFirst, EarlyStopping]
    # ... counting from epoch 5, the first at full size (the one-cycle peak is at epoch 2).
    assert callbacks[1].start == 5


def test_the_fast_recipe_freezes_early_stages_only_where_it_was_measured():
    """EfficientNet-Lite's stem and first four stages (blocks.3); nothing for another network or random weights;
    an explicit freeze wins and is recorded as overridden."""
    from imagesasdata.train.trainer import recipe_record

    assert TrainConfig(device="cpu").freeze == "blocks.3"
    assert TrainConfig(architecture="timm/efficientnet_lite1").freeze == "blocks.3"
    assert TrainConfig(architecture="resnet18").freeze == "none"
    assert TrainConfig(weights="none").freeze == "none"
    given = TrainConfig(freeze="none")
    assert given.freeze == "none" and "freeze" not in given.recipe_chose
    assert recipe_record(given)["overridden"]["freeze"] == {"recipe": "blocks.3", "used": "none"}
    assert recipe_record(TrainConfig())["chose"]["freeze"] == "blocks.3"


def test_steplr_options_under_another_schedule_warn():
    """step_size and gamma do nothing under the default one-cycle schedule: a run that sets them says so."""
    with pytest.warns(UserWarning, match=r"step_size=5: only the book's StepLR uses it.*schedule='step'"):
        TrainConfig(step_size=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrainConfig(recipe="head-first", step_size=5, gamma=0.5)       # StepLR: both used
        TrainConfig(step_size=7, gamma=0.1)                             # the book's values, as model.json records them


def test_early_stopping_stops_on_a_plateau_of_the_validation_loss():
    """Patience 2: the run stops once two epochs in a row have not lowered the best validation loss."""
    from imagesasdata.train.trainer import TrainingState

    state, said = TrainingState(), []
    trainer = types.SimpleNamespace(_say=said.append)
    stopping = EarlyStopping(2)
    for epoch, loss in enumerate([1.0, 0.8, 0.85, 0.7, 0.75, 0.7, 0.6], start=1):
        stopping.after_epoch(trainer, state, types.SimpleNamespace(epoch=epoch, val_loss=loss))
        if state.stopped_early:
            break
    assert epoch == 6 and state.best_val_loss == 0.7 and said


def test_early_stopping_counts_from_the_first_settled_epoch():
    """Under a one-cycle warm-up and progressive resizing the validation loss of the first epochs says little:
    early stopping neither counts them nor takes its best loss from them."""
    from imagesasdata.train.schedules import first_settled_epoch
    from imagesasdata.train.trainer import TrainingState

    fast = TrainConfig(recipe="fast", device="cpu")
    assert first_settled_epoch(fast, training_sizes(8, 128, 224)) == 5        # full size from epoch 5
    assert first_settled_epoch(fast, [64] * 8) == 3                           # no resizing: past the 2-epoch rise
    assert first_settled_epoch(TrainConfig(recipe="head-first"), [224] * 25) == 1   # StepLR: from the start
    state, said = TrainingState(), []
    stopping = EarlyStopping(2, start=5)
    # The loss rises during the warm-up (epochs 2-4): the run goes on, and stops two epochs after its best from 5.
    for epoch, loss in enumerate([0.5, 0.9, 1.2, 1.0, 0.7, 0.6, 0.65, 0.62], start=1):
        stopping.after_epoch(types.SimpleNamespace(_say=said.append), state, types.SimpleNamespace(epoch=epoch, val_loss=loss))
        if state.stopped_early:
            break
    assert epoch == 8 and state.best_val_loss == 0.6


@pytest.mark.trains
def test_progressive_resizing_discriminative_rates_and_the_head_rate_in_a_run(tiny_faces, tmp_path, monkeypatch):
    """Through the real pipeline (decode cache, trainer, phases): the training batches of each epoch have the rule's
    side, validation and the decode cache stay at full size, the head's epochs train at head_learning_rate on
    features of the first epoch's size, and fine-tuning steps one parameter group per block under a one-cycle
    schedule. Nothing here depends on what the fit learns."""
    from imagesasdata.train import trainer as train_module

    seen = []
    step = train_module.Trainer.step

    def recording_step(self, inputs, targets, phase=None):
        phase = phase or self.fine_tuning
        seen.append((phase.name, tuple(inputs.shape), [g["lr"] for g in phase.optimizer.param_groups]))
        return step(self, inputs, targets, phase)

    monkeypatch.setattr(train_module.Trainer, "step", recording_step)
    forwards = []
    original = train_module.forward_rows

    def recording_forward(model, images, rows, prep, *args, **kwargs):
        forwards.append((prep.image_size, images.array.shape[1]))
        return original(model, images, rows, prep, *args, **kwargs)

    monkeypatch.setattr(train_module, "forward_rows", recording_forward)
    from imagesasdata.train import features as features_module

    feature_sides = []
    eval_view = features_module.eval_view

    def recording_eval_view(base, prep, size=None):
        feature_sides.append(size)
        return eval_view(base, prep, size)

    monkeypatch.setattr(features_module, "eval_view", recording_eval_view)
    run = iad.finetune(tiny_faces, out=tmp_path / "run", recipe="fast", image_size=64, progressive_resize=32,
                       epochs=3, head_epochs=1, head_learning_rate=0.05, freeze="blocks.4", progress=False, seed=0)
    head = [s for s in seen if s[0] == "head epoch"]
    tuning = [s for s in seen if s[0] == "epoch"]
    assert head and all(lrs == [0.05] for _, _, lrs in head)
    assert {shape[1:] for _, shape, _ in head} == {(1280,)}           # features ...
    # ... of views at the first epoch's side (the full-size ones: head_is_final's check on two images)
    assert feature_sides.count(32) >= 2 * 12 and set(feature_sides) == {None, 32} and feature_sides.count(None) == 2
    steps_per_epoch = len(tuning) // 3
    sides = [tuning[k * steps_per_epoch][1][-1] for k in range(3)]
    assert sides == training_sizes(3, 32, 64) == [32, 64, 64]
    for k in range(3):
        assert {shape[-1] for _, shape, _ in tuning[k * steps_per_epoch:(k + 1) * steps_per_epoch]} == {sides[k]}
    # Blocks 5, 6 (with the last 1x1 convolution) and the new last layer train, each at 0.7 of the one above.
    first = tuning[0][2]
    assert len(first) == 3 and first[0] / first[2] == pytest.approx(0.49) and first[1] / first[2] == pytest.approx(0.7)
    assert len({lrs[-1] for _, _, lrs in tuning}) > steps_per_epoch   # the rate changes after every step
    assert forwards and set(forwards) == {(64, 73)}                     # validation: full size; the cache: 256/224
    assert run.description["preprocessing"]["image_size"] == 64
    assert run.description["hyperparameters"]["progressive_resize"] == 32


def test_cli_takes_the_new_options():
    from imagesasdata.cli import build_parser
    from imagesasdata.cli.common import given_options

    args = build_parser().parse_args(["finetune", "faces", "--out", "run", "--recipe", "fast", "--schedule",
                                      "warmup_cosine", "--warmup-fraction", "0.2", "--lr-decay-per-block", "0.8",
                                      "--progressive-resize", "96", "--full-size-epochs", "3",
                                      "--head-learning-rate", "0.02"])
    options = given_options(args, TrainConfig)
    assert options == {"recipe": "fast", "schedule": "warmup_cosine", "warmup_fraction": 0.2,
                       "lr_decay_per_block": 0.8, "progressive_resize": 96, "full_size_epochs": 3,
                       "head_learning_rate": 0.02}
    config = TrainConfig.from_options(**options)
    assert (config.schedule, config.learning_rate, config.epochs) == ("warmup_cosine", 0.004, 8)
