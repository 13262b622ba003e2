"""The book's reference training loop, re-implemented as the baseline for benchmarks.

As in the book's code (after PyTorch's transfer-learning tutorial): torchvision ImageFolder on train/ and val/
folders, every JPEG decoded again in every epoch by DataLoader workers, RandomResizedCrop(224) + horizontal flip
for training, Resize(256) + CenterCrop(224) for validation, ImageNet normalisation, batch size 4, SGD (learning
rate 0.001, momentum 0.9), StepLR (step size 7, gamma 0.1), the best validation epoch kept — here by value (the
original keeps a live reference, a bug that does not change its speed). The backbone is the same offline ImageNet
EfficientNet-Lite0 the engine uses, so the two are compared on equal terms.

Two switches exist only to separate the differences between this loop and the engine's recipe="book" one at a
time (benchmarks/accuracy.py, "Where the gap came from"): head_init="normal" draws the new last layer from
N(0, 0.01) with zero bias, as the engine does (the loop's own: nn.Linear's default initialisation); channels_last
=True runs the network in the channels-last memory layout, as the engine does on CPUs.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn as nn
from torchvision import datasets, transforms


def reference_model(num_classes: int, architecture: str = "efficientnet_lite0", head_init: str = "pytorch") -> nn.Module:
    import timm

    from imagesasdata.model.backbones import efficientnet_lite0_state

    if architecture == "efficientnet_lite0":
        model = timm.create_model("efficientnet_lite0")
        model.load_state_dict(efficientnet_lite0_state(model))
        model.classifier = nn.Linear(model.classifier.in_features, num_classes)
    else:
        import torchvision

        model = torchvision.models.get_model(architecture, weights=None)
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    if head_init == "normal":
        head = model.classifier if architecture == "efficientnet_lite0" else model.fc
        nn.init.normal_(head.weight, mean=0.0, std=0.01)
        nn.init.zeros_(head.bias)
    elif head_init != "pytorch":
        raise ValueError(f"head_init={head_init!r}: 'pytorch' (the loop's own) or 'normal'")
    return model


def reference_finetune(data_dir, epochs: int = 25, batch_size: int = 4, learning_rate: float = 0.001,
                       momentum: float = 0.9, seed: int = 0, num_workers: int = 2, image_size: int = 224,
                       architecture: str = "efficientnet_lite0", head_init: str = "pytorch",
                       channels_last: bool = False, on_epoch=None) -> dict:
    """Train as the book does; return wall seconds, best validation accuracy and per-epoch seconds.
    on_epoch(epoch, val_accuracy, val_loss), if given, is called as each epoch ends (time_to_accuracy.py times
    them); it changes nothing in the loop."""
    torch.manual_seed(seed)
    resize = round(image_size * 256 / 224)
    normalize = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    data_transforms = {
        "train": transforms.Compose([transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(),
                                     transforms.ToTensor(), normalize]),
        "val": transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(image_size),
                                   transforms.ToTensor(), normalize]),
    }
    image_datasets = {x: datasets.ImageFolder(f"{data_dir}/{x}", data_transforms[x]) for x in ("train", "val")}
    loaders = {x: torch.utils.data.DataLoader(image_datasets[x], batch_size=batch_size, shuffle=True,
                                              num_workers=num_workers) for x in ("train", "val")}
    sizes = {x: len(image_datasets[x]) for x in ("train", "val")}
    model = reference_model(len(image_datasets["train"].classes), architecture, head_init)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
    started = time.perf_counter()
    best_accuracy, best_weights, epoch_seconds = 0.0, copy.deepcopy(model.state_dict()), []
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        for phase in ("train", "val"):
            model.train() if phase == "train" else model.eval()
            corrects, total_loss = 0, 0.0
            for inputs, labels in loaders[phase]:
                inputs = inputs.contiguous(memory_format=layout)
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    loss = criterion(outputs, labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                corrects += int((outputs.argmax(1) == labels).sum())
                total_loss += float(loss.detach()) * len(labels)
            if phase == "train":
                scheduler.step()
            accuracy = corrects / sizes[phase]
            if phase == "val" and accuracy > best_accuracy:
                best_accuracy, best_weights = accuracy, copy.deepcopy(model.state_dict())
        epoch_seconds.append(time.perf_counter() - epoch_start)
        if on_epoch is not None:
            on_epoch(len(epoch_seconds), accuracy, total_loss / sizes["val"])
    model.load_state_dict(best_weights)
    return {"seconds": time.perf_counter() - started, "val_accuracy": best_accuracy, "epoch_seconds": epoch_seconds,
            "train_images": sizes["train"]}
