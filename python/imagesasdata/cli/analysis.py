"""Verbs from predicted labels to defensible estimates: gold-sample, plan-gold, gold-metrics, calibration,
calibrate-corpus, thresholds, prevalence and glm."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ImagesAsDataError
from .common import print_table

GOLD_EPILOG = """
LABELS is a labelling directory (label --out) or a predictions table (predict --out). The sample is written to OUT:
coding_sheet_wave1.csv (image_id, path and an empty `code` column for the annotators), coding_sheet_wave1.html (the
images to look at), sample.parquet (the design: each image's stratum and inclusion probability) and gold.json.
Predictions are never shown on the sheets. Run again with --top-up to draw more images into the same strata without
redrawing the ones already coded: a new coding_sheet_wave2.csv is written and the probabilities are updated.

examples:
  imagesasdata gold-sample labels/ --size 300 --out gold/
  imagesasdata gold-sample labels/ --size 200 --strata predicted --allocation equal --out gold/
  imagesasdata gold-sample labels/ --size 100 --out gold/ --top-up
  imagesasdata gold-metrics gold/
"""

PLAN_EPILOG = """
The plan is a forecast from the error rates it was given: decide the size once, draw it (gold-sample --top-up
after a first wave), and report what the coded sample gives. See the README's "Planning a gold sample".

examples:
  imagesasdata plan-gold labels/ --validation runs/protest --target-width 0.04 --target-class protest
  imagesasdata plan-gold labels/ --gold gold/ --target-width 0.04 --strata account
  imagesasdata plan-gold corpus.parquet --gold gold/ --formula "retweets ~ protest + followers" \\
      --predicted protest --target-width 0.2
"""

CALIBRATE_EPILOG = """
A run's temperature is fitted on its validation split, so its probabilities are calibrated to that split -- and, when
the split was balanced, to its class shares, not the corpus's. This writes the corpus's probabilities calibrated to
the corpus: a temperature fitted on the coded gold sample (design-weighted: each image counts 1/inclusion
probability) and/or the class shares moved from training's to the corpus's (Bayes' rule; the shares estimated from
the gold sample or by EM from the corpus itself). The output file records what was done; glm and prevalence print it
as a note. Use a .parquet output to keep that record (a .csv cannot hold it).

examples:
  imagesasdata calibrate-corpus labels/ --gold gold/ --temperature gold --out calibrated.parquet
  imagesasdata calibrate-corpus labels/ --prior-shift em --out calibrated.parquet
  imagesasdata prevalence calibrated.parquet gold/
"""

GLM_EPILOG = """
CORPUS is one row per image with an image_id and every variable of the formula (the predicted variables hold the
model's predictions); GOLD is the coded sample (a coding-sheet folder, or a table with image_id, the true values
under the same names and inclusion_probability). The `label` of a coding sheet is the truth of a corpus column
called `predicted`, so predict() output works as is.

The formula never runs code: it may use column names (Q("odd name") for others), numbers, text and True/False in
comparisons, arithmetic (+ - * / // % **), comparisons (== != < <= > >=), and/or/not, the functions log, log1p,
log2, log10, exp, sqrt, abs, I() for arithmetic, C() for a categorical variable (C(x, Treatment('a')),
C(x, levels=[...])), interactions (a:b, a*b) and -1 or +0 to drop the intercept. Anything else (attribute access,
subscripts, other functions, lambda) is refused before any data is read. Powers are I(x**2), not ^.

examples:
  imagesasdata glm corpus.csv gold/ --formula "retweets ~ I(predicted == 'protest') + log(followers)" \\
      --predicted predicted --family poisson
  imagesasdata prevalence labels.parquet gold/ --by day
"""


def add_commands(subparsers) -> None:
    gold = subparsers.add_parser(
        "gold-sample", help="draw a gold-standard sample from a labelled corpus and write coding sheets",
        description="Draw a random (simple or stratified, seeded) sample of a labelled corpus for people to code, "
                    "with each image's inclusion probability, and write the coding sheets.",
        epilog=GOLD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gold.add_argument("labels", help="labelling directory (label --out) or predictions table (predict --out)")
    gold.add_argument("--size", type=int, required=True, help="images to draw (with --top-up: how many more)")
    gold.add_argument("--out", required=True, help="folder for the coding sheets and the sample's design")
    gold.add_argument("--strata", help="stratify by this column, e.g. predicted (default: a simple random sample)")
    gold.add_argument("--allocation", default="proportional", choices=["proportional", "equal"],
                      help="images per stratum: in proportion to its size, or equal (default: proportional)")
    gold.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    gold.add_argument("--classes", help="comma-separated codes annotators may use (default: the model's classes)")
    gold.add_argument("--top-up", action="store_true", help="draw more images into the sample already in --out")
    gold.set_defaults(handler=run_gold_sample)

    plan = subparsers.add_parser(
        "plan-gold", help="how many images to code, and from which strata, for a target interval width",
        description="Plan a gold sample: for each design (simple random, proportional, Neyman, equal by stratum) the "
                    "smallest size whose expected interval width reaches --target-width, side by side. The error "
                    "rates come from a run's validation confusion matrix (--validation) or a coded first wave "
                    "(--gold); with --formula, the plan is for a coefficient of a corrected glm fitted on the first "
                    "wave.", epilog=PLAN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("labels", help="labelling directory (label --out) or predictions table (the corpus)")
    plan.add_argument("--target-width", type=float, required=True,
                      help="the interval width to reach (upper minus lower), e.g. 0.04 for a share within ±2 points")
    source = plan.add_mutually_exclusive_group(required=True)
    source.add_argument("--validation", help="a run directory (its validation confusion matrix) or a confusion table")
    source.add_argument("--gold", help="a coded first wave: coding-sheet folder or coded table")
    plan.add_argument("--target-class", help="the class whose share is planned for (default: the positive class of "
                                             "two, else the rarest predicted class)")
    plan.add_argument("--strata", default="predicted",
                      help="predicted (default), a corpus column, or none (simple random sampling only)")
    plan.add_argument("--formula", help="plan for a coefficient of this model instead (needs --gold; see glm)")
    plan.add_argument("--predicted", action="append", help="with --formula: a predicted variable (repeat)")
    plan.add_argument("--family", default="gaussian", choices=["gaussian", "binomial", "poisson"],
                      help="with --formula: the GLM family (default: gaussian)")
    plan.add_argument("--term", help="with --formula: the coefficient (default: the first that is not the intercept)")
    plan.add_argument("--split", default="val", help="with --validation: the run's split to read errors from")
    plan.add_argument("--design", choices=["srs"], help="srs: --gold is a simple random sample without "
                                                        "inclusion_probability")
    plan.add_argument("--confidence", type=float, default=0.95, help="interval level (default: 0.95)")
    plan.add_argument("--out", help="write each design's allocation to FILE.parquet or FILE.csv")
    plan.set_defaults(handler=run_plan_gold)

    metrics = subparsers.add_parser(
        "gold-metrics", help="the classifier's corpus-level accuracy, precision, recall and F1 on a coded gold sample",
        description="Read coded sheets back (checked) and measure the classifier on them, design-weighted when the "
                    "sample was stratified, with 95% intervals.",
    )
    metrics.add_argument("coded", help="the coding-sheet folder, or a coded CSV/Parquet (then give --sample)")
    metrics.add_argument("--sample", help="the sample (folder or table) when CODED is one file")
    metrics.add_argument("--classes", help="comma-separated codes allowed (default: those recorded with the sample)")
    metrics.add_argument("--positive-class", help="binary tasks: the class whose precision, recall and F1 are reported")
    metrics.add_argument("--missing", default="error", choices=["error", "drop"],
                         help="sampled images without a code: an error (default), or left out with a warning")
    metrics.add_argument("--confidence", type=float, default=0.95, help="interval level (default: 0.95)")
    metrics.add_argument("--design", choices=["srs"],
                         help="srs: the gold table is a simple random sample (needed when it has no "
                              "inclusion_probability column)")
    metrics.add_argument("--out", help="also write the gold table (image_id, label, predicted, design) to FILE")
    metrics.set_defaults(handler=run_gold_metrics)

    calibration = subparsers.add_parser(
        "calibration", help="a run's temperature scaling: ECE and Brier score before and after, reliability table",
        description="Show the temperature fitted on the validation split when the run was trained, its ECE and Brier "
                    "score before and after, and the reliability diagram's table.",
    )
    calibration.add_argument("run", help="run directory written by finetune")
    calibration.add_argument("--split", default="val", help="whose predictions: val (default) or test")
    calibration.add_argument("--bins", type=int, default=10, help="equal-width probability bins (default: 10)")
    calibration.add_argument("--out", help="write the reliability table to FILE.parquet or FILE.csv")
    calibration.set_defaults(handler=run_calibration)

    corpus_calibration = subparsers.add_parser(
        "calibrate-corpus", help="calibrate a labelled corpus's probabilities to the corpus (gold temperature, prior shift)",
        description="Recalibrate a labelled corpus's probabilities to the corpus rather than to the run's validation "
                    "split: a temperature fitted on the gold sample and/or a prior-shift correction.",
        epilog=CALIBRATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    corpus_calibration.add_argument("labels", help="labelling directory (label --out) or predictions table")
    corpus_calibration.add_argument("--out", required=True,
                                    help="write the calibrated corpus to FILE.parquet (keeps the record) or FILE.csv")
    corpus_calibration.add_argument("--temperature", choices=["run", "gold"],
                                    help="run: the run's own temperature (validation split); gold: fitted on the gold "
                                         "sample, design-weighted (needs --gold)")
    corpus_calibration.add_argument("--prior-shift", dest="prior_shift",
                                    help="gold (class shares estimated from the gold sample; needs --gold), em "
                                         "(estimated from the corpus's probabilities), or shares as class=share,...")
    corpus_calibration.add_argument("--gold", help="the coded gold sample: a coding-sheet folder or a table")
    corpus_calibration.add_argument("--run", help="the run the labels were made with (default: the labelling's)")
    corpus_calibration.add_argument("--design", choices=["srs"],
                                    help="srs: the gold table has no inclusion probabilities and is a simple random "
                                         "sample of the corpus")
    corpus_calibration.set_defaults(handler=run_calibrate_corpus)

    thresholds = subparsers.add_parser(
        "thresholds", help="binary tasks: precision-recall and ROC curves, and a threshold for a target recall",
        description="Precision-recall and ROC curves of a binary run's validation predictions; with --recall or "
                    "--precision, the threshold that reaches it and the metrics there (the book's section 4.5: favour "
                    "recall when missing a positive costs more). Use the threshold with predict/label --threshold.",
    )
    thresholds.add_argument("run", help="run directory written by finetune (a binary task)")
    thresholds.add_argument("--split", default="val", help="whose predictions: val (default) or test")
    target = thresholds.add_mutually_exclusive_group()
    target.add_argument("--recall", type=float, help="choose the highest threshold with at least this recall")
    target.add_argument("--precision", type=float, help="choose the lowest threshold with at least this precision")
    thresholds.add_argument("--calibrate", action="store_true",
                            help="on calibrated probabilities (then pass --calibrate to predict/label as well)")
    thresholds.add_argument("--out", help="write the curves to FILE.parquet or FILE.csv")
    thresholds.set_defaults(handler=run_thresholds)

    prevalence = subparsers.add_parser(
        "prevalence", help="the share of each class in the corpus, naive, gold-only and corrected, with intervals",
        description="Estimate each class's share of the corpus (overall or by a group) from predictions on the "
                    "corpus and codes on a gold sample.", epilog=GLM_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prevalence.add_argument("corpus", help="labelling directory or table: image_id, predicted (and metadata)")
    prevalence.add_argument("gold", help="coding-sheet folder, or a coded table with image_id and label")
    prevalence.add_argument("--by", help="estimate within each group of this corpus column (a day, an account)")
    prevalence.add_argument("--use", default="class", choices=["class", "probability"],
                            help="the predicted class (default) or the class probability as the prediction")
    prevalence.add_argument("--strata", help="the corpus column the gold sample was stratified by (default: the one "
                                             "recorded with the sample)")
    _estimation_options(prevalence)
    prevalence.set_defaults(handler=run_prevalence)

    glm = subparsers.add_parser(
        "glm", help="a regression with predicted variables, corrected with a gold sample",
        description="Fit a gaussian, binomial or poisson GLM whose outcome or regressors are predicted from images: "
                    "naive, gold-only and corrected (PPI++ via ppi-python, or the DSL M-estimator), with intervals.",
        epilog=GLM_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    glm.add_argument("corpus", help="table (or labelling directory): image_id and the formula's variables")
    glm.add_argument("gold", help="coding-sheet folder, or a table: image_id, true values, inclusion_probability")
    glm.add_argument("--formula", required=True,
                     help="outcome ~ regressors, e.g. \"retweets ~ protest + log(followers)\"; read with patsy's "
                          "syntax and checked against an allow-list, so it never runs code (see below)")
    glm.add_argument("--predicted", action="append", required=True,
                     help="a predicted variable of the formula (repeat for several)")
    glm.add_argument("--family", default="gaussian", choices=["gaussian", "binomial", "poisson"],
                     help="gaussian (default), binomial (logit) or poisson (log)")
    _estimation_options(glm)
    glm.set_defaults(handler=run_glm)


def _estimation_options(parser) -> None:
    parser.add_argument("--method", default="auto", choices=["auto", "ppi", "dsl"],
                        help="corrected estimator: auto (the engine's default: see the README), dsl, or ppi "
                             "(ppi-python; a simple random gold sample)")
    parser.add_argument("--lam", type=float, help="power-tuning lambda in [0, 1] (default: tuned)")
    parser.add_argument("--design", choices=["srs"],
                        help="srs: GOLD is a simple random sample of the corpus (needed when it has no "
                             "inclusion_probability column)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (default: 0.95)")
    parser.add_argument("--classes", help="comma-separated classes (default: those recorded with the sample)")
    parser.add_argument("--out", help="write the estimates to FILE.parquet or FILE.csv")


def _classes(text):
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _corpus(source):
    from ..analysis.gold import corpus_table

    return corpus_table(source)[0]


def _gold(source, classes=None):
    from ..analysis.gold import read_coding_sheet
    from ..io.tables import to_arrow

    if Path(source).is_dir():
        return read_coding_sheet(source, classes=classes)
    return to_arrow(source)


def run_gold_sample(args) -> int:
    from ..analysis.gold import SAMPLE_FILE, draw_gold_sample, write_coding_sheet

    out = Path(args.out)
    exists = (out / SAMPLE_FILE).exists()
    if exists and not args.top_up:
        raise ImagesAsDataError(f"{out} already holds a gold sample; pass --top-up to draw more images into it, or "
                                "choose a new --out", what="file", path=out)
    if args.top_up and not exists:
        raise ImagesAsDataError(f"--top-up: {out} holds no gold sample yet; drop --top-up to draw the first one",
                                what="file", path=out)
    sample = draw_gold_sample(args.labels, args.size, strata=args.strata, allocation=args.allocation, seed=args.seed,
                              previous=out if args.top_up else None)
    folder = write_coding_sheet(sample, out, classes=_classes(args.classes))
    wave = max(sample["wave"].to_pylist())
    new = sum(1 for w in sample["wave"].to_pylist() if w == wave)
    print(f"gold sample: {sample.num_rows} images in all, {new} new in wave {wave} → {folder}")
    print(f"code them in {folder / f'coding_sheet_wave{wave}.csv'} (look at coding_sheet_wave{wave}.html), then run "
          f"imagesasdata gold-metrics {folder}")
    strata = {}
    for s, N, n, p in zip(sample["stratum"].to_pylist(), sample["stratum_size"].to_pylist(),
                          sample["stratum_sample_size"].to_pylist(), sample["inclusion_probability"].to_pylist()):
        strata[s] = (N, n, p)
    import pyarrow as pa

    print_table(pa.table({"stratum": list(strata), "corpus_images": [v[0] for v in strata.values()],
                          "sampled": [v[1] for v in strata.values()],
                          "inclusion_probability": [v[2] for v in strata.values()]}), digits=4)
    return 0


def run_plan_gold(args) -> int:
    from ..analysis.planner import plan_gold_sample
    from ..io.tables import to_arrow, write_table

    strata = None if args.strata in ("none", "") else args.strata
    if args.formula:
        from ..analysis.estimators import corrected_glm

        if not args.gold or not args.predicted:
            raise ImagesAsDataError("--formula plans for a coefficient from a first wave: give --gold and --predicted",
                                    what="option", option="gold")
        corpus = _corpus(args.labels) if Path(args.labels).is_dir() else to_arrow(args.labels)
        fit = corrected_glm(args.formula, corpus, _gold(args.gold), predicted=args.predicted, family=args.family,
                            confidence=args.confidence, design=args.design)
        plan = plan_gold_sample(target_width=args.target_width, fit=fit, term=args.term, confidence=args.confidence)
    else:
        plan = plan_gold_sample(args.labels, target_width=args.target_width,
                                gold=_gold(args.gold) if args.gold else None, validation=args.validation,
                                target_class=args.target_class, strata=strata, confidence=args.confidence,
                                split=args.split, design=args.design)
    print(plan)
    if args.out:
        write_table(plan.allocations, args.out)
    return 0


def run_gold_metrics(args) -> int:
    import pyarrow.compute as pc

    from ..analysis.gold import gold_metrics, read_coding_sheet
    from ..io.tables import write_table

    gold = read_coding_sheet(args.coded, sample=args.sample, classes=_classes(args.classes), missing=args.missing)
    metrics = gold_metrics(gold, positive_class=args.positive_class, confidence=args.confidence, design=args.design)
    weighted = "inclusion_probability" in gold.column_names and len(set(gold["inclusion_probability"].to_pylist())) > 1
    print(f"{gold.num_rows} coded images" + (" (design-weighted: estimates are for the whole corpus)" if weighted else ""))
    print_table(metrics.filter(pc.not_equal(metrics["estimator"], "per_class")))
    if args.out:
        write_table(gold, args.out)
    return 0


def run_calibration(args) -> int:
    from ..analysis.calibration import calibration_table
    from ..infer.run import load_run
    from ..io.tables import write_table

    run = load_run(args.run)
    entry = run.description.get("calibration")
    if not entry:
        raise ImagesAsDataError(f"{run.path} was trained before calibration existed; retrain it to fit a temperature",
                                what="file", path=run.path)
    print(f"temperature {entry['temperature']:.4g} ({entry['status']}; fitted on {entry['images']} {entry['fitted_on']} "
          "images)")
    from ..analysis.calibration import run_calibration_metrics

    print_table(run_calibration_metrics(run).select(["split", "metric", "estimator", "estimate", "lower", "upper", "n"]))
    table = calibration_table(run, split=args.split, bins=args.bins)
    print()
    print_table(table.drop_columns(["split", "temperature"]))
    if args.out:
        write_table(table, args.out)
    return 0


def _prior_shift(text):
    """--prior-shift: gold, em, or class=share,... (the shares themselves)."""
    if text is None or text in ("gold", "em"):
        return text
    shares = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            raise ImagesAsDataError(f"--prior-shift {text!r}: give gold, em, or shares as class=share,... "
                                    "(e.g. protest=0.05,other=0.95)", what="option", option="prior_shift",
                                    value=text, choices=["gold", "em"]) from None
    return shares


def run_calibrate_corpus(args) -> int:
    from ..analysis.calibration import calibrate_to_corpus, calibration_note, calibration_record
    from ..io.tables import write_table

    if args.temperature is None and args.prior_shift is None:
        raise ImagesAsDataError("say what to do: --temperature run|gold, --prior-shift gold|em|class=share,..., or "
                                "both", what="option", option="temperature", choices=["run", "gold"])
    table = calibrate_to_corpus(args.labels, run=args.run,
                                gold=_gold(args.gold) if args.gold else None, temperature=args.temperature,
                                prior_shift=_prior_shift(args.prior_shift), design=args.design)
    print(calibration_note(calibration_record(table)))
    write_table(table, args.out)
    print(f"wrote {table.num_rows:,} images to {args.out}")
    return 0


def run_thresholds(args) -> int:
    from ..analysis.thresholds import average_precision, choose_run_threshold, roc_auc, run_threshold_curves
    from ..infer.run import load_run
    from ..io.tables import write_table

    run = load_run(args.run)
    curves = run_threshold_curves(run, split=args.split, calibrate=args.calibrate)
    print(f"{args.split}: ROC AUC {roc_auc(curves):.3f}, average precision {average_precision(curves):.3f}")
    if args.recall is not None or args.precision is not None:
        print(choose_run_threshold(run, recall=args.recall, precision=args.precision, split=args.split,
                                   calibrate=args.calibrate))
    print()
    print_table(curves, max_rows=25)
    if args.out:
        write_table(curves, args.out)
    return 0


def run_prevalence(args) -> int:
    from ..analysis.estimators import corrected_prevalence
    from ..io.tables import write_table

    classes = _classes(args.classes)
    table = corrected_prevalence(_corpus(args.corpus), _gold(args.gold, classes), classes=classes, by=args.by,
                                 use=args.use, method=args.method, lam=args.lam, confidence=args.confidence,
                                 design=args.design, strata=args.strata)
    print_table(table, max_rows=60)
    if args.out:
        write_table(table, args.out)
    return 0


def run_glm(args) -> int:
    from ..analysis.estimators import corrected_glm
    from ..io.tables import to_arrow, write_table

    corpus = _corpus(args.corpus) if Path(args.corpus).is_dir() else to_arrow(args.corpus)
    fit = corrected_glm(args.formula, corpus, _gold(args.gold, _classes(args.classes)), predicted=args.predicted,
                        family=args.family, method=args.method, lam=args.lam, confidence=args.confidence,
                        design=args.design)
    print(fit)
    if args.out:
        write_table(fit.coefficients, args.out)
    return 0
