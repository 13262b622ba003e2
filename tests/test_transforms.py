"""The resize modes of the book's Figure 4.2, its Listing 1 evaluation transform, and seeded augmentation."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from imagesasdata.errors import ImagesAsDataError
from imagesasdata.io.images import open_rgb
from imagesasdata.data.transforms import (
    Preprocessing, base_array, channel_statistics, crop_source_array, crops_whole_image, eval_view, load_base,
    normalize_batch, random_resized_crop_box, to_chw, train_view,
)


@pytest.fixture()
def halves() -> Image.Image:
    """200×100: left half red, right half blue — easy to reason about after each resize."""
    array = np.zeros((100, 200, 3), np.uint8)
    array[:, :100] = (255, 0, 0)
    array[:, 100:] = (0, 0, 255)
    return Image.fromarray(array)


def test_squish_keeps_everything_and_distorts(halves):
    out = base_array(halves, "squish", 64)
    assert out.shape == (64, 64, 3)
    assert tuple(out[32, 5]) == (255, 0, 0) and tuple(out[32, 58]) == (0, 0, 255)


def test_rescale_crop_cuts_the_sides(halves):
    out = base_array(halves, "rescale-crop", 64)  # 128×64 then the central 64×64
    assert out.shape == (64, 64, 3)
    assert tuple(out[32, 5]) == (255, 0, 0) and tuple(out[32, 58]) == (0, 0, 255)
    assert (out[:, :28] == (255, 0, 0)).all()


def test_pad_letterboxes_with_black(halves):
    out = base_array(halves, "pad", 64)  # 64×32 in the middle, black above and below
    assert tuple(out[2, 32]) == (0, 0, 0) and tuple(out[61, 32]) == (0, 0, 0)
    assert tuple(out[32, 5]) == (255, 0, 0)


def test_crop_takes_the_centre_at_original_scale(halves):
    out = base_array(halves, "crop", 50)  # pixels 75..124 of the width: red then blue, unscaled
    assert tuple(out[25, 0]) == (255, 0, 0) and tuple(out[25, 49]) == (0, 0, 255)
    assert (out[:, :25] == (255, 0, 0)).all() and (out[:, 25:] == (0, 0, 255)).all()


def test_default_evaluation_matches_the_books_listing(rekognition_examples, orl_faces):
    """Resize(256) + CenterCrop(224), as in the book's Listing 1 (torchvision on PIL), to the pixel: portrait and
    landscape photos, and a 92×112 face whose resized side (311.65) and crop offsets (27.5) need torchvision's
    rounding."""
    prep = Preprocessing()
    assert (prep.image_size, prep.resize_size) == (224, 256)
    book = T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()])
    for path in (rekognition_examples / "ex_3.jpg", rekognition_examples / "ex_5.jpg", orl_faces / "s1" / "1.pgm"):
        ours = eval_view(to_chw(base_array(open_rgb(path), prep.resize, prep.resize_size)), prep)
        assert torch.equal(ours, book(open_rgb(path)))


def test_load_base_with_draft_mode_is_close_to_a_full_decode(tmp_path, rekognition_examples):
    image = open_rgb(rekognition_examples / "ex_2.jpg")
    image.resize((image.width * 3, image.height * 3)).save(tmp_path / "big.jpg", quality=95)
    prep = Preprocessing(image_size=112)
    drafted = load_base(tmp_path / "big.jpg", prep).astype(int)
    full = base_array(open_rgb(tmp_path / "big.jpg"), prep.resize, prep.resize_size).astype(int)
    # The same picture sampled slightly differently (DCT scaling vs. resampling): nearly identical pixel values.
    assert np.corrcoef(drafted.ravel(), full.ravel())[0, 1] > 0.98


def test_augmentation_is_seeded():
    base = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    prep = Preprocessing()
    first = train_view(base, prep, np.random.default_rng([0, 1, 7]))
    assert first.shape == (3, 224, 224) and first.dtype == torch.uint8
    assert torch.equal(first, train_view(base, prep, np.random.default_rng([0, 1, 7])))
    assert not torch.equal(first, train_view(base, prep, np.random.default_rng([0, 2, 7])))


def test_augmentation_switches():
    base = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    prep = Preprocessing(augment_crop=False, augment_flip=False)
    assert torch.equal(train_view(base, prep, np.random.default_rng(3)), eval_view(to_chw(base), prep))
    mirrored = Preprocessing(augment_crop=False, augment_flip=True)
    views = [train_view(base, mirrored, np.random.default_rng(k)) for k in range(20)]
    flipped = sum(torch.equal(v, eval_view(to_chw(base), prep).flip(-1)) for v in views)
    assert 3 <= flipped <= 17 and flipped + sum(torch.equal(v, eval_view(to_chw(base), prep)) for v in views) == 20


def test_random_resized_crop_matches_torchvision_on_the_same_box():
    """The crop-and-resize of the book's RandomResizedCrop (torchvision on a PIL image), given the same box."""
    import torchvision.transforms.functional as F

    base = np.asarray(open_rgb(Path(__file__).parent.parent / "data" / "faces" / "s1" / "1.png").resize((256, 256)))
    prep = Preprocessing(augment_flip=False)
    ours = train_view(base, prep, np.random.default_rng(5)).numpy().astype(int)
    top, left, height, width = random_resized_crop_box(256, 256, prep.crop_scale, prep.crop_ratio, np.random.default_rng(5))
    book = np.asarray(F.resized_crop(Image.fromarray(base), top, left, height, width, [224, 224])).transpose(2, 0, 1)
    assert np.abs(ours - book.astype(int)).max() <= 1


@pytest.fixture()
def thirds() -> Image.Image:
    """600×200: green, red and blue thirds. Resize(256) + CenterCrop keeps only the red middle."""
    array = np.zeros((200, 600, 3), np.uint8)
    array[:, :200] = (0, 255, 0)
    array[:, 200:400] = (255, 0, 0)
    array[:, 400:] = (0, 0, 255)
    return Image.fromarray(array)


def test_training_crops_see_the_whole_image_as_in_listing_1(thirds):
    """Listing 1's RandomResizedCrop cuts from the whole original picture: the sides that evaluation's centre
    crop drops must appear in training views too."""
    prep = Preprocessing(augment_flip=False)
    assert crops_whole_image(prep)
    base = base_array(thirds, prep.resize, prep.resize_size)
    assert (base[..., 1] < 128).all() and (base[..., 2] < 128).all()     # the base square is red only
    source = crop_source_array(thirds, prep.crop_source_size)
    assert source.shape == (200, 600, 3)                                 # smaller than the bound: kept as it is
    views = [train_view(source, prep, np.random.default_rng(k)).numpy() for k in range(40)]
    # A crop covers at most the full height and 4/3 of it in width, so each view shows one or two of the colours.
    assert sum((v[1] > 200).any() for v in views) >= 5 and sum((v[2] > 200).any() for v in views) >= 5


def test_crops_of_the_crop_source_are_torchvisions_crops_of_the_original(rekognition_examples):
    """Same box, same pixels: a crop source that needed no shrinking is the original image."""
    import torchvision.transforms.functional as F

    original = open_rgb(rekognition_examples / "ex_5.jpg")
    prep = Preprocessing(augment_flip=False, crop_source_size=max(original.size))
    source = crop_source_array(original, prep.crop_source_size)
    for seed in range(3):
        ours = train_view(source, prep, np.random.default_rng(seed)).numpy().astype(int)
        top, left, height, width = random_resized_crop_box(original.height, original.width, prep.crop_scale,
                                                           prep.crop_ratio, np.random.default_rng(seed))
        book = np.asarray(F.resized_crop(original, top, left, height, width, [224, 224])).transpose(2, 0, 1)
        assert np.abs(ours - book.astype(int)).max() <= 1


def test_crop_sources_are_shrunk_to_their_bound_with_the_aspect_ratio_kept():
    wide = Image.new("RGB", (2000, 1000), (10, 20, 30))
    assert crop_source_array(wide, 512).shape == (512, 1024, 3)
    small = Image.new("RGB", (50, 40))
    assert crop_source_array(small, 512).shape == (40, 50, 3)            # never enlarged
    assert Preprocessing().crop_source_size == 512                       # twice the book's 256
    # Only the book's rescale-crop drops a periphery; the other modes crop their own square.
    assert not crops_whole_image(Preprocessing(resize="squish"))
    assert not crops_whole_image(Preprocessing(augment_crop=False))


def test_random_resized_crop_boxes_respect_scale_and_bounds():
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(500):
        top, left, h, w = random_resized_crop_box(256, 256, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= top and 0 <= left and top + h <= 256 and left + w <= 256
        areas.append(h * w / 256 ** 2)
    assert 0.07 <= min(areas) and max(areas) <= 1.0 and 0.4 < np.mean(areas) < 0.65


def test_normalize_batch_matches_torchvision():
    batch = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    expected = T.Normalize(mean, std)(batch.float() / 255)
    assert torch.allclose(normalize_batch(batch, mean, std), expected, atol=1e-5)


def test_channel_statistics():
    arrays = [np.random.default_rng(k).integers(0, 255, (16, 16, 3), dtype=np.uint8) for k in range(3)]
    mean, std = channel_statistics(arrays)
    pixels = np.concatenate([a.reshape(-1, 3) for a in arrays]) / 255
    assert np.allclose(mean, pixels.mean(0)) and np.allclose(std, pixels.std(0))


def test_unknown_resize_mode_lists_the_modes():
    with pytest.raises(ImagesAsDataError, match="resize='sqush'.*squish.*Did you mean 'squish'"):
        Preprocessing(resize="sqush")
