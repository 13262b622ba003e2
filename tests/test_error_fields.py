"""Engine errors reach R as fields, and their words in R's spelling, so that R never parses a message (issue 22).

Two halves. An AST scan of the engine's source: every ImagesAsDataError(...) whose message names an option
(`name=value` first), a file (a path, folder or sheet written into it) or a row ("row {n}", "line {n}") passes
that as a field (option=, path=, row=), and code marked for both languages (schema.literal, setting, flag, ...)
never leaves the engine unrendered (only through ImagesAsDataError or errors.warn). And the public API's bad
inputs, called through the bridge as R calls them: the fields, Python's message (unchanged) and R's.
"""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path

import pyarrow as pa
import pytest

import imagesasdata
from imagesasdata import schema
from imagesasdata.errors import ImagesAsDataError, ImagesAsDataWarning, did_you_mean, warn
from imagesasdata.interop import bridge

ENGINE = Path(imagesasdata.__file__).resolve().parent

# Expressions written into a message that are a file or folder (by the variable's name).
PATH_NAMES = {"path", "file", "folder", "out", "directory", "sheet", "filename", "root", "cache", "manifest",
              "destination", "source_path", "key_file"}
LEADING_OPTION = re.compile(r"^\s*([a-z_][a-z0-9_]*)=$")
LEADING_OPTION_VALUE = re.compile(r"^\s*([a-z_][a-z0-9_]*)=('[^']*'|-?[0-9]|True|False|None|\[)")
ROW_BEFORE = re.compile(r"\b(row|line)s? $")
MARKS = {"literal", "setting", "flag", "argument", "cli_only", "did_you_mean"}
# Calls that render marked text (or build such an error): marks may be passed to them.
RENDERERS = {"ImagesAsDataError", "ImagesAsDataWarning", "warn", "option_error", "unknown_option", "column_error",
             "render", "append", "join", "listing"} | MARKS


def _pieces(node) -> list:
    """A message expression as ("text", str) and ("expr", node) pieces, adjacent texts joined."""
    out = []

    def walk(n):
        if isinstance(n, ast.JoinedStr):
            for v in n.values:
                out.append(("text", v.value) if isinstance(v, ast.Constant) else ("expr", v.value))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.append(("text", n.value))
        elif isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add):
            walk(n.left)
            walk(n.right)
        else:
            out.append(("expr", n))

    walk(node)
    joined = []
    for kind, value in out:
        if kind == "text" and joined and joined[-1][0] == "text":
            joined[-1] = ("text", joined[-1][1] + value)
        else:
            joined.append((kind, value))
    return joined


def _name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("str", "Path") and node.args:
        return _name(node.args[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _name(node.left)
    return None


def _call_name(node):
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def fields_needed(call: ast.Call) -> set:
    """The fields a raise site must pass, read from its message: option (the message starts with name=value),
    path (a file or folder is written into it) and row ("row {n}", "line {n}", "rows {...}")."""
    if not call.args:
        return set()
    pieces = _pieces(call.args[0])
    keywords = {k.arg: k.value for k in call.keywords}
    needed = set()
    what = keywords.get("what")
    first = pieces[0] if pieces else None
    if not (isinstance(what, ast.Constant) and what.value == "missing_extra") and first:   # option: the package
        kind, value = first
        if kind == "text" and (LEADING_OPTION.match(value) and len(pieces) > 1 and pieces[1][0] == "expr"
                               or LEADING_OPTION_VALUE.match(value)):
            needed.add("option")
        elif kind == "expr" and (isinstance(value, ast.Call) and _call_name(value) == "setting"
                                 or len(pieces) > 1 and pieces[1] == ("text", "=")):
            needed.add("option")
        elif kind == "expr" and len(pieces) > 1 and pieces[1][0] == "text" and pieces[1][1].startswith("="):
            needed.add("option")
    if any(kind == "expr" and _name(value) in PATH_NAMES for kind, value in pieces):
        needed.add("path")
    if any(kind == "text" and ROW_BEFORE.search(value) and i + 1 < len(pieces) and pieces[i + 1][0] == "expr"
           for i, (kind, value) in enumerate(pieces)):
        needed.add("row")
    return needed


def _engine_files():
    return sorted(ENGINE.rglob("*.py"))


def test_every_raise_site_that_names_an_option_file_or_row_passes_it_as_a_field():
    """Without the field R cannot name the argument (e$argument, imagesasdata_argument_error), the file (e$path) or
    the row (e$row): it would have to read them out of the message's words, which it never does."""
    missing, sites = [], 0
    for file in _engine_files():
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) == "ImagesAsDataError":
                sites += 1
                given = {k.arg for k in node.keywords}
                for field in sorted(fields_needed(node) - given):
                    missing.append(f"{file.relative_to(ENGINE.parent)}:{node.lineno}: {field}=")
    assert sites > 400, "the scan found too few raise sites: is it reading the engine?"
    assert not missing, "raise sites whose message names an option, file or row without the field:\n" + "\n".join(missing)


def test_the_scan_recognises_what_it_looks_for():
    """The rule itself, on small examples: a leading name=value, a path, a row; a hint naming an option later in
    the message is not the option at fault; a missing package's error names the package, not an option."""
    def needed(source):
        return fields_needed(ast.parse(source).body[0].value)

    assert needed('ImagesAsDataError(f"size={size!r}: give a whole number")') == {"option"}
    assert needed('ImagesAsDataError(f"{name}={value!r} must be True or False")') == {"option"}
    assert needed('ImagesAsDataError(f"{setting(name, value)}: give a number")') == {"option"}
    assert needed('ImagesAsDataError("device=\'mps\' but Metal is not available")') == {"option"}
    assert needed('ImagesAsDataError(f"{path}: not a readable Parquet file")') == {"path"}
    assert needed('ImagesAsDataError(f"{self.path / RUN_DESCRIPTION} is damaged")') == {"path"}
    assert needed('ImagesAsDataError(f"{name}: line {row + 2} is not valid text")') == {"row"}
    assert needed('ImagesAsDataError(f"the sample is too small; pass size= or design=\'srs\'")') == set()
    assert needed('ImagesAsDataError("backend=\'ray\' needs Ray", what="missing_extra", extra="ray")') == set()


def test_marked_code_never_leaves_the_engine_unrendered():
    """A marked span (schema.literal, setting, ...) is rendered by ImagesAsDataError, errors.warn or render(); passed
    to anything else (print, warnings.warn, a table) the user would see private-use characters."""
    leaks = []
    for file in _engine_files():
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _call_name(node) in RENDERERS:
                continue
            for argument in list(node.args) + [k.value for k in node.keywords]:
                for inner in ast.walk(argument):
                    if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id in MARKS:
                        leaks.append(f"{file.relative_to(ENGINE.parent)}:{node.lineno}: {_call_name(node)}("
                                     f"... {inner.func.id}(...))")
    assert not leaks, "marked code passed to a call that does not render it:\n" + "\n".join(sorted(set(leaks)))


# ------------------------------------------------------------------------------------------ spelling

def test_marked_code_is_spelt_for_each_interface():
    quoted = schema.literal('say "hi"')
    text = (f"pass {schema.setting('resume', True)}{schema.cli_only('--resume')} with the {schema.flag('out')} "
            f"folder; {schema.literal('maybe')} is not {schema.literal(['a', 'b'])}; {schema.setting('confidence', 95.0)}"
            f"; {schema.argument('lam')} and {schema.literal(None)}, {schema.literal(-1.0)}, {schema.literal(1e-7)}, "
            f"{quoted}")
    assert schema.render(text, "python") == (
        "pass resume=True (CLI: --resume) with the --out folder; 'maybe' is not ['a', 'b']; confidence=95.0; lam and "
        "None, -1.0, 1e-07, 'say \"hi\"'")
    assert schema.render(text, "r") == (
        'pass `resume = TRUE` with the `out` folder; "maybe" is not c("a", "b"); `conf_level = 95`; `lambda` and '
        'NULL, -1, 0.0000001, "say \\"hi\\""')
    assert schema.render("no code here", "r") == "no code here"
    with pytest.raises(ValueError, match="unknown interface"):
        schema.render(text, "julia")


def test_an_error_shows_python_its_own_spelling_and_gives_r_its_own():
    error = ImagesAsDataError(f"{schema.setting('confidence', 95)}: give a level between 0 and 1"
                              f"{did_you_mean('srs', ['srs', 'neyman'])}", what="option", option="confidence",
                              value=95, hint=f"e.g. {schema.setting('confidence', 0.95)}")
    assert str(error) == "confidence=95: give a level between 0 and 1 Did you mean 'srs'?"
    assert "\ue000" not in str(error) and "\ue000" not in repr(error)
    assert error.message_for("r") == '`conf_level = 95`: give a level between 0 and 1 Did you mean "srs"?'
    assert error.fields() == {"what": "option", "option": "confidence", "value": 95, "hint": "e.g. confidence=0.95"}
    assert error.fields("r") == {"what": "option", "option": "conf_level", "value": 95,
                                 "hint": "e.g. `conf_level = 0.95`"}
    with pytest.raises(ImagesAsDataError, match=r"^confidence=95: give"):
        raise error


def test_the_bridge_sends_r_the_message_and_warnings_spelt_for_r():
    from imagesasdata.train.grids import _trial_resources

    outcome = bridge.call(_trial_resources, "ray", None, -1.0)
    assert outcome.error["message"] == "gpus_per_trial=-1.0: give a number of at least 0 (e.g. gpus_per_trial=2)"
    assert outcome.error["r_message"] == "`gpus_per_trial = -1`: give a number of at least 0 (e.g. `gpus_per_trial = 2`)"
    assert outcome.error["fields"] == {"what": "option", "option": "gpus_per_trial", "value": -1.0}
    # an engine warning: R's spelling through the bridge, Python's for Python
    tags = pa.table({"image_id": ["a.jpg", "b.jpg"], "label": ["Crowd", "Person"], "confidence": [99.0, 98.0]})
    manual = pa.table({"image_id": ["a.jpg", "b.jpg"], "label": ["yes", "no"]})
    outcome = bridge.call(imagesasdata.compare_tags, tags, manual, "Crowds", manual_positive="yes")
    assert outcome.warnings == ['positive tag(s) "Crowds" never occur in the tag table, so no image is predicted '
                                'positive by them. Did you mean "Crowd"?']
    with pytest.warns(ImagesAsDataWarning, match="positive tag\\(s\\) 'Crowds' never occur.*Did you mean 'Crowd'"):
        imagesasdata.compare_tags(tags, manual, "Crowds", manual_positive="yes")
    with pytest.warns(UserWarning, match="Did you mean 'Crowd'"):      # still a UserWarning for code that filters those
        warn(f"{schema.literal('Crowds')}?{did_you_mean('Crowds', ['Crowd'])}")


# ------------------------------------------------------------------------------------------ the public API's bad inputs

def _error(function, *args, **options) -> dict:
    outcome = bridge.call(function, *args, **options)
    assert outcome.error and outcome.error["engine"], outcome.error
    return outcome.error


def test_bad_inputs_of_the_public_api_reach_r_with_their_fields(tmp_path, sample_data):
    """Each as R meets it: the field R names in its condition, and the message in R's spelling."""
    from imagesasdata.data.table import choose_positive_class
    from imagesasdata.train.grids import _trial_resources

    error = _error(imagesasdata.load_run, tmp_path / "nowhere")
    assert error["fields"]["path"] == str((tmp_path / "nowhere").absolute()) and error["fields"]["what"] == "file"
    assert "pass the --out folder" in error["message"] and "pass the `out` folder" in error["r_message"]
    assert error["fields"]["hint"] == "pass the `out` folder of a finetune run"

    error = _error(choose_positive_class, ["TRUE", "FALSE"], "yes")
    assert error["fields"] == {"what": "option", "option": "positive_class", "value": "yes",
                               "expected": "one of the classes", "choices": ["TRUE", "FALSE"]}

    error = _error(_trial_resources, "local", 2, None)
    assert error["fields"]["option"] == "cpus_per_trial"
    assert "pass backend='ray' (CLI: --backend ray)" in error["message"]
    assert 'pass `backend = "ray"`, or leave it out' in error["r_message"]

    error = _error(imagesasdata.draw_gold_sample, pa.table({"image_id": ["a", "b"], "predicted": ["x", "y"]}), 0)
    assert error["fields"]["option"] == "size" and error["fields"]["value"] == 0

    error = _error(imagesasdata.corrected_prevalence, pa.table({"image_id": ["a"], "predicted": ["x"]}),
                   pa.table({"image_id": ["a"], "label": ["x"]}), confidence=95)
    assert error["fields"]["option"] == "conf_level"                       # R's name of the engine's confidence
    assert error["message"].startswith("confidence=95") and error["r_message"].startswith("`conf_level = 95`")

    table = tmp_path / "labels.csv"
    table.write_bytes(b"path,label\n" + b"".join(f"{p},a\n".encode() for p in sorted(
        str(p) for p in (sample_data / "faces").rglob("*.*"))[:3]) + b"x.png,caf\xe9\n")
    error = _error(imagesasdata.image_table, table)
    assert error["fields"]["path"] == str(table) and error["fields"]["row"] == 5


def test_a_bad_code_in_a_selection_sheet_names_its_file_rows_and_the_classes(tmp_path):
    sheet = tmp_path / "sheet.csv"
    with open(sheet, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "path", "code"])
        writer.writerows([["a", "/a.png", "s1"], ["b", "/b.png", "S2"], ["c", "/c.png", "zz"]])
    error = _error(imagesasdata.read_selection_sheet, sheet, classes=["s1", "s2"])
    assert error["fields"] == {"what": "file", "value": "S2", "choices": ["s1", "s2"], "path": str(sheet),
                               "row": [3, 4]}
    assert "line 3: 'S2', line 4: 'zz'. Did you mean 's2'?" in error["message"]
    assert 'line 3: "S2", line 4: "zz". Did you mean "s2"?' in error["r_message"]
