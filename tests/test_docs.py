"""The documentation stays true to the code: it builds, its examples run, its commands parse, its samples match.

Pages are ``README.md`` and ``docs/**/*.md``. An HTML comment before a fenced
block says what the tests do with it (readers never see it):

* ``<!-- docs-test: run -->``: the next ```` ```python ```` or ```` ```bash ```` block
  is executed; a page's blocks run in order in one fresh directory holding
  ``news.jsonl.gz`` (800 messages of raw 20 Newsgroups), ``20ng-etm`` (the
  authors' corpus) and ``examples/``, with ``etm`` on the PATH;
* ``<!-- docs-test: skip REASON -->``: a Python block that is not run, and why.
  Every ```` ```python ```` block carries ``run`` or ``skip``;
* ``<!-- docs-test: code`` ... ``-->``: hidden Python run at that point (a
  page's setup, or checks of what an example's comments claim);
* ``<!-- docs-test: output-of make-demo -->``: a sample of what ``make demo``
  prints; its lines must have the form of a short run's lines;
* ``<!-- docs-test: same-as make-demo -->``: the demo's commands, as the Makefile runs them;
* ``<!-- docs-test: synopsis -->``: the list of ``etm`` commands, all of them.

Every ``etm`` command in a ```` ```bash ```` block is parsed by the real parser.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from etm.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).parent / "helpers" / "docs_runner.py"
README_MAX_LINES = 200

_FENCE = re.compile(r"^( {0,3})(`{3,})([^`]*)$")
_MARKER = re.compile(r"^<!-- docs-test: (\S+)(.*?)\s*(-->)?$")


@dataclass
class Block:
    """A fenced code block (or a hidden ``docs-test: code`` comment) of a page."""

    path: str  # relative to the repository root
    line: int  # 1-based line of its first code line
    lang: str  # "python", "bash", "text", ...; "hidden" for a docs-test: code comment
    code: str
    marker: str | None = None  # "run", "skip", "output-of", "same-as", "synopsis"
    argument: str = ""  # the rest of the marker: a skip's reason, a demo's name


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def parse_page(path: Path) -> list[Block]:
    """The page's fenced blocks and hidden code, in order, each with the marker that precedes it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: tuple[str, str, int] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line.strip())
        fence = _FENCE.match(line)
        if marker and marker.group(1) == "code":
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "-->"), None)
            assert end is not None, f"{_rel(path)}:{i + 1}: <!-- docs-test: code has no closing --> line"
            blocks.append(Block(_rel(path), i + 2, "hidden", "\n".join(lines[i + 1:end]) + "\n"))
            i = end + 1
            continue
        if marker:
            assert marker.group(3), f"{_rel(path)}:{i + 1}: a docs-test marker ends on its own line with -->"
            assert pending is None, f"{_rel(path)}:{pending[2]}: marker not followed by a code block"
            pending = (marker.group(1), marker.group(2).strip(), i + 1)
        elif fence:
            indent, ticks, info = fence.group(1), fence.group(2), fence.group(3).strip()
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip().startswith(ticks) and not lines[j].strip().strip("`")), None)
            assert end is not None, f"{_rel(path)}:{i + 1}: unclosed code block"
            code = "\n".join(x[len(indent):] if x.startswith(indent) else x for x in lines[i + 1:end]) + "\n"
            kind, argument = pending[:2] if pending else (None, "")
            blocks.append(Block(_rel(path), i + 2, info.split()[0] if info else "", code, kind, argument))
            pending = None
            i = end + 1
            continue
        elif pending and line.strip():
            raise AssertionError(f"{_rel(path)}:{pending[2]}: a docs-test marker must come right before its block")
        i += 1
    assert pending is None, f"{_rel(path)}:{pending[2]}: marker at the end of the page, before no block"
    return blocks


PAGES = {_rel(p): parse_page(p) for p in doc_pages()}


def _steps(blocks: list[Block]) -> list[dict]:
    steps = []
    for b in blocks:
        if b.lang == "hidden" or (b.marker == "run" and b.lang == "python"):
            steps.append({"kind": "python", "code": b.code, "path": b.path, "line": b.line})
        elif b.marker == "run" and b.lang == "bash":
            steps.append({"kind": "bash", "code": b.code, "path": b.path, "line": b.line})
    return steps


RUNNABLE = sorted(name for name, blocks in PAGES.items()
                  if any(b.marker == "run" for b in blocks))


# -- the site builds -------------------------------------------------------------------------------------------
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """Broken links, missing pages, unknown API paths and stale anchors fail the build."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    topic_model = (site / "reference" / "topic-model" / "index.html").read_text(encoding="utf-8")
    assert "fit_transform" in topic_model and "get_topics" in topic_model
    notebook = (site / "internals" / "internal_pipeline" / "index.html").read_text(encoding="utf-8")
    assert "one training batch" in notebook.lower()
    options = (site / "guide" / "options" / "index.html").read_text(encoding="utf-8")
    assert "encoder_token_drop" in options


def test_every_page_is_in_the_nav() -> None:
    import yaml

    def paths(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in paths(item)]
        return [p for value in node.values() for p in paths(value)]

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = set(paths(config["nav"]))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*") if p.suffix in (".md", ".ipynb")}
    assert pages == in_nav, (pages - in_nav, in_nav - pages)


# -- examples run ----------------------------------------------------------------------------------------------
def test_every_python_block_says_run_or_skip() -> None:
    unmarked = [f"{b.path}:{b.line}" for blocks in PAGES.values() for b in blocks
                if b.lang == "python" and b.marker not in ("run", "skip")]
    assert not unmarked, f"python blocks without <!-- docs-test: run --> or <!-- docs-test: skip REASON -->: {unmarked}"
    no_reason = [f"{b.path}:{b.line}" for blocks in PAGES.values() for b in blocks
                 if b.marker == "skip" and not b.argument]
    assert not no_reason, f"a skipped block says why: {no_reason}"
    misplaced = [f"{b.path}:{b.line}" for blocks in PAGES.values() for b in blocks
                 if b.marker == "run" and b.lang not in ("python", "bash")]
    assert not misplaced, f"only python and bash blocks can be run: {misplaced}"


@pytest.fixture(scope="module")
def docs_bin(tmp_path_factory) -> Path:
    """A directory with an ``etm`` that runs this checkout's etm with this interpreter."""
    bin_dir = tmp_path_factory.mktemp("docs-bin")
    etm = bin_dir / "etm"
    etm.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m etm "$@"\n')
    etm.chmod(0o755)
    return bin_dir


def _docs_env(docs_bin: Path, shared_data: Path) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PATH": f"{docs_bin}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": pythonpath,
            "ETM_THREADS": "1", "MPLBACKEND": "Agg", "ETM_SHARED_DATA": str(shared_data)}


@pytest.fixture(scope="module")
def docs_news(tmp_path_factory, shared_data: Path) -> Path:
    """``news.jsonl.gz`` of the examples: every 19th training and every 37th test message of raw 20 Newsgroups.

    About 600 + 200 messages from all twenty groups, so that the examples' words and seeds are in the vocabulary.
    """
    import gzip

    path = tmp_path_factory.mktemp("docs-news") / "news.jsonl.gz"
    seen = {"train": 0, "test": 0}
    with gzip.open(shared_data / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as src, \
            gzip.open(path, "wt", encoding="utf-8") as out:
        for line in src:
            split = json.loads(line)["split"]
            if seen[split] % {"train": 19, "test": 37}[split] == 0:
                out.write(line)
            seen[split] += 1
    return path


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_examples_run(page: str, tmp_path: Path, docs_news: Path, shared_data: Path, docs_bin: Path) -> None:
    """The page's runnable blocks and hidden checks, in order, in a fresh directory of real data."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "news.jsonl.gz").symlink_to(docs_news)
    (work / "20ng-etm").symlink_to(shared_data / "20ng-etm")
    (work / "examples").symlink_to(ROOT / "examples")
    steps = tmp_path / "steps.json"
    steps.write_text(json.dumps(_steps(PAGES[page])), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(RUNNER), str(steps)], cwd=work, capture_output=True, text=True,
                          env=_docs_env(docs_bin, shared_data), timeout=900)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"


# -- commands parse --------------------------------------------------------------------------------------------
def _commands(code: str) -> list[list[str]]:
    """The argument lists of the ``etm`` commands in a bash block (``...`` placeholders dropped)."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if "etm" in words and words[0] in ("etm", "torchrun", "python"):
            start = words.index("etm")
            if words[0] != "etm" and words[start - 1] != "-m":
                continue
            out.append([w for w in words[start + 1:] if w != "..."])
    return out


def _bash_commands() -> list[tuple[str, list[str]]]:
    return [(f"{b.path}:{b.line}", args) for blocks in PAGES.values() for b in blocks if b.lang == "bash"
            for args in _commands(b.code)]


def test_every_etm_command_in_the_docs_parses() -> None:
    commands = _bash_commands()
    assert len(commands) >= 30
    parser = build_parser()
    for where, args in commands:
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{where}: `etm {' '.join(args)}` does not parse (see the usage error above)")


def _subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(action.choices)


def test_the_command_list_names_every_command() -> None:
    synopses = [b for blocks in PAGES.values() for b in blocks if b.marker == "synopsis"]
    assert len(synopses) == 1
    listed = {line.split()[1] for line in synopses[0].code.splitlines() if line.startswith("etm ")}
    assert listed == _subcommands()


def test_the_defaults_named_in_the_cli_guide_are_the_defaults() -> None:
    text = (ROOT / "docs" / "guide" / "cli.md").read_text(encoding="utf-8").replace("\n", " ")
    authors = re.search(r"these of their defaults \(`([^`]+)`", text)
    recipe = re.search(r"for topic quality \(\[the default recipe\]\([^)]*\)\): `([^`]+)`", text)
    assert authors and recipe, "docs/guide/cli.md lists the authors' defaults etm keeps, and the recipe's"
    pairs = authors.group(1).split() + recipe.group(1).split()
    named = dict(zip(pairs[::2], pairs[1::2]))
    assert len(named) >= 18
    train = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction").choices["train"]
    by_flag = {flag: action for action in train._actions for flag in action.option_strings}
    from etm.options import OPTIONS

    for flag, value in named.items():
        action = by_flag[flag]
        got = action.default
        if got is None:  # a default resolved later: the table says what it becomes
            assert OPTIONS[action.dest].unset.startswith(value), (flag, value, OPTIONS[action.dest].unset)
            continue
        expected = action.type(value) if callable(action.type) else type(got)(value)
        assert expected == got, f"docs/guide/cli.md says {flag} {value}, the parser's default is {got!r}"


# -- generated pages and the demo ------------------------------------------------------------------------------
def test_the_options_page_is_generated_from_the_options_table() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import generate
    finally:
        sys.path.remove(str(ROOT / "docs"))
    page = ROOT / "docs" / "guide" / "options.md"
    assert page.read_text(encoding="utf-8") == generate.options_page(), "run python docs/generate.py"
    from etm.options import OPTIONS

    for name, option in OPTIONS.items():
        assert f"`{option.config if not option.estimator else name}`" in page.read_text(encoding="utf-8")


def _makefile_demo() -> list[list[str]]:
    """The ``etm`` commands of the Makefile's demo target, spelled as a user types them."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*?\n((?:\t.*\n)+)", text, re.M).group(1)
    joined = recipe.replace("\\\n", " ")
    commands = []
    for part in re.split(r"&&|;", joined):
        words = shlex.split(part.replace('"$$src"', "../shared/data/20news-bydate.jsonl.gz")
                            .replace("$(BIN)/etm", "etm").replace("$(RUNS)", "runs"))
        if words[:1] == ["etm"]:
            commands.append(words[1:])
    assert len(commands) >= 3, recipe  # prepare, train, evaluate, and whatever the demo does next
    return commands


def _demo_blocks(marker: str) -> list[Block]:
    return [b for blocks in PAGES.values() for b in blocks if b.marker == marker and b.argument == "make-demo"]


def test_the_demo_commands_in_the_docs_are_the_makefiles() -> None:
    blocks = _demo_blocks("same-as")
    assert {b.path for b in blocks} == {"README.md", "docs/getting-started.md"}
    for block in blocks:
        assert _commands(block.code) == _makefile_demo(), f"{block.path}:{block.line} differs from the Makefile's demo"


def test_the_readme_python_example_is_the_quick_start_that_runs() -> None:
    """The README's example is skipped because the same code runs on the getting-started page."""
    readme = [b for b in PAGES["README.md"] if b.lang == "python"]
    started = [b.code for b in PAGES["docs/getting-started.md"] if b.lang == "python" and b.marker == "run"]
    assert readme and all(b.code in started for b in readme)


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")


def _form(line: str) -> str:
    """A printed line with its numbers and topic words taken out: what must not drift."""
    line = re.sub(r"^(\s*topic\s+\d+:).*", r"\1 WORDS", line.rstrip())
    return re.sub(r"\s+", " ", _NUMBER.sub("N", line)).strip()


def test_the_demo_output_in_the_docs_has_the_form_the_build_prints(tmp_path: Path, docs_news: Path,
                                                                  shared_data: Path, docs_bin: Path) -> None:
    """The demo's commands on 800 messages and 1 epoch print lines of the same form as the sample."""
    out = []
    env = _docs_env(docs_bin, shared_data)
    for args in _makefile_demo():
        args = [str(docs_news) if a.endswith("20news-bydate.jsonl.gz") else a for a in args]
        args = ["1" if prev == "--epochs" else a for prev, a in zip(["", *args], args)]
        args = [str(ROOT / a) if a.startswith("examples/") else a for a in args]
        proc = subprocess.run(["etm", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out += proc.stdout.splitlines() + proc.stderr.splitlines()
    printed = {_form(line) for line in out}
    (sample_block,) = _demo_blocks("output-of")
    sample = [line for line in sample_block.code.splitlines() if line.strip()]
    # Only a long run stops early; the short one runs its one epoch.
    missing = [line for line in sample if "early stopping" not in line
               and not any(_form(line) == p or (_form(line).endswith("...") and p.startswith(_form(line)[:-3]))
                           for p in printed)]
    assert not missing, f"sample lines the build no longer prints in this form: {missing}\nit printed: {out}"


# -- the README is a front page --------------------------------------------------------------------------------
def test_the_readme_is_a_front_page_whose_test_command_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert re.search(r"^make test\b", readme, re.M), "the README gives `make test`"
    ci = [line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-1].strip() == "make test", ".ci/run ends by running the README's test command"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
