"""Verb label: a whole corpus from a manifest into resumable Parquet shards, here or on a Ray cluster."""

from __future__ import annotations

import argparse

from ..train.config import OPTION_HELP

LABEL_EPILOG = """
MANIFEST is a CSV or Parquet table with a path column (local paths, relative to the table's folder, or s3:// URIs;
the manifest itself may be at an s3:// URI), a folder, or an image file. OUT (a folder, or an s3://bucket/prefix)
receives manifest.parquet, labelling.json and shards/shard-NNNNNN.parquet, one per --shard-size rows of the
manifest, with the columns of `predict`; each file (each S3 object) is written whole in one step. Run the same
command again to resume: finished shards are skipped. Unreadable images are rows with an error; they never stop
the job. One job at a time writes OUT: a second is refused.

--backend ray joins the Ray cluster in RAY_ADDRESS (or --ray-address), or starts one on this machine: images are
decoded by Ray tasks and labelled by a pool of model replicas, one per GPU (or one per core without GPUs). On a
cluster of several machines, OUT must be a folder every node sees, or an s3:// prefix (checked before it starts).

examples:
  imagesasdata label runs/protest corpus.parquet --out labels/
  RAY_ADDRESS=auto imagesasdata label runs/protest s3://my-bucket/manifest.csv --out s3://my-bucket/labels/ \
      --backend ray
"""


def add_commands(subparsers) -> None:
    label = subparsers.add_parser(
        "label", help="label a large corpus into resumable Parquet shards (local or on Ray)",
        description="Label every image of a manifest with a fitted run, writing Parquet shards as they finish.",
        epilog=LABEL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    label.add_argument("run", help="run directory written by finetune")
    label.add_argument("manifest", help="CSV/Parquet table of image paths or s3:// URIs (local or s3://), or a folder")
    label.add_argument("--out", required=True, help="labelling directory, or s3://bucket/prefix (resumable)")
    label.add_argument("--backend", default="local", choices=["local", "ray"],
                       help="'local' (this machine, the default) or 'ray' (a Ray cluster)")
    label.add_argument("--path", help="path column of the manifest (default: path, file, filename, image…)")
    label.add_argument("--image-id", help="column to use as image_id (default: image_id, else the path)")
    label.add_argument("--shard-size", type=int, default=1000, help="images per output shard (default: 1000)")
    label.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    label.add_argument("--device", default="auto", help=OPTION_HELP["device"])
    label.add_argument("--precision", default="auto", help=OPTION_HELP["precision"])
    label.add_argument("--num-workers", type=int, help="threads decoding images per process")
    label.add_argument("--replicas", type=int, help="Ray: model replicas (default: one per GPU, or one per core)")
    label.add_argument("--gpus-per-replica", type=float, help="Ray: GPUs per replica (default: 1 when there are GPUs)")
    label.add_argument("--cpus-per-replica", type=float,
                       help="CPU cores (torch threads) per model replica (default: 1 on Ray; all cores locally)")
    label.add_argument("--ray-address", help="Ray: the cluster to join (default: RAY_ADDRESS, else a new local one)")
    label.add_argument("--num-cpus", type=int, help="Ray: CPUs of a cluster started here (default: all)")
    label.add_argument("--max-shards", type=int, help="label at most this many unfinished shards (a timed trial run)")
    label.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph) for s3:// images and output; "
                       "default: AWS or AWS_ENDPOINT_URL_S3")
    label.add_argument("--allow-unfinished", action="store_true",
                       help="label with a run that did not finish training (refused by default)")
    label.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    label.add_argument("--calibrate", action="store_true",
                       help="apply the temperature fitted on the validation split (calibrated probabilities)")
    label.add_argument("--threshold", type=float,
                       help="binary tasks: positive when the positive class's probability is at least this")
    label.set_defaults(handler=run_label)


def run_label(args) -> int:
    from ..infer.labelling import label_corpus

    if args.backend == "ray" and (args.ray_address or args.num_cpus):
        from ..scale.cluster import connect

        connect(args.ray_address, num_cpus=args.num_cpus)
    result = label_corpus(
        args.run, args.manifest, out=args.out, backend=args.backend, shard_size=args.shard_size,
        batch_size=args.batch_size, device=args.device, precision=args.precision, num_workers=args.num_workers,
        replicas=args.replicas, gpus_per_replica=args.gpus_per_replica, cpus_per_replica=args.cpus_per_replica,
        max_shards=args.max_shards, path=args.path, image_id=args.image_id, endpoint_url=args.endpoint_url,
        allow_unfinished=args.allow_unfinished, progress=not args.no_progress, calibrate=args.calibrate,
        threshold=args.threshold,
    )
    print(result)
    return 0
