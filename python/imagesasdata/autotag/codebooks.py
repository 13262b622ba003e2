"""A codebook is data: the categories a coder looks for, each with its definition (and optional example images),
and the instructions every coder reads first — for people and for a vision-language model alike.

    codebook({"protest": "People gathered in public to demonstrate ...", "police": "..."})
    codebook("codebook.yaml")            # or .json: name, kind, instructions, categories (name, definition, examples)
    codebook(table)                      # a table with category and definition columns (and examples)

kind "each": every category is a yes/no question (an image may show a protest and police, or neither);
kind "one": the categories exclude each other and the coder picks exactly one (give an "other" category).

The prompt sent to a model is built from the codebook by one deterministic function (`Codebook.prompt()`): the
same codebook gives the same bytes on any machine, and its SHA-256 (`prompt_sha256`, with the answer schema and
the example images' file hashes) keys the response cache — change one word of a definition and every image is
asked again, never answered from the old wording's cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ImagesAsDataError, did_you_mean, listing, setting

KINDS = ("each", "one")
PROMPT_FORMAT = "imagesasdata.codebook.prompt/1"   # bump when prompt() changes: old cache entries stop matching
SCHEMA_MARKER = "JSON schema of the answer:"
# The coder instructions of the book's advice on coding (section 5): code what is visible, apply the definitions
# literally, answer "no" when unsure rather than guess, and give the reason, so disagreements can be read.
DEFAULT_INSTRUCTIONS = (
    "You are a careful research assistant coding images for a social science study. Code only what is visible "
    "in the image itself; do not guess from context you cannot see. Apply each definition literally, as a trained "
    "human coder would. When the image does not clearly show a category, do not code it as present. For every "
    "answer give a short reason (one sentence) naming what in the image led to it."
)


@dataclass(frozen=True)
class Category:
    """One category: its name (the answer's key, and the column suffix prob_<name>), its definition, and example
    image files (optional; sent with every request, so they cost tokens)."""

    name: str
    definition: str
    examples: tuple = ()


@dataclass(frozen=True)
class Codebook:
    """Categories with definitions, coder instructions, and kind ("each": yes/no per category; "one": pick one)."""

    categories: tuple
    instructions: str = DEFAULT_INSTRUCTIONS
    kind: str = "each"
    name: str = "codebook"
    example_hashes: dict = field(default_factory=dict, compare=False)

    @property
    def names(self) -> list:
        return [c.name for c in self.categories]

    def prompt(self) -> str:
        """Return the system prompt: instructions, the categories with their definitions, what to answer, and the
        answer's JSON schema. Deterministic: plain text built from the codebook alone (no time, no machine)."""
        lines = [self.instructions.strip(), "", f'Codebook "{self.name}" with {len(self.categories)} categories:', ""]
        for number, category in enumerate(self.categories, start=1):
            lines.append(f"{number}. {category.name}: {' '.join(category.definition.split())}")
            if category.examples:
                lines.append(f"   ({len(category.examples)} example image{'s' if len(category.examples) > 1 else ''} "
                             f"of {category.name} come{'' if len(category.examples) > 1 else 's'} before the image to code.)")
        lines.append("")
        if self.kind == "each":
            lines.append("For EACH category, decide whether the image shows it (present: true or false), "
                         "independently of the other categories, and give your reason.")
        else:
            lines.append("Choose exactly ONE category, the one that fits the image best, and give your reason.")
        lines += ["Answer with one JSON object and nothing else.", "",
                  f"{SCHEMA_MARKER} {json.dumps(self.schema(), separators=(',', ':'))}"]
        return "\n".join(lines) + "\n"

    def schema(self) -> dict:
        """Return the JSON schema every answer must follow (OpenAI structured outputs' strict subset)."""
        if self.kind == "one":
            properties = {"category": {"type": "string", "enum": self.names}, "reason": {"type": "string"}}
            return {"type": "object", "properties": properties, "required": ["category", "reason"],
                    "additionalProperties": False}
        answer = {"type": "object", "properties": {"present": {"type": "boolean"}, "reason": {"type": "string"}},
                  "required": ["present", "reason"], "additionalProperties": False}
        return {"type": "object", "properties": {name: answer for name in self.names}, "required": self.names,
                "additionalProperties": False}

    def to_dict(self) -> dict:
        """Return the codebook as plain data: name, kind, instructions, categories (name, definition, examples)."""
        return {"name": self.name, "kind": self.kind, "instructions": self.instructions,
                "categories": [{"name": c.name, "definition": c.definition, "examples": list(c.examples)}
                               for c in self.categories]}

    @property
    def prompt_sha256(self) -> str:
        """SHA-256 of what defines the request apart from the image: prompt text, schema, example files' hashes."""
        record = {"format": PROMPT_FORMAT, "prompt": self.prompt(), "schema": self.schema(),
                  "examples": [[c.name, [self.example_hashes.get(str(p)) for p in c.examples]] for c in self.categories]}
        return hashlib.sha256(json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()

    def write(self, path) -> Path:
        """Write the codebook as JSON (or YAML for .yaml/.yml) to `path`, atomically, readable by codebook(path).
        Returns the path."""
        from ..io.tables import atomic_path

        path = Path(path)
        with atomic_path(path) as temporary:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                temporary.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")
            else:
                temporary.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    def __str__(self) -> str:
        kind = "yes/no per category" if self.kind == "each" else "one category per image"
        return (f"codebook {self.name!r} ({kind}), {len(self.categories)} categories: {', '.join(self.names)}; "
                f"prompt sha256 {self.prompt_sha256[:12]}")


def codebook(source=None, *, categories=None, instructions: str | None = None, kind: str | None = None,
             name: str | None = None, category: str = "category", definition: str = "definition",
             examples: str = "examples") -> Codebook:
    """Return a Codebook from a YAML/JSON file, a mapping {category: definition}, a table (category and definition
    columns, optional examples: image paths separated by ";"), a list of {name, definition, examples} dicts, or a
    Codebook (returned as is, with any option given replacing its own).

    instructions: the coder instructions (default: DEFAULT_INSTRUCTIONS). kind: "each" (default: yes/no per
    category) or "one" (exactly one category per image). Example image paths in a file are relative to its folder.
    Raises ImagesAsDataError naming the problem: no categories, a repeated or empty name, an empty definition, an
    example image that does not exist, an unknown kind.
    """
    base = None
    spec: dict = {}
    if isinstance(source, Codebook):
        spec = source.to_dict()
    elif isinstance(source, (str, Path)) and not isinstance(source, dict):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImagesAsDataError(f"codebook file {path} does not exist; give a .yaml/.json file, a mapping "
                                    "{category: definition} or a table with category and definition columns",
                                    what="file", path=path)
        base = path.resolve().parent
        if path.suffix.lower() in (".csv", ".parquet", ".tsv"):
            spec = {"categories": _from_table(path, category, definition, examples), "name": path.stem}
        else:
            spec = _read_file(path)
    elif isinstance(source, dict):
        if "categories" in source:
            spec = dict(source)
        else:
            spec = {"categories": [{"name": k, "definition": v} for k, v in source.items()]}
    elif isinstance(source, (list, tuple)):
        spec = {"categories": list(source)}
    elif source is not None:
        spec = {"categories": _from_table(source, category, definition, examples)}
    if categories is not None:
        spec["categories"] = codebook(categories).to_dict()["categories"]
    for key, value in (("instructions", instructions), ("kind", kind), ("name", name)):
        if value is not None:
            spec[key] = value
    return _build(spec, base)


def _read_file(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            spec = yaml.safe_load(text)
        else:
            spec = json.loads(text)
    except Exception as error:  # yaml and json raise their own types; the message is the same
        raise ImagesAsDataError(f"{path}: not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'} "
                                f"({str(error).splitlines()[0][:200]})", what="file", path=path) from None
    if isinstance(spec, dict) and "categories" not in spec and all(isinstance(v, str) for v in spec.values()):
        spec = {"categories": [{"name": k, "definition": v} for k, v in spec.items()]}
    if not isinstance(spec, dict):
        raise ImagesAsDataError(f"{path}: a codebook file holds a mapping with name, kind, instructions and "
                                "categories (a list of name/definition/examples), or a mapping category: definition",
                                what="file", path=path)
    spec.setdefault("name", path.stem)
    return spec


def _from_table(source, category: str, definition: str, examples: str) -> list:
    from ..io.tables import to_arrow

    table = to_arrow(source)
    for column, option in ((category, "category"), (definition, "definition")):
        if column not in table.column_names:
            raise ImagesAsDataError(f"the codebook table has no {column!r} column (columns: "
                                    f"{', '.join(table.column_names)}); name it with {option}=."
                                    f"{did_you_mean(column, table.column_names)}")
    rows = []
    example_values = table[examples].to_pylist() if examples in table.column_names else [None] * table.num_rows
    for name, text, files in zip(table[category].to_pylist(), table[definition].to_pylist(), example_values):
        if isinstance(files, str):
            files = [f.strip() for f in files.split(";") if f.strip()]
        rows.append({"name": name, "definition": text, "examples": list(files or [])})
    return rows


def _build(spec: dict, base: Path | None) -> Codebook:
    unknown = sorted(set(spec) - {"name", "kind", "instructions", "categories"})
    if unknown:
        raise ImagesAsDataError(f"the codebook has unknown fields {', '.join(unknown)}; it takes name, kind, "
                                "instructions and categories")
    kind = str(spec.get("kind") or "each")
    if kind not in KINDS:
        raise ImagesAsDataError(f"{setting('kind', kind)}: choose 'each' (yes/no per category) or 'one' (exactly one category "
                                f"per image).{did_you_mean(kind, KINDS)}", what="option", option="kind", value=kind)
    raw = spec.get("categories") or []
    if not raw:
        raise ImagesAsDataError("the codebook has no categories; give at least one category with its definition")
    built, problems, hashes = [], [], {}
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            problems.append(f"category {number} is not a mapping with name and definition")
            continue
        extra = sorted(set(item) - {"name", "definition", "examples", "category"})
        if extra:
            problems.append(f"category {number} has unknown fields {', '.join(extra)}")
        label = item.get("name", item.get("category"))
        label = None if label is None else str(label).strip()
        text = item.get("definition")
        text = None if text is None else " ".join(str(text).split())
        if not label:
            problems.append(f"category {number} has no name")
            continue
        if not text:
            problems.append(f"category {label!r} has no definition")
        files = item.get("examples") or []
        files = [files] if isinstance(files, str) else list(files)
        resolved = []
        for file in files:
            path = Path(str(file)).expanduser()
            if not path.is_absolute() and base is not None:
                path = base / path
            if not path.is_file():
                problems.append(f"example image {file} of {label!r} does not exist")
                continue
            from ..io.images import sha256_file

            hashes[str(path.resolve())] = sha256_file(path)
            resolved.append(str(path.resolve()))
        built.append(Category(label, text or "", tuple(resolved)))
    names = [c.name for c in built]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"category names repeat: {', '.join(repeated)}")
    if kind == "one" and len(built) < 2:
        problems.append("kind 'one' needs at least 2 categories to choose from (add an 'other' category)")
    if problems:
        raise ImagesAsDataError(f"the codebook cannot be used: {listing(problems, 8)}")
    instructions = spec.get("instructions")
    instructions = DEFAULT_INSTRUCTIONS if instructions is None or not str(instructions).strip() else str(instructions)
    return Codebook(tuple(built), instructions.strip(), kind, str(spec.get("name") or "codebook"), hashes)
