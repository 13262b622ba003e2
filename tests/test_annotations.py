"""Aggregation and reliability on small tables whose answers are worked out here, and Krippendorff's own
worked example."""

from __future__ import annotations

import pyarrow as pa
import pytest

from imagesasdata import ImagesAsDataError, aggregate_annotations, annotation_reliability
from imagesasdata.cli import main
from imagesasdata.io.tables import read_table, write_table


def long_table(answers: dict, column="label"):
    """{image: {annotator: answer}} → one row per image × annotator."""
    rows = [{"image_id": image, "annotator": person, column: answer}
            for image, by_person in answers.items() for person, answer in by_person.items()]
    return pa.Table.from_pylist(rows)


PROTEST = long_table({
    "a.jpg": {"ann": 1, "bob": 0, "cat": 0},   # one said protest → positive under "any"; majority says 0
    "b.jpg": {"ann": 0, "bob": 0, "cat": 0},   # nobody → negative
    "c.jpg": {"ann": 1, "bob": 1},             # two of two
    "d.jpg": {"ann": 0, "bob": 1},             # a tie for the majority
})


def test_any_is_the_books_rule():
    out = aggregate_annotations(PROTEST, method="any")
    assert out.column_names == ["image_id", "n_annotators", "label", "label_n", "label_votes"]
    assert out["image_id"].to_pylist() == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert out["label"].to_pylist() == [True, False, True, True]
    assert out["label_votes"].to_pylist() == [1, 0, 2, 1]
    assert out["n_annotators"].to_pylist() == [3, 3, 2, 2]


def test_majority_ties_are_missing():
    out = aggregate_annotations(PROTEST, method="majority")
    assert out["label"].to_pylist() == [0, 0, 1, None]
    assert out["label_agreement"].to_pylist() == pytest.approx([2 / 3, 1.0, 1.0, 0.5])


def test_words_and_named_positive_class():
    words = long_table({"x": {"p1": "Yes", "p2": "no"}, "y": {"p1": "no", "p2": None}})
    out = aggregate_annotations(words, method="any")
    assert out["label"].to_pylist() == [True, False] and out["label_n"].to_pylist() == [2, 1]
    names = long_table({"x": {"p1": "legend", "p2": "other"}, "y": {"p1": "other", "p2": "other"}})
    assert aggregate_annotations(names, positive="legend")["label"].to_pylist() == [True, False]
    with pytest.raises(ImagesAsDataError, match=r"cannot tell whether 'legend', 'other' means yes or no \(rows 1, 2, 3, 4\)"):
        aggregate_annotations(names)


def test_mean_of_scores_several_questions():
    scores = pa.table({"image_id": ["a", "a", "b", "b"], "annotator": ["p", "q", "p", "q"],
                       "anger": [6, 3, 0, 0], "fear": [1.5, None, 2, 4]})
    out = aggregate_annotations(scores, method="mean", value=["anger", "fear"], score_range=(0, 10))
    assert out["anger"].to_pylist() == [4.5, 0.0]
    assert out["fear"].to_pylist() == [1.5, 3.0]  # the missing answer is skipped, not counted as 0
    assert out["fear_n"].to_pylist() == [1, 2]


def test_bad_scores_name_the_rows():
    scores = pa.table({"image_id": ["a", "a", "b", "b"], "annotator": ["p", "q", "p", "q"],
                       "anger": ["6", "three", "0", "12"]})
    with pytest.raises(ImagesAsDataError, match=r"not a number in row 2 \(q on a: 'three'\)"):
        aggregate_annotations(scores, method="mean", value="anger", score_range=(0, 10))
    fixed = scores.set_column(2, "anger", pa.array(["6", "3", "0", "12"]))
    with pytest.raises(ImagesAsDataError, match=r"outside 0–10 in row 4 \(q on b: '12'\)"):
        aggregate_annotations(fixed, method="mean", value="anger", score_range=(0, 10))


def test_malformed_tables():
    with pytest.raises(ImagesAsDataError, match="no rows"):
        aggregate_annotations(PROTEST.slice(0, 0))
    with pytest.raises(ImagesAsDataError, match=r"rows 1 and 4 \(ann on a.jpg\)"):
        aggregate_annotations(pa.concat_tables([PROTEST.slice(0, 3), PROTEST.slice(0, 1)]))
    with pytest.raises(ImagesAsDataError, match="no annotator column 'coder'"):
        aggregate_annotations(PROTEST, annotator="coder")
    with pytest.raises(ImagesAsDataError, match="empty in rows 2"):
        aggregate_annotations(pa.table({"image_id": ["a", None], "annotator": ["p", "q"], "label": [1, 0]}))
    with pytest.raises(ImagesAsDataError, match="Did you mean 'majority'"):
        aggregate_annotations(PROTEST, method="majorty")


def test_annotations_naming_images_missing_on_disk_are_listed(orl_faces):
    table = long_table({"s1/1.pgm": {"p": 1}, "2.pgm": {"p": 0}, "s1/99.pgm": {"p": 1}})
    with pytest.warns(UserWarning, match=r"1 annotated images are not on disk: s1/99.pgm"):
        out = aggregate_annotations(table, images=orl_faces / "s1")
    rows = out.to_pylist()
    # Matched by image_id (relative to the folder given: "2.pgm"), else by file name ("s1/1.pgm" → 1.pgm).
    assert rows[0]["path"] == str((orl_faces / "s1" / "1.pgm").resolve()) and rows[0]["error"] is None
    assert rows[1]["path"] == str((orl_faces / "s1" / "2.pgm").resolve()) and rows[1]["error"] is None
    assert rows[2]["path"] is None and "not found" in rows[2]["error"]


# Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for Communication,
# University of Pennsylvania, https://repository.upenn.edu/asc_papers/43 — section C: four observers, twelve
# units, values 1–5, missing data. The paper reports alpha = 0.743 (nominal) and 0.849 (interval, section E).
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def krippendorff_table():
    rows = [{"image_id": f"unit{u + 1}", "annotator": observer, "value": v}
            for observer, values in KRIPPENDORFF_2011.items() for u, v in enumerate(values) if v is not None]
    return pa.Table.from_pylist(rows)


def test_krippendorff_alpha_matches_the_published_example():
    table = annotation_reliability(krippendorff_table(), value="value")
    got = {(r["metric"], r["level"]): r for r in table.to_pylist()}
    assert got[("krippendorff_alpha", "nominal")]["estimate"] == pytest.approx(0.743, abs=5e-4)
    assert got[("krippendorff_alpha", "interval")]["estimate"] == pytest.approx(0.849, abs=5e-4)
    # Worked by hand from the paper's coincidence matrix: unit 12 has one value and drops out, leaving 40 pairable
    # values; 8 of the 40 coincidences disagree (units 2, 6 and 8), so observed agreement = 32/40, and
    # nominal alpha = 1 − (n − 1)·8 / (n² − Σ n_c²) = 1 − 39·8 / (1600 − (9² + 13² + 10² + 5² + 3²)) = 1 − 312/1216.
    nominal = got[("krippendorff_alpha", "nominal")]
    assert nominal["estimate"] == pytest.approx(1 - 312 / 1216)
    assert got[("percent_agreement", None)]["estimate"] == pytest.approx(32 / 40)
    assert (nominal["n_units"], nominal["n_coders"], nominal["n_ratings"]) == (11, 4, 40)


def test_reliability_per_label_for_two_coders():
    # Two coders, five images, two labels. Protest: they agree on 4 of 5 → 0.8. Legend: on all 5.
    table = pa.table({"image_id": ["1", "2", "3", "4", "5"] * 2, "annotator": ["p"] * 5 + ["q"] * 5,
                      "protest": ["yes", "yes", "no", "no", "no", "yes", "no", "no", "no", "no"],
                      "legend": ["no", "yes", "no", "no", "no", "no", "yes", "no", "no", "no"]})
    out = annotation_reliability(table, value=["protest", "legend"])
    got = {(r["label"], r["metric"]): r for r in out.to_pylist()}
    assert got[("protest", "percent_agreement")]["estimate"] == pytest.approx(0.8)
    assert got[("legend", "percent_agreement")]["estimate"] == 1.0
    assert got[("legend", "krippendorff_alpha")]["estimate"] == pytest.approx(1.0)
    # Protest by hand: coincidences yes-yes 2, no-no 6, yes-no 2 (n_yes = 3, n_no = 7, n = 10):
    # alpha = 1 − (n − 1)·o_yes,no / (n_yes·n_no) = 1 − 9·1/21.
    assert got[("protest", "krippendorff_alpha")]["estimate"] == pytest.approx(1 - 9 / 21)
    assert {r["level"] for r in out.to_pylist() if r["metric"] == "krippendorff_alpha"} == {"nominal"}


def test_reliability_edge_cases():
    same = long_table({"a": {"p": 1, "q": 1}, "b": {"p": 1, "q": 1}})
    row = [r for r in annotation_reliability(same).to_pylist() if r["metric"] == "krippendorff_alpha"][0]
    assert row["estimate"] is None and "undefined" in row["note"]
    alone = long_table({"a": {"p": 1}, "b": {"q": 0}})
    assert all(r["n_units"] == 0 and r["estimate"] is None for r in annotation_reliability(alone).to_pylist())
    with pytest.raises(ImagesAsDataError, match="interval alpha needs numbers"):
        annotation_reliability(long_table({"a": {"p": "x", "q": "y"}}), level="interval")


def test_cli_aggregate_and_reliability(tmp_path, capsys):
    path = tmp_path / "annotations.csv"
    write_table(krippendorff_table(), path)
    out = tmp_path / "labels.csv"
    assert main(["aggregate", str(path), "--method", "mean", "--value", "value", "--score-range", "1", "5",
                 "--out", str(out)]) == 0
    assert read_table(out)["value"].to_pylist()[1] == pytest.approx(2.25)
    assert main(["reliability", str(path), "--value", "value", "--out", str(tmp_path / "rel.csv")]) == 0
    assert "0.743" in capsys.readouterr().out
    assert main(["aggregate", str(path), "--method", "mean", "--value", "value", "--score-range", "1", "4",
                 "--out", str(out)]) == 1
    assert "outside 1–4" in capsys.readouterr().err
