"""Model formulas that can never run code.

patsy, which reads formulas, evaluates each term with Python's eval(), builtins included: a formula such as
"y ~ I(__import__('os').system('id'))", typed at the command line or kept in a shared analysis config, would run a
command. Here patsy only *parses* the formula (its grammar: ~ + - * / : ** and 0/1 for the intercept, no
evaluation); every term's expression is then checked against an allow-list with Python's `ast` module and
evaluated by a small interpreter of that list — no eval(), no builtins, no attribute access.

A term may use:

- column names (and Q("odd name") for a column whose name is not an identifier);
- numbers, and text or True/False as the other side of a comparison (I(label == 'protest'));
- arithmetic + - * / // % ** and comparisons == != < <= > >= (chained too), `and`, `or`, `not`, & and | (logical);
- the functions log, log1p, log2, log10, exp, sqrt and abs;
- I(…) (arithmetic inside a formula), C(x) (x as categorical; C(x, Treatment('a')) or Sum, Helmert, Diff, Poly
  for its contrasts, levels=[…] for their order).

Anything else — attribute access (x.real), subscripts (x[0]), other calls (open(), __import__()), lambda,
comprehensions, names starting with an underscore used as functions, ^ (write powers as **) — is refused with an
ImagesAsDataError before any data is touched.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np

from ..errors import ImagesAsDataError, missing_extra, setting

FUNCTIONS = {"log": np.log, "log1p": np.log1p, "log2": np.log2, "log10": np.log10, "exp": np.exp, "sqrt": np.sqrt,
             "abs": np.abs}
CONTRASTS = ("Treatment", "Sum", "Helmert", "Diff", "Poly")
MAX_LENGTH = 5000
RULE = ("a formula may use column names, numbers, text in comparisons, arithmetic (+ - * / // % **), comparisons, "
        "and/or/not, and the functions " + ", ".join(FUNCTIONS) + ", I(), C() and Q(); nothing else, so that a "
        "formula can never run code")

_ARITHMETIC = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
               ast.FloorDiv: np.floor_divide, ast.Mod: np.mod, ast.Pow: np.power}
_LOGICAL = {ast.BitAnd: np.logical_and, ast.BitOr: np.logical_or}
_COMPARISONS = {ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
                ast.Gt: np.greater, ast.GtE: np.greater_equal}


@dataclass(frozen=True)
class Formula:
    """A checked formula: its text, patsy's description built from safe factors, and the columns it reads."""

    text: str
    description: object  # patsy.ModelDesc whose factors are _SafeFactor
    outcome_columns: list
    regressor_columns: list


class _Refused(Exception):
    """A piece of a term outside the allow-list (turned into an ImagesAsDataError naming the formula)."""


def parse_formula(text: str) -> Formula:
    """Check a formula against the allow-list (the module's docstring) and return it ready for patsy.

    Raises ImagesAsDataError for a formula patsy cannot parse, one without an outcome, or one using anything
    outside the allow-list (naming the offending piece)."""
    try:
        import patsy
    except ImportError:
        raise missing_extra("formulas", "patsy", "stats") from None
    if not isinstance(text, str):
        raise ImagesAsDataError(f"{setting('formula', text)}: give the formula as text, e.g. 'retweets ~ protest + log(followers)'",
                                what="option", option="formula", value=text)
    if len(text) > MAX_LENGTH:
        raise ImagesAsDataError(f"the formula is {len(text):,} characters long; a formula of more than {MAX_LENGTH:,} "
                                "characters is refused")
    try:
        parsed = patsy.ModelDesc.from_formula(text)
    except patsy.PatsyError as error:
        raise ImagesAsDataError(f"formula {text!r} cannot be read: {str(error).splitlines()[0]}") from None
    except (RecursionError, MemoryError):
        raise ImagesAsDataError(f"formula {text[:80]!r}… is nested too deeply to read") from None
    if not parsed.lhs_termlist:
        raise ImagesAsDataError(f"formula {text!r} has no outcome: write it as 'outcome ~ regressors'")
    factors: dict = {}

    def safe_terms(termlist, columns):
        terms = []
        for term in termlist:
            safe = []
            for factor in term.factors:
                code = factor.code
                if code not in factors:
                    factors[code] = _SafeFactor(code, _check(text, code))
                safe.append(factors[code])
                for name in factors[code].columns:
                    if name not in columns:
                        columns.append(name)
            terms.append(patsy.Term(safe))
        return terms

    outcome, regressors = [], []
    description = patsy.ModelDesc(safe_terms(parsed.lhs_termlist, outcome), safe_terms(parsed.rhs_termlist, regressors))
    return Formula(text, description, outcome, regressors)


def _check(formula: str, code: str) -> ast.Expression:
    """The term's syntax tree, after checking every node against the allow-list."""
    try:
        tree = ast.parse(code, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ImagesAsDataError(f"formula {formula!r}: cannot read the term {code!r}") from None
    try:
        _check_node(tree.body, code, role="value")
    except _Refused as refused:
        raise ImagesAsDataError(f"formula {formula!r}: {refused} is not allowed in a formula — {RULE}") from None
    if not _columns(tree):
        raise ImagesAsDataError(f"formula {formula!r}: the term {code!r} uses no column; every term needs one")
    return tree


def _piece(node, code: str) -> str:
    return repr(ast.get_source_segment(code, node) or type(node).__name__)


def _check_node(node, code: str, role: str) -> None:
    """Raise _Refused for anything outside the allow-list. role: "value" (a column, number or expression),
    "compared" (a comparison's operand, where text and True/False may stand)."""
    if isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise _Refused(f"the name {node.id!r} (names starting with _)")
        return
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or isinstance(value, str):
            if role != "compared":
                raise _Refused(f"{_piece(node, code)} outside a comparison")
            if isinstance(value, str) and len(value) > 1000:
                raise _Refused("text of more than 1,000 characters")
            return
        if isinstance(value, (int, float)) and not isinstance(value, complex):
            return
        raise _Refused(_piece(node, code))
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitXor):
            raise _Refused(f"{_piece(node, code)} (^ is not a power here: write x**2)")
        if type(node.op) not in _ARITHMETIC and type(node.op) not in _LOGICAL:
            raise _Refused(f"the operator in {_piece(node, code)}")
        _check_node(node.left, code, "value")
        _check_node(node.right, code, "value")
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            raise _Refused(f"the operator in {_piece(node, code)}")
        _check_node(node.operand, code, "value")
        return
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check_node(value, code, "value")
        return
    if isinstance(node, ast.Compare):
        if any(type(op) not in _COMPARISONS for op in node.ops):
            raise _Refused(f"the comparison in {_piece(node, code)} (use == != < <= > >=)")
        for operand in [node.left, *node.comparators]:
            _check_node(operand, code, "compared")
        return
    if isinstance(node, ast.Call):
        _check_call(node, code)
        return
    raise _Refused(_piece(node, code))


def _check_call(node: ast.Call, code: str) -> None:
    function = node.func.id if isinstance(node.func, ast.Name) else None
    if function is None or (function not in FUNCTIONS and function not in ("I", "C", "Q")):
        raise _Refused(f"the call {_piece(node, code)}")
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise _Refused(f"* or ** in {_piece(node, code)}")
    if function == "Q":
        if node.keywords or len(node.args) != 1 or not (isinstance(node.args[0], ast.Constant)
                                                       and isinstance(node.args[0].value, str)):
            raise _Refused(f"{_piece(node, code)} (Q() takes one column name in quotes)")
        return
    if function == "C":
        if not 1 <= len(node.args) <= 2 or any(k.arg not in ("contrast", "levels") for k in node.keywords):
            raise _Refused(f"{_piece(node, code)} (C(x), C(x, Treatment('level')), C(x, levels=[...]))")
        _check_node(node.args[0], code, "value")
        contrasts = node.args[1:] + [k.value for k in node.keywords if k.arg == "contrast"]
        for contrast in contrasts:
            _check_contrast(contrast, code)
        for keyword in node.keywords:
            if keyword.arg == "levels":
                _check_literal_list(keyword.value, code)
        return
    if node.keywords or len(node.args) != 1:
        raise _Refused(f"{_piece(node, code)} ({function}() takes one argument)")
    _check_node(node.args[0], code, "value")


def _check_contrast(node, code: str) -> None:
    if isinstance(node, ast.Name) and node.id in CONTRASTS:
        return
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CONTRASTS:
        for argument in list(node.args) + [k.value for k in node.keywords]:
            if isinstance(argument, (ast.List, ast.Tuple)):
                _check_literal_list(argument, code)
            elif not (isinstance(argument, ast.Constant) and isinstance(argument.value, (str, int, float))):
                raise _Refused(f"{_piece(argument, code)} in a contrast (give levels as numbers or text)")
        if any(k.arg is None for k in node.keywords):
            raise _Refused(f"** in {_piece(node, code)}")
        return
    raise _Refused(f"{_piece(node, code)} as a contrast (choose {', '.join(CONTRASTS)})")


def _check_literal_list(node, code: str) -> None:
    if not isinstance(node, (ast.List, ast.Tuple)) or not all(
            isinstance(e, ast.Constant) and isinstance(e.value, (str, int, float)) for e in node.elts):
        raise _Refused(f"{_piece(node, code)} (levels are a list of numbers or texts)")


def _columns(tree) -> list:
    """The columns a checked term reads, in order (Q('x') counts as x; function names do not count)."""
    found: list = []

    def visit(node):
        if isinstance(node, ast.Call):
            name = node.func.id
            if name == "Q":
                found.append(node.args[0].value)
                return
            for argument in node.args[:1] if name == "C" else node.args:
                visit(argument)
            return
        if isinstance(node, ast.Name):
            found.append(node.id)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree.body)
    return list(dict.fromkeys(found))


class _SafeFactor:
    """A patsy factor (its factor protocol: name, memorize_*, eval) computed by _evaluate(), never by eval()."""

    def __init__(self, code: str, tree: ast.Expression):
        self.code = code
        self.tree = tree
        self.columns = _columns(tree)
        self.origin = None

    def name(self) -> str:
        return self.code

    def __repr__(self) -> str:
        return f"_SafeFactor({self.code!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, _SafeFactor) and self.code == other.code

    def __hash__(self) -> int:
        return hash((_SafeFactor, self.code))

    def memorize_passes_needed(self, state, eval_env) -> int:
        return 0

    def memorize_chunk(self, state, which_pass, data) -> None:  # pragma: no cover - no passes are asked for
        pass

    def memorize_finish(self, state, which_pass) -> None:  # pragma: no cover
        pass

    def eval(self, state, data):
        with np.errstate(all="ignore"):
            return _evaluate(self.tree.body, data, self.code)


def _column(data, name: str, code: str):
    try:
        return data[name]
    except KeyError:
        raise ImagesAsDataError(f"the term {code!r} uses {name!r}, which is not a column of the data") from None


def _numbers(value, code: str):
    """A value arithmetic can use: numbers or booleans, never text (so no term builds large strings)."""
    array = np.asarray(value)
    if array.dtype == object:
        if any(isinstance(v, str) for v in array.ravel()):
            raise ImagesAsDataError(f"the term {code!r} does arithmetic on text; compare text instead "
                                    "(I(label == 'protest')) or make the column numeric")
        try:
            array = array.astype(float)
        except (TypeError, ValueError):
            raise ImagesAsDataError(f"the term {code!r} needs numbers") from None
    if array.dtype.kind not in "biuf":
        raise ImagesAsDataError(f"the term {code!r} does arithmetic on text; compare text instead "
                                "(I(label == 'protest')) or make the column numeric")
    return array.astype(float) if array.dtype.kind in "biu" else array


def _evaluate(node, data, code: str):
    """The value of a checked node on `data` (a mapping of column names to arrays)."""
    if isinstance(node, ast.Name):
        return _column(data, node.id, code)
    if isinstance(node, ast.Constant):
        value = node.value
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, data, code), _evaluate(node.right, data, code)
        if type(node.op) in _LOGICAL:
            return _LOGICAL[type(node.op)](_logical(left, code), _logical(right, code))
        return _ARITHMETIC[type(node.op)](_numbers(left, code), _numbers(right, code))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, data, code)
        if isinstance(node.op, ast.Not):
            return np.logical_not(_logical(operand, code))
        operand = _numbers(operand, code)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BoolOp):
        values = [_logical(_evaluate(v, data, code), code) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = values[0]
        for value in values[1:]:
            out = combine(out, value)
        return out
    if isinstance(node, ast.Compare):
        out, left = None, _evaluate(node.left, data, code)
        for op, comparator in zip(node.ops, node.comparators):
            right = _evaluate(comparator, data, code)
            try:
                result = np.asarray(_COMPARISONS[type(op)](np.asarray(left, dtype=object) if _is_text(left) else left,
                                                           right), dtype=bool)
            except TypeError:
                raise ImagesAsDataError(f"the term {code!r} compares values that cannot be compared (text with "
                                        "numbers?)") from None
            out = result if out is None else np.logical_and(out, result)
            left = right
        return out
    function = node.func.id
    if function == "Q":
        return _column(data, node.args[0].value, code)
    if function == "I":
        return _evaluate(node.args[0], data, code)
    if function == "C":
        import patsy

        contrast = None
        contrasts = node.args[1:] + [k.value for k in node.keywords if k.arg == "contrast"]
        if contrasts:
            contrast = _contrast(contrasts[0])
        levels = next((ast.literal_eval(k.value) for k in node.keywords if k.arg == "levels"), None)
        return patsy.builtins.C(_evaluate(node.args[0], data, code), contrast, list(levels) if levels else None)
    return FUNCTIONS[function](_numbers(_evaluate(node.args[0], data, code), code))


def _is_text(value) -> bool:
    return isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype == object)


def _logical(value, code: str):
    array = np.asarray(value)
    if array.dtype == object and any(isinstance(v, str) for v in array.ravel()):
        raise ImagesAsDataError(f"the term {code!r} uses text as true/false; compare it (label == 'protest')")
    return array.astype(bool)


def _contrast(node):
    """A patsy contrast object from a checked node (Treatment, Treatment('a'), Sum(...), ...)."""
    import patsy

    kind = getattr(patsy.contrasts, node.id if isinstance(node, ast.Name) else node.func.id)
    if isinstance(node, ast.Name):
        return kind
    arguments = [ast.literal_eval(a) for a in node.args]
    keywords = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    return kind(*arguments, **keywords)
