"""Zero-shot CLIP through open_clip. No pretrained CLIP weights can be downloaded on the test machines, so the
network is open_clip's own ViT-S-32 architecture with random weights, saved as a local .safetensors file: the
path a user without a network takes. What is checked is the arithmetic — our probabilities equal those computed
by hand from open_clip's own preprocess, encode_image and encode_text on the same weights — not what the classes
mean (random weights know nothing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import imagesasdata as iad  # noqa: E402
from imagesasdata.autotag.zero_shot import zero_shot_description  # noqa: E402
from imagesasdata.errors import ImagesAsDataError  # noqa: E402

ARCHITECTURE = "ViT-S-32"   # the smallest ViT CLIP in open_clip's list: builds in a second or two
PROMPTS = {"glasses": ["a photo of a person wearing glasses.", "a face with spectacles."],
           "no glasses": "a photo of a person without glasses.",
           "empty": ["an empty room.", "a blank wall.", "nothing at all."]}


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> Path:
    """open_clip's ViT-S-32 with random weights (seeded), as a whole-model state dict in safetensors."""
    from safetensors.torch import save_file

    torch.manual_seed(7)
    model = open_clip.create_model(ARCHITECTURE, pretrained=None)
    path = tmp_path_factory.mktemp("clip") / "vit-s-32-random.safetensors"
    save_file(model.state_dict(), str(path))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory, sample_data, rekognition_examples) -> Path:
    """Grey ORL faces (PNG) and two colour photos of other shapes, converted to PNG."""
    folder = tmp_path_factory.mktemp("photos")
    for image in sorted((sample_data / "new_images").glob("*.png"))[:4]:
        shutil.copy(image, folder / image.name)
    for image in sorted(rekognition_examples.glob("*.jpg"))[:2]:
        Image.open(image).convert("RGB").save(folder / f"{image.stem}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


_OPEN_CLIP = {}


def _by_hand(clip_file: Path, files, prompts: dict):
    """CLIP's zero-shot probabilities from open_clip's own pieces: its preprocess, encode_image, encode_text."""
    if clip_file not in _OPEN_CLIP:
        model, _, preprocess = open_clip.create_model_and_transforms(ARCHITECTURE, pretrained=str(clip_file))
        _OPEN_CLIP[clip_file] = (model.eval(), preprocess)
    model, preprocess = _OPEN_CLIP[clip_file]
    tokenizer = open_clip.get_tokenizer(ARCHITECTURE)
    with torch.no_grad():
        images = torch.stack([preprocess(Image.open(f)) for f in files])
        image_features = model.encode_image(images, normalize=True)
        classes = []
        for sentences in prompts.values():
            sentences = [sentences] if isinstance(sentences, str) else sentences
            text = model.encode_text(tokenizer(sentences), normalize=True)
            classes.append(F.normalize(text.mean(dim=0), dim=-1))
        logits = model.logit_scale.exp() * image_features @ torch.stack(classes).T
    return logits.softmax(dim=-1).numpy(), image_features.numpy()


def test_probabilities_equal_open_clips_own_computation(clip_file, photos):
    table = iad.zero_shot_labels(photos, list(PROMPTS), prompts=PROMPTS, model=ARCHITECTURE, weights=clip_file,
                                 embeddings=True, progress=False)
    assert table.column_names == ["image_id", "path", "image_sha256", "tagger", "predicted", "prob_glasses",
                                  "prob_no glasses", "prob_empty", "embedding", "error"]
    rows = {r["image_id"]: r for r in table.to_pylist()}
    assert rows["broken.png"]["error"] and rows["broken.png"]["predicted"] is None
    files = sorted(p for p in photos.glob("*.png") if p.name != "broken.png")
    probabilities, features = _by_hand(clip_file, files, PROMPTS)
    ours = np.array([[rows[f.name][f"prob_{c}"] for c in PROMPTS] for f in files])
    np.testing.assert_allclose(ours, probabilities, rtol=0, atol=1e-5)
    assert [rows[f.name]["predicted"] for f in files] == [list(PROMPTS)[i] for i in probabilities.argmax(axis=1)]
    np.testing.assert_allclose(np.array([rows[f.name]["embedding"] for f in files]), features, atol=1e-5)
    # Provenance, recorded like a run's: model, the file and its hash, the sentences and their hash, preprocessing.
    record = zero_shot_description(table)
    assert record["architecture"] == ARCHITECTURE and record["weights"] == str(clip_file.resolve())
    import hashlib

    assert record["weights_sha256"] == hashlib.sha256(clip_file.read_bytes()).hexdigest()
    assert record["prompts"]["no glasses"] == ["a photo of a person without glasses."]
    assert record["preprocessing"]["interpolation"] == "bicubic" and record["preprocessing"]["image_size"] == 224
    assert set(table["tagger"].to_pylist()) == {f"clip:{ARCHITECTURE}:file-{record['weights_sha256'][:12]}"}

    # The same embeddings through image_embeddings(), cached by file hash, for the maps and clusters.
    embeddings = iad.image_embeddings(files, architecture=f"open_clip/{ARCHITECTURE}", weights=clip_file,
                                      progress=False)
    np.testing.assert_allclose(np.array(embeddings["embedding"].to_pylist()), features, atol=1e-5)
    mapped = iad.embedding_map(embeddings, method="pca")
    assert mapped.num_rows == len(files)

    # The codes validate and correct like any tagger's: compare_tags reads the predicted class as the tag.
    import pyarrow as pa

    manual = pa.table({"image_id": [f.name for f in files], "label": ["no"] * (len(files) - 1) + ["yes"]})
    comparison = iad.compare_tags(table, manual, "glasses")
    assert sum(comparison.count(c) for c in ("true positive", "false positive", "false negative", "true negative")) \
        == len(files)


def test_a_template_ensemble_applies_to_every_class(clip_file, photos):
    files = sorted(photos.glob("s*.png"))[:2]
    templates = ["a photo of {}.", "a close-up of {}."]
    table = iad.zero_shot_labels(files, ["a man", "a woman"], prompts=templates, model=ARCHITECTURE,
                                 weights=clip_file, progress=False)
    expected = {"a man": ["a photo of a man.", "a close-up of a man."],
                "a woman": ["a photo of a woman.", "a close-up of a woman."]}
    assert zero_shot_description(table)["prompts"] == expected
    probabilities, _ = _by_hand(clip_file, files, expected)
    np.testing.assert_allclose(np.array([[r["prob_a man"], r["prob_a woman"]] for r in table.to_pylist()]),
                               probabilities, atol=1e-5)


def test_weights_that_cannot_be_used_are_refused_with_the_way_out(clip_file, photos, tmp_path, monkeypatch):
    files = sorted(photos.glob("s*.png"))[:1]
    pickled = tmp_path / "clip.pt"
    pickled.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ImagesAsDataError, match="must be a .safetensors file"):
        iad.zero_shot_labels(files, ["a", "b"], model=ARCHITECTURE, weights=pickled, progress=False)
    with pytest.raises(ImagesAsDataError, match="do not fit open_clip's ViT-S-16"):
        iad.zero_shot_labels(files, ["a", "b"], model="ViT-S-16", weights=clip_file, progress=False)
    with pytest.raises(ImagesAsDataError, match="does not exist"):
        iad.zero_shot_labels(files, ["a", "b"], model=ARCHITECTURE, weights=tmp_path / "nowhere.safetensors",
                             progress=False)
    with pytest.raises(ImagesAsDataError, match="unknown open_clip model 'ViT-B-33'.*Did you mean"):
        iad.zero_shot_labels(files, ["a", "b"], model="ViT-B-33", progress=False)
    with pytest.raises(ImagesAsDataError, match="not a pretrained tag"):
        iad.zero_shot_labels(files, ["a", "b"], model=ARCHITECTURE, weights="opnai", progress=False)
    with pytest.raises(ImagesAsDataError, match="at least 2 classes"):
        iad.zero_shot_labels(files, ["a"], model=ARCHITECTURE, weights=clip_file, progress=False)
    with pytest.raises(ImagesAsDataError, match="missing: b"):
        iad.zero_shot_labels(files, ["a", "b"], prompts={"a": "x"}, model=ARCHITECTURE, weights=clip_file,
                             progress=False)
    # open_clip's own download, offline (this machine cannot fetch weights): a clear error with the way out.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    with pytest.raises(ImagesAsDataError, match="could not fetch open_clip's 'openai' weights.*safetensors"):
        iad.zero_shot_labels(files, ["a", "b"], model="ViT-B-32", weights="openai", progress=False)


@pytest.mark.trains
def test_a_linear_probe_on_clip_features_through_the_frozen_feature_path(clip_file, sample_data, tmp_path):
    """finetune() with CLIP's image tower as the backbone, frozen: the head trains on features computed once.
    The run records the open_clip model and the weights file; reloaded from disk, it predicts exactly what the
    network that was trained predicts (the same CLIP architecture is rebuilt from model.json)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    labels = pacsv.read_csv(sample_data / "person_vs_others.csv")
    keep = [i for i, path in enumerate(labels["path"].to_pylist()) if Path(path).stem in ("1", "2", "3")]
    small = labels.take(pa.array(keep))                                  # 18 photos: 3 of each of 6 people
    small = small.set_column(small.column_names.index("path"), "path",
                             pa.array([str(sample_data / p) for p in small["path"].to_pylist()]))
    run = iad.finetune(small, architecture=f"open_clip/{ARCHITECTURE}",
                       weights=str(clip_file), freeze="backbone", augment_crop=False, epochs=1, batch_size=16,
                       out=tmp_path / "run", progress=False)
    description = run.description
    assert description["library"] == "open_clip" and description["architecture"] == ARCHITECTURE
    assert description["weights"] == str(clip_file.resolve())
    new = [str(p) for p in sorted((sample_data / "new_images").glob("*.png"))[:4]]
    first = run.predict(new, progress=False)
    again = iad.load_run(tmp_path / "run").predict(new, progress=False)
    probabilities = [c for c in first.column_names if c.startswith("prob_")]
    assert len(probabilities) == 2 and first.num_rows == 4
    np.testing.assert_allclose(np.array([first[c].to_pylist() for c in probabilities]),
                               np.array([again[c].to_pylist() for c in probabilities]), atol=1e-6)
