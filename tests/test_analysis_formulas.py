"""A formula can never run code (issue 20, item 1): patsy only parses it; every term is checked against an
allow-list and evaluated by analysis/formulas.py's interpreter, never by eval(). Hostile formulas are refused by
the Python API and the CLI alike, and the file each one tries to create never appears; the formulas the README
documents still give patsy's own design matrices.

The corpus is the ORL faces' real image ids with predictions simulated from the folder (no training)."""

import warnings

import numpy as np
import pyarrow as pa
import pytest

from cli_runner import run
from imagesasdata.analysis.estimators import corrected_glm
from imagesasdata.analysis.formulas import parse_formula
from imagesasdata.cli import main
from imagesasdata.errors import ImagesAsDataError
from imagesasdata.io.tables import write_table

# Each tries to create the file `pwned` in the working directory (or read a file, or reach an object's innards).
HOSTILE = [
    "y ~ protest + I(z + __import__('os').system('touch pwned'))",
    "y ~ protest + __import__('os').system('touch pwned')",
    "y ~ protest + I(open('pwned', 'w').write('x'))",
    "y ~ protest + I(len(open('/etc/passwd').read()))",
    "y ~ protest + I(z.__class__)",
    "y ~ protest + z.real",
    "y ~ protest + I(z.__class__.__base__.__subclasses__())",
    "y ~ protest + I((lambda: __import__('os').system('touch pwned'))())",
    "y ~ protest + I([c for c in ().__class__.__base__.__subclasses__()])",
    "y ~ protest + I(z[0])",
    "y ~ protest + I(eval(\"__import__('os').system('touch pwned')\"))",
    "y ~ protest + I(exec('open(\"pwned\", \"w\")'))",
    "y ~ protest + I(getattr(z, 'real'))",
    "y ~ protest + I(globals())",
    "y ~ protest + __builtins__",
    "y ~ protest + I(f'{z}')",
    "y ~ protest + I((w := z))",
    "y ~ protest + np.log(z)",
    "y ~ protest + C(z, __import__('os').system('touch pwned'))",
    "y ~ protest + C(z, Treatment(open('pwned', 'w')))",
    "y ~ protest + C(z, levels=__import__('os').listdir('.'))",
    "y ~ protest + Q(__import__('os').system('touch pwned'))",
    "y ~ protest + I(*z)",
    "y ~ protest + I(z if z else 0)",
]


@pytest.fixture(scope="module")
def data(orl_faces):
    """A corpus of the 400 ORL photos (ids are their real paths) and a 120-image gold sample."""
    ids = sorted(str(p.relative_to(orl_faces)) for p in orl_faces.glob("s*/*.pgm"))
    rng = np.random.default_rng(5)
    truth = np.array([int(i.split("/")[0][1:]) <= 10 for i in ids], dtype=float)  # people s1–s10: "protest"
    predicted = np.where(rng.random(len(ids)) < 0.85, truth, 1 - truth)
    z = rng.normal(size=len(ids))
    y = 1 + 0.5 * truth + 0.3 * z + rng.normal(size=len(ids))
    group = np.where(rng.random(len(ids)) < 0.4, "news", "private")
    corpus = pa.table({"image_id": ids, "y": y, "z": z, "protest": predicted, "followers": rng.integers(1, 900, len(ids)),
                       "group": group})
    chosen = rng.choice(len(ids), 120, replace=False)
    gold = pa.table({"image_id": [ids[k] for k in chosen], "protest": truth[chosen],
                     "inclusion_probability": [120 / len(ids)] * 120})
    return corpus, gold


@pytest.mark.parametrize("formula", HOSTILE)
def test_a_hostile_formula_is_refused_and_runs_nothing(formula, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus, gold = data
    with pytest.raises(ImagesAsDataError, match="not allowed in a formula|cannot be read|cannot read the term"):
        corrected_glm(formula, corpus, gold, predicted="protest")
    with pytest.raises(ImagesAsDataError):
        parse_formula(formula)
    assert list(tmp_path.iterdir()) == []


def test_the_cli_refuses_hostile_formulas(data, tmp_path, monkeypatch, capsys):
    """One real subprocess (the installed entry point), the other formulas through the same main() in-process."""
    monkeypatch.chdir(tmp_path)
    corpus, gold = data
    write_table(corpus, tmp_path / "corpus.parquet")
    write_table(gold, tmp_path / "gold.parquet")
    arguments = ["glm", "corpus.parquet", "gold.parquet", "--predicted", "protest", "--formula"]
    result = run(*arguments, HOSTILE[0], check=False)
    assert result.returncode == 1 and "not allowed in a formula" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    for formula in HOSTILE[1:4] + ["y ~ protest + I(z.__class__)", "y ~ I((lambda: 1)()) + protest"]:
        assert main(arguments + [formula]) == 1, formula
        assert "not allowed in a formula" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.parquet", "gold.parquet"]
    with pytest.raises(SystemExit):
        main(["glm", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "never runs code" in help_text and "log1p" in help_text


def test_the_documented_formulas_give_patsys_own_design(data):
    """What the README documents (log, log1p, sqrt, exp, I() of arithmetic and comparisons, C() with contrasts and
    levels, interactions, -1 / +0, Q()) evaluates to exactly the matrices patsy builds with its own eval()."""
    import patsy

    from imagesasdata.analysis.estimators import _design

    corpus, _ = data
    columns = {name: corpus[name].to_numpy(zero_copy_only=False) for name in ("y", "z", "protest", "followers", "group")}
    columns["followers"] = columns["followers"].astype(float)
    columns["group"] = columns["group"].astype(object)
    for formula in ["y ~ protest + log(followers) + sqrt(followers) + exp(z) + log1p(followers)",
                    "y ~ protest * z + I(z ** 2) + I((z > 0) & (protest == 1))",
                    "y ~ C(group, Treatment('private')) + protest:z - 1",
                    "y ~ C(group, levels=['private', 'news']) + I(group == 'news') + 0 + Q('z')",
                    "y ~ C(group, Sum) + I(-z / 2 + 1) + I(followers // 100 % 3) + abs(z) + log10(followers)",
                    "y ~ I(not_news) + z"]:
        data_ = dict(columns)
        data_["not_news"] = columns["group"] != "news"
        y, X, _, terms = _design(parse_formula(formula), data_)
        functions = {"log": np.log, "log1p": np.log1p, "sqrt": np.sqrt, "exp": np.exp, "abs": np.abs,
                     "log10": np.log10}
        y_ref, X_ref = patsy.dmatrices(formula, data_, eval_env=patsy.EvalEnvironment([functions]))
        assert terms == ["(Intercept)" if n == "Intercept" else n for n in X_ref.design_info.column_names]
        np.testing.assert_allclose(X, np.asarray(X_ref), rtol=1e-12)
        np.testing.assert_allclose(y, np.asarray(y_ref)[:, 0], rtol=1e-12)
    assert parse_formula("y ~ protest + log(followers)").regressor_columns == ["protest", "followers"]
    assert parse_formula("I(y > 1) ~ C(group) + Q('z')").outcome_columns == ["y"]
    assert parse_formula("y ~ C(group) + Q('z')").regressor_columns == ["group", "z"]


def test_clear_errors_for_what_a_formula_cannot_mean(data):
    corpus, gold = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = corrected_glm("y ~ protest + log(followers)", corpus, gold, predicted="protest")
    assert fit.tidy("corrected").num_rows == 3
    with pytest.raises(ImagesAsDataError, match=r"\^ is not a power here: write x\*\*2"):
        corrected_glm("y ~ protest + I(z^2)", corpus, gold, predicted="protest")
    with pytest.raises(ImagesAsDataError, match=r"the term 'log\(z\)' is infinite or undefined for \d+ image\(s\): s"):
        corrected_glm("y ~ protest + log(z)", corpus, gold, predicted="protest")
    with pytest.raises(ImagesAsDataError, match="does arithmetic on text"):
        corrected_glm("y ~ protest + I(group * 2)", corpus, gold, predicted="protest")
    with pytest.raises(ImagesAsDataError, match="uses no column"):
        corrected_glm("y ~ protest + I(2)", corpus, gold, predicted="protest")
    with pytest.raises(ImagesAsDataError, match="has no outcome"):
        parse_formula("~ protest")
    with pytest.raises(ImagesAsDataError, match="characters is refused"):
        parse_formula("y ~ " + " + ".join(["z"] * 3000))
