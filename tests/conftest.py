"""Shared fixtures: the real datasets in ../shared/datasets and small real-image corpora built from them."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

# The training guard (DEVELOPERS.md, Tests): before each test's fixtures are set up, IMAGESASDATA_TRAINING says
# whether it may train. A test not marked `trains` that builds a Trainer (itself, through a fixture, a CLI child
# process or R in this process) fails with TrainingForbidden, so every test whose outcome depends on a fit is
# marked, and `make test-other-cpus` (`pytest -m trains` under other instruction sets) reruns all of them.
TRAINING_GUARD = "IMAGESASDATA_TRAINING"


# A fixture of wider scope trains once, for whichever test asks first; the tests that reuse it later depend on that
# fit as much. The fixtures seen training are noted here, and an unmarked test that uses one fails too.
_TRAINING_FIXTURES: set[str] = set()


def _trainers_built() -> int:
    trainer = sys.modules.get("imagesasdata.train.trainer")   # not imported here: `import imagesasdata` stays light
    return trainer.trainers_built if trainer else 0


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    trains = item.get_closest_marker("trains") is not None
    os.environ[TRAINING_GUARD] = "allowed" if trains else "forbidden"
    used = sorted(_TRAINING_FIXTURES & set(item.fixturenames))
    if used and not trains:
        pytest.fail(f"{item.nodeid} uses the fixture(s) {', '.join(used)}, which trained a network in this session: "
                    "mark the test @pytest.mark.trains (DEVELOPERS.md, Tests)", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    before = _trainers_built()
    yield
    if _trainers_built() > before:
        _TRAINING_FIXTURES.add(fixturedef.argname)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    os.environ.pop(TRAINING_GUARD, None)


def shared_datasets() -> Path:
    """../shared/datasets beside the repository (or $IMAGESASDATA_DATASETS); a clear failure if absent."""
    candidates = [os.environ.get("IMAGESASDATA_DATASETS"), REPOSITORY.parent / "shared" / "datasets",
                  Path("/work/shared/datasets")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "orl_faces").is_dir():
            return Path(candidate)
    raise RuntimeError("the shared datasets are missing: set IMAGESASDATA_DATASETS to the folder holding orl_faces/")


@pytest.fixture(scope="session")
def datasets() -> Path:
    return shared_datasets()


@pytest.fixture(scope="session")
def orl_faces(datasets) -> Path:
    return datasets / "orl_faces"


@pytest.fixture(scope="session")
def rekognition_examples(datasets) -> Path:
    return datasets / "rekognition_examples"


@pytest.fixture(scope="session")
def sample_data() -> Path:
    import imagesasdata

    return imagesasdata.sample_data()


@pytest.fixture()
def book_layout(tmp_path, orl_faces) -> Path:
    """The book's train/ val/ layout with positive (person s1) and negative (s2, s3) folders, by copying."""
    root = tmp_path / "book"
    for person, label in (("s1", "positive"), ("s2", "negative"), ("s3", "negative")):
        for k in range(1, 11):
            split = "train" if k <= 8 else "val"
            target = root / split / label / f"{person}_{k}.pgm"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(orl_faces / person / f"{k}.pgm", target)
    return root


@pytest.fixture()
def small_faces(tmp_path, orl_faces) -> Path:
    """A folder of class folders: 3 people × 10 photos, the who-is-this task in miniature."""
    root = tmp_path / "faces"
    for person in ("s1", "s2", "s3"):
        shutil.copytree(orl_faces / person, root / person)
    return root


@pytest.fixture(scope="session")
def tiny_faces(tmp_path_factory, orl_faces) -> Path:
    """Three people, five real photos each, in class folders: small enough that a fine-tune at 32 px takes about a
    second (the crash and locking tests run dozens)."""
    root = tmp_path_factory.mktemp("tiny")
    for person in ("s1", "s2", "s3"):
        (root / person).mkdir()
        for k in range(1, 6):
            shutil.copy(orl_faces / person / f"{k}.pgm", root / person / f"{k}.pgm")
    return root


@pytest.fixture(scope="module")
def fake_aws(tmp_path_factory):
    """A real S3 endpoint for one test module: a moto server on 127.0.0.1 (server mode, so that other processes —
    Ray's workers and nodes, a CLI in a child process — reach it over loopback), and fake credentials in the
    environment — set before Ray starts, so its workers and nodes take them from their own environment as from an
    instance role; nothing is shipped through Ray — with no ~/.aws files or instance metadata to fall back on.
    Yields the endpoint URL. Used by test_distributed.py and test_cluster.py."""
    import logging

    pytest.importorskip("moto")
    from moto.server import ThreadedMotoServer

    folder = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                            "AWS_CONFIG_FILE": str(folder / "no-config"),
                            "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-credentials")}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()
            from imagesasdata.io import s3 as s3_io

            s3_io._clients.clear()   # clients made with this module's credentials and endpoint


def imagenet_examples(folder: Path) -> list[tuple[Path, set]]:
    """Real photos whose ImageNet-1k classes are known, written into `folder`: (path, accepted class indices).

    scikit-image's and scikit-learn's sample photos and two of the tweeted images, each with the classes a person
    would accept (a cat photo may be a tabby, a tiger cat or an Egyptian cat). Nothing is downloaded.
    """
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "chelsea": (data.chelsea(), {281, 282, 285}),                 # tabby, tiger cat, Egyptian cat
        "coffee": (data.coffee(), {967, 968, 504}),                   # espresso, cup, coffee mug
        "rocket": (data.rocket(), {657, 744, 812}),                   # missile, projectile, space shuttle
        "motorcycle": (data.stereo_motorcycle()[0], {665, 670}),      # moped, motor scooter
        "cameraman": (data.camera(), {872, 759}),                     # tripod, reflex camera
        "china": (load_sample_image("china.jpg"), {698, 663, 832}),   # palace, monastery, stupa
    }
    examples = []
    for name, (array, classes) in arrays.items():
        path = folder / f"{name}.png"
        Image.fromarray(array).save(path)
        examples.append((path, classes))
    tweets = shared_datasets() / "rekognition_examples"
    examples.append((tweets / "ex_1.jpg", {504, 968}))                 # a C-SPAN coffee mug
    examples.append((tweets / "ex_3.jpg", {921, 917}))                 # a TIME cover: book jacket, comic book
    return examples


@pytest.fixture()
def fake_torchvision_release(tmp_path, monkeypatch):
    """A resnet18 weights file named like torchvision's (name-<sha256 prefix>.pth), served over real HTTP on
    localhost, and TORCH_HOME pointed at an empty cache."""
    import functools
    import hashlib
    import http.server
    import threading

    import torch
    import torchvision

    import imagesasdata.model.backbones as backbones
    from imagesasdata.model.backbones import create_backbone

    torch.manual_seed(1)
    reference = create_backbone("resnet18", weights=None, num_classes=2).model

    model = torchvision.models.resnet18(weights=None)
    served = tmp_path / "served"
    served.mkdir()
    temporary = served / "resnet18.pth"
    torch.save(model.state_dict(), temporary)
    digest = hashlib.sha256(temporary.read_bytes()).hexdigest()[:8]
    release = served / f"resnet18-{digest}.pth"
    temporary.rename(release)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{release.name}"
    monkeypatch.setattr(backbones, "IMAGENET_URL", lambda name: url)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    yield {"model": model, "release": release, "cache": tmp_path / "torch_home" / "hub" / "checkpoints" / release.name,
           "reference": reference}
    server.shutdown()
