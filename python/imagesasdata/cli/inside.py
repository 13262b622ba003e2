"""Verbs for looking inside models and corpora: heatmaps, heatmap-layers, subgroups, embed, embedding-map, clusters,
neighbours, select (which images to label next) and add-coded (a coded sheet into the training table)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ImagesAsDataError
from ..train.config import OPTION_HELP
from .common import print_table

INSIDE_EPILOG = """
examples:
  imagesasdata heatmaps runs/faces new_images/ --out heatmaps/ --method gradcam
  imagesasdata heatmaps runs/faces --top-losses 16 --out top-losses/
  imagesasdata subgroups runs/faces --metadata people.csv --group gender --split val
  imagesasdata embed corpus/ --out embeddings.parquet --cache embeddings-cache/
  imagesasdata embedding-map embeddings.parquet --out map.csv --method umap
  imagesasdata clusters embeddings.parquet --k 12 --out clusters.csv --sheets cluster-sheets/
  imagesasdata select runs/faces pool/ --n 20 --sheet to-code.csv
  imagesasdata add-coded training.csv to-code.csv --run runs/faces --out training-2.csv
"""


def add_commands(subparsers) -> None:
    heat = subparsers.add_parser(
        "heatmaps", help="class-activation heatmaps of a run (Grad-CAM, Score-CAM, Ablation-CAM, …) as overlays",
        description="Where in each image the evidence for a class lies: a table (heatmaps.parquet) and overlay PNGs.",
        epilog=INSIDE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    heat.add_argument("run", help="run directory written by finetune")
    heat.add_argument("images", nargs="?", help="folder, image file or CSV/Parquet table of images (or use --top-losses)")
    heat.add_argument("--out", required=True, help="new folder for overlays/, heatmaps.parquet and heatmaps.json")
    heat.add_argument("--top-losses", type=int, metavar="N", help="the N validation images with the largest losses")
    heat.add_argument("--split", help="with --top-losses: val or test (default: both)")
    heat.add_argument("--target", default="predicted", help="'predicted', 'label' or a class name (default: predicted)")
    heat.add_argument("--method", default="gradcam", help="gradcam, gradcam++, xgradcam, layercam, hirescam, scorecam, "
                                                          "ablationcam, eigencam (default: gradcam)")
    heat.add_argument("--layer", help="module to read the map from (see heatmap-layers; default: the last feature map)")
    heat.add_argument("--heatmap-size", type=int, default=56, help="side of the heatmap kept in the table (default: 56)")
    heat.add_argument("--alpha", type=float, default=0.5, help="opacity of the heatmap in the overlays (default: 0.5)")
    heat.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    heat.add_argument("--device", default="auto", help=OPTION_HELP["device"])
    heat.add_argument("--num-workers", type=int, help="threads decoding images")
    heat.add_argument("--overwrite", action="store_true", help="replace heatmaps already in --out")
    heat.add_argument("--allow-unfinished", action="store_true", help="use a run that did not finish training")
    heat.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    heat.set_defaults(handler=run_heatmaps)

    layers = subparsers.add_parser("heatmap-layers", help="the layers of a run's network a heatmap can be read from")
    layers.add_argument("run", help="run directory written by finetune")
    layers.set_defaults(handler=run_heatmap_layers)

    groups = subparsers.add_parser(
        "subgroups", help="metrics by subgroup (gender, skin tone, …) with intervals, and the largest gap's test",
        epilog=INSIDE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups.add_argument("predictions", help="a run directory (its validation/test predictions) or a CSV/Parquet table "
                                            "with label and predicted columns")
    groups.add_argument("--group", required=True, action="append", help="metadata column to compare groups by "
                                                                       "(repeat for intersections)")
    groups.add_argument("--metadata", help="CSV/Parquet table with the --by column and the group column(s)")
    groups.add_argument("--by", default="image_id", help="column joining predictions and metadata (default: image_id)")
    groups.add_argument("--split", help="keep only this split of a run's predictions (val or test)")
    groups.add_argument("--truth", default="label", help="column of true labels (default: label)")
    groups.add_argument("--predicted", default="predicted", help="column of predictions (default: predicted)")
    groups.add_argument("--positive-class", help="binary tasks: the class whose precision/recall/F1 are reported")
    groups.add_argument("--confidence", type=float, default=0.95, help="interval level (default: 0.95)")
    groups.add_argument("--interval-method", default="wilson", choices=["wilson", "exact"],
                        help="interval of accuracy, precision and recall (default: wilson; exact: Clopper-Pearson)")
    groups.add_argument("--permutations", type=int, default=2000, help="shuffles for the gap test (default: 2000)")
    groups.add_argument("--min-size", type=int, default=5, help="smallest group in the gap test (default: 5)")
    groups.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the permutations")
    groups.add_argument("--out", help="write the per-group metrics here (CSV or Parquet)")
    groups.add_argument("--gaps-out", help="write the gaps here (CSV or Parquet)")
    groups.set_defaults(handler=run_subgroups)

    embed = subparsers.add_parser(
        "embed", help="penultimate-layer features (embeddings) of images, cached by file hash",
        epilog=INSIDE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    embed.add_argument("images", nargs="+", help="folder, CSV/Parquet table of images, or image files")
    embed.add_argument("--out", required=True, help="Parquet file (or CSV with --wide)")
    embed.add_argument("--run", help="run directory (default: the offline ImageNet network)")
    embed.add_argument("--architecture", default="efficientnet_lite0", help="ImageNet network without --run")
    embed.add_argument("--image-size", type=int, default=224, help="image size without --run (default: 224)")
    embed.add_argument("--cache", help="folder keeping embeddings by file hash for later calls")
    embed.add_argument("--wide", action="store_true", help="one column per dimension (dim_0001, …) instead of a vector")
    embed.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    embed.add_argument("--device", default="auto", help=OPTION_HELP["device"])
    embed.add_argument("--num-workers", type=int, help="threads decoding images")
    embed.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    embed.set_defaults(handler=run_embed)

    mapping = subparsers.add_parser("embedding-map", help="a 2-D map of images from their embeddings (PCA or UMAP)")
    mapping.add_argument("embeddings", help="Parquet file written by embed")
    mapping.add_argument("--out", required=True, help="CSV or Parquet file: image_id, path, x, y")
    mapping.add_argument("--method", default="pca", choices=["pca", "umap"], help="pca (default) or umap")
    mapping.add_argument("--seed", type=int, default=0, help="UMAP's seed")
    mapping.set_defaults(handler=run_embedding_map)

    clusters = subparsers.add_parser("clusters", help="k-means clusters of images from their embeddings, with "
                                                      "a contact sheet per cluster")
    clusters.add_argument("embeddings", help="Parquet file written by embed")
    clusters.add_argument("--k", type=int, required=True, help="number of clusters")
    clusters.add_argument("--out", required=True, help="CSV or Parquet file: image_id, path, cluster, rank, …")
    clusters.add_argument("--sheets", help="new folder for one contact sheet (PNG) per cluster")
    clusters.add_argument("--seed", type=int, default=0, help="k-means seed")
    clusters.set_defaults(handler=run_clusters)

    neighbours = subparsers.add_parser("neighbours", help="the most similar images of each image (cosine similarity)")
    neighbours.add_argument("embeddings", help="Parquet file written by embed")
    neighbours.add_argument("--image", action="append", help="image id to find neighbours of (repeat; default: all)")
    neighbours.add_argument("--k", type=int, default=5, help="neighbours per image (default: 5)")
    neighbours.add_argument("--out", help="CSV or Parquet file (default: print)")
    neighbours.set_defaults(handler=run_neighbours)

    select = subparsers.add_parser(
        "select", help="which images of a pool to label next (uncertainty + diversity), as a sheet to code",
        epilog=INSIDE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    select.add_argument("run", help="run directory written by finetune")
    select.add_argument("pool", help="folder or CSV/Parquet table of unlabelled images")
    select.add_argument("--n", type=int, default=20, help="images to select (default: 20)")
    select.add_argument("--sheet", required=True, help="sheet to write (CSV or Parquet: image_id, path, code, note)")
    select.add_argument("--strategy", default="uncertainty+diversity",
                        help="uncertainty+diversity (default), uncertainty, diversity or random")
    select.add_argument("--uncertainty", default="entropy", help="entropy (default), margin or least_confidence")
    select.add_argument("--candidates", type=int, help="most uncertain images to choose from (default: 10 × n)")
    select.add_argument("--exclude", help="CSV/Parquet table of images already labelled (path or image_id)")
    select.add_argument("--seed", type=int, default=0, help="seed of k-means and of random selection")
    select.add_argument("--device", default="auto", help=OPTION_HELP["device"])
    select.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    select.set_defaults(handler=run_select)

    coded = subparsers.add_parser("add-coded", help="add a coded sheet's images to a training table")
    coded.add_argument("training", help="the training images so far (folder or CSV/Parquet table)")
    coded.add_argument("sheet", help="the sheet written by select, with its code column filled in")
    coded.add_argument("--out", required=True, help="the new training table (CSV or Parquet)")
    coded.add_argument("--run", help="run directory whose classes the labels must be among")
    coded.set_defaults(handler=run_add_coded)


def run_heatmaps(args) -> int:
    from ..infer.heatmaps import heatmaps, top_loss_heatmaps

    options = dict(target=args.target, method=args.method, layer=args.layer, out=args.out, overwrite=args.overwrite,
                   heatmap_size=args.heatmap_size, alpha=args.alpha, batch_size=args.batch_size, device=args.device,
                   num_workers=args.num_workers, progress=not args.no_progress,
                   allow_unfinished=args.allow_unfinished)
    if args.top_losses is not None:
        if args.images:
            raise ImagesAsDataError("give IMAGES or --top-losses, not both")
        table = top_loss_heatmaps(args.run, args.top_losses, split=args.split, **options)
    elif args.images:
        table = heatmaps(args.run, args.images, **options)
    else:
        raise ImagesAsDataError("give the images (a folder or table) or --top-losses N")
    print_table(table.drop_columns(["heatmap", "path", "overlay"]), max_rows=20)
    print(f"{table.num_rows} heatmaps in {Path(args.out).resolve()}")
    return 0


def run_heatmap_layers(args) -> int:
    from ..infer.heatmaps import heatmap_layers

    print_table(heatmap_layers(args.run), max_rows=1000)
    return 0


def run_subgroups(args) -> int:
    import pyarrow.compute as pc

    from ..io.tables import to_arrow, write_table
    from ..measure.subgroups import subgroup_metrics
    from ..runs import RUN_DESCRIPTION, as_run_directory

    classes = None
    if (Path(args.predictions) / RUN_DESCRIPTION).exists():
        run = as_run_directory(args.predictions)
        predictions, classes = run.predictions, run.classes
    else:
        predictions = to_arrow(args.predictions)
    if args.split:
        if "split" not in predictions.column_names:
            raise ImagesAsDataError("--split: these predictions have no split column")
        predictions = predictions.filter(pc.equal(predictions["split"], args.split))
    audit = subgroup_metrics(predictions, args.metadata, args.group, by=args.by, truth=args.truth,
                             predicted=args.predicted, classes=classes, positive_class=args.positive_class,
                             confidence=args.confidence, interval_method=args.interval_method,
                             permutations=args.permutations, min_size=args.min_size, seed=args.seed)
    print(audit.summary())
    if args.out:
        write_table(audit.metrics, args.out)
    if args.gaps_out:
        write_table(audit.gaps, args.gaps_out)
    return 0


def run_embed(args) -> int:
    from ..explore.vectors import embeddings_wide
    from ..infer.embeddings import image_embeddings
    from ..io.tables import write_table

    images = args.images[0] if len(args.images) == 1 else args.images
    table = image_embeddings(images, args.run, architecture=args.architecture, image_size=args.image_size,
                             cache=args.cache, batch_size=args.batch_size, device=args.device,
                             num_workers=args.num_workers, progress=not args.no_progress)
    unreadable = table.num_rows - table["error"].null_count
    write_table(embeddings_wide(table.filter(table["error"].is_null())) if args.wide else table, args.out)
    print(f"{table.num_rows} images, {unreadable} unreadable, {int(sum(table['cached'].to_pylist()))} "
          f"from the cache -> {args.out}")
    return 0


def run_embedding_map(args) -> int:
    from ..explore.maps import embedding_map
    from ..io.tables import write_table

    write_table(embedding_map(args.embeddings, args.method, seed=args.seed), args.out)
    print(f"map ({args.method}) -> {args.out}")
    return 0


def run_clusters(args) -> int:
    from ..explore.maps import embedding_clusters
    from ..explore.sheets import cluster_sheets
    from ..io.tables import write_table

    clusters = embedding_clusters(args.embeddings, args.k, seed=args.seed)
    write_table(clusters, args.out)
    if args.sheets:
        cluster_sheets(clusters, args.sheets)
    counts = clusters.group_by("cluster").aggregate([("image_id", "count")]).sort_by("cluster")
    print_table(counts.rename_columns(["cluster", "images"]), max_rows=100)
    return 0


def run_neighbours(args) -> int:
    from ..explore.maps import nearest_images
    from ..io.tables import write_table

    table = nearest_images(args.embeddings, args.image, k=args.k)
    if args.out:
        write_table(table, args.out)
    else:
        print_table(table.drop_columns(["neighbour_path"]), max_rows=200)
    return 0


def run_select(args) -> int:
    from ..infer.selection import select_images
    from ..prepare.selection_sheets import write_selection_sheet
    from ..runs import as_run_directory

    selection = select_images(args.run, args.pool, args.n, strategy=args.strategy, uncertainty=args.uncertainty,
                              candidates=args.candidates, exclude=args.exclude, seed=args.seed, device=args.device,
                              progress=not args.no_progress)
    write_selection_sheet(selection, args.sheet, classes=as_run_directory(args.run).classes)
    print_table(selection.select(["rank", "image_id", "predicted", "probability", "uncertainty"]), max_rows=50)
    print(f"sheet to code -> {args.sheet} (fill in the code column, then: imagesasdata add-coded)")
    return 0


def run_add_coded(args) -> int:
    from ..io.tables import write_table
    from ..prepare.selection_sheets import add_coded_images, read_selection_sheet
    from ..runs import as_run_directory

    classes = as_run_directory(args.run).classes if args.run else None
    table = add_coded_images(args.training, read_selection_sheet(args.sheet, classes=classes))
    write_table(table, args.out)
    print(f"{table.num_rows} labelled images -> {args.out}")
    return 0
