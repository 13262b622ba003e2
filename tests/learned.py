"""assert_learned(): the one check every test makes before it relies on what a fit learned.

A fine-tune's trajectory depends on the CPU's arithmetic (AVX-512, AVX2 or plain SSE kernels round differently, and
a tiny fit amplifies that), so a test whose assertions need a model that learned something must first check that
its fixture did, with a margin that holds on any x86-64 CPU, and fail naming the fixture, not the code under test.
Tests about an estimator (metrics, gold samples, corrected regressions) build their predictions as a table instead
(no fit at all). See DEVELOPERS.md, Tests.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc


def assert_learned(source, fixture: str, *, margin: float = 0.2, split: str | None = None,
                   truth: str = "label", predicted: str = "predicted") -> float:
    """Fail unless `source`'s predictions show a model that learned its task: every true class is predicted at
    least once, and balanced accuracy (the mean over true classes of the share of their images predicted right) is
    at least `margin` above chance, 1/k for k classes — what always answering one class, or guessing, scores,
    however unbalanced the images. On balanced images it is plain accuracy. Returns the balanced accuracy.

    source: a Run (its validation predictions, or those of `split`), an Evaluation or anything with a
      `predictions` table, a pyarrow Table, or (truth, predicted) lists.
    fixture: the fixture's name as the failure message should give it (e.g. "the patch_run('resnet18') fixture").
    """
    name = getattr(source, "path", None)
    truth_values, predicted_values = _pairs(source, split, truth, predicted)
    if not truth_values:
        raise AssertionError(f"{fixture}: no predictions with a true label to check whether it learned its task")
    counts = Counter(truth_values)
    right = Counter(t for t, p in zip(truth_values, predicted_values) if t == p)
    chance = 1 / len(counts)
    accuracy = sum(right[c] / counts[c] for c in counts) / len(counts)
    never = sorted(set(counts) - set(predicted_values))
    if never or accuracy < chance + margin - 1e-12:
        found = Counter(predicted_values)
        raise AssertionError(
            f"{fixture} did not learn its task on this CPU, so the test's assertions would not mean anything: "
            f"balanced accuracy {accuracy:.3f} on {len(truth_values)} images of {len(counts)} classes against "
            f"{chance:.3f} for guessing (needed: at least {chance + margin:.3f}, chance + {margin:g})"
            + (f"; it never predicts {', '.join(map(str, never))}" if never else "")
            + f"; predicted {dict(sorted(found.items()))}, true {dict(sorted(counts.items()))}"
            + (f" ({name})" if name else "")
            + ". Fix the fixture (an easier task, more epochs), not the code under test.")
    return accuracy


def _pairs(source, split, truth, predicted):
    if isinstance(source, tuple) and len(source) == 2:
        return [str(v) for v in source[0]], [str(v) for v in source[1]]
    table = source if isinstance(source, pa.Table) else getattr(source, "predictions", None)
    if table is None:
        raise TypeError(f"assert_learned() needs a Run, an Evaluation, a table or (truth, predicted), "
                        f"not {type(source).__name__}")
    if "split" in table.column_names:
        wanted = split or ("val" if "val" in table["split"].to_pylist() else None)
        if wanted:
            table = table.filter(pc.equal(table["split"], wanted))
    table = table.filter(pc.and_(pc.is_valid(table[truth]), pc.is_valid(table[predicted])))
    return [str(v) for v in table[truth].to_pylist()], [str(v) for v in table[predicted].to_pylist()]
