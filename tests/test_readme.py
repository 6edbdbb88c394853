"""The README stays true to the code: its example prints what it says, its links lead
somewhere, its results come from the record it names, and its line counts are current.

Run as a script, `python tests/test_readme.py` prints the line counts the README's
"Read the code in this order" table should show today.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
README = PROJECT_ROOT / "README.md"
PACKAGE = PROJECT_ROOT / "ack_numpy"

# The lines column tells a reader how long a row takes to read, not an exact count: it must
# stay within this factor of the real count, so ordinary edits never fail the test, while a
# row whose files doubled or halved (or a number typed wrong) does.
SIZE_FACTOR = 1.5


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text under the `## title` heading, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme_text(), re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


# ------------------------------------------------------------------ the example
def example_code() -> str:
    match = re.search(r"^```python\n(.*?)^```", section("A dozen lines"), re.M | re.S)
    assert match, "README.md's 'A dozen lines' section has no ```python block"
    return match.group(1)


def expected_prints(code: str) -> list[str]:
    """The comment after each top-level `print(...)`: exactly the line it prints."""
    expected = []
    for line in code.splitlines():
        if line.startswith("print("):
            match = re.match(r"print\(.*\)\s+# (.*)$", line)
            assert match, f"README example: this print has no '# output' comment: {line}"
            expected.append(match.group(1))
    return expected


def trained_layer_code() -> str:
    """The block in 'Ask the kernels a question' that loads the trained first layer."""
    match = re.search(r"^```python\n(.*?)^```", section("Ask the kernels a question"), re.M | re.S)
    assert match, "README.md's 'Ask the kernels a question' section has no ```python block"
    return match.group(1)


@pytest.mark.parametrize("code, least", [(example_code, 3), (trained_layer_code, 1)],
                         ids=["a-dozen-lines", "the-trained-layer"])
def test_readme_example_prints_what_its_comments_say(tmp_path, code, least):
    code = code()
    expected = expected_prints(code)
    assert len(expected) >= least, "README example should print shapes and values"
    # A fresh process in another folder: the example must not depend on the working directory.
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"README example failed:\n{result.stderr}"
    printed = result.stdout.splitlines()
    assert len(printed) == len(expected), f"README example printed {len(printed)} lines, " \
                                          f"its comments show {len(expected)}:\n{result.stdout}"
    for number, (got, want) in enumerate(zip(printed, expected), start=1):
        assert got == want, (f"README example, print {number}: it prints\n  {got}\nbut the README "
                             f"says\n  {want}\nupdate the comment in README.md (or fix the code)")


# ------------------------------------------------------------------ links and records
@pytest.mark.parametrize("page", ["README.md", "data/README.md", "data/bench/README.md"])
def test_readme_links_and_pictures_exist(page):
    path = PROJECT_ROOT / page
    targets = re.findall(r"\]\(([^)#\s]+)[^)]*\)", path.read_text(encoding="utf-8"))
    local = [t for t in targets if "://" not in t]
    assert local, f"{page} links to no file of the project"
    missing = [t for t in local if not (path.parent / t).exists()]
    assert not missing, f"{page} links to files that do not exist: {missing}"


def results_block() -> tuple[str, list[Path]]:
    match = re.search(r"<!-- results: begin \(numbers from (.+?)\) -->(.*?)<!-- results: end -->",
                      readme_text(), re.S)
    assert match, ("README.md's results must sit between '<!-- results: begin (numbers from RECORD) -->' "
                   "(or 'A and B', 'A, B and C') and '<!-- results: end -->', naming the records they come from")
    names = re.split(r", | and ", match.group(1))
    return match.group(2), [PROJECT_ROOT / name for name in names]


def test_readme_results_come_from_the_record_they_name():
    block, records = results_block()
    for record in records:
        assert record.exists(), f"README.md's results name {record}, which does not exist"
    source = "\n".join(record.read_text(encoding="utf-8") for record in records)
    # Every number with a decimal point or a thousands comma (accuracies, parameters, ratios).
    numbers = re.findall(r"\d{1,3}(?:,\d{3})+|\d+\.\d+", block)
    assert numbers, "README.md's results section shows no numbers"
    # a number ends where no digit, ",digit" or ".digit" follows ("p = 0.93, exact" ends at 0.93)
    absent = sorted({n for n in numbers if not re.search(rf"(?<![\d.,]){re.escape(n)}(?!\d|,\d|\.\d)", source)})
    names = " or ".join(str(record.relative_to(PROJECT_ROOT)) for record in records)
    assert not absent, f"README.md's results show numbers that {names} does not contain: {absent}"


# ------------------------------------------------------------------ the reading order
def count_lines(path: Path) -> int:
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files
               if "__pycache__" not in f.parts)


def reading_order() -> list[tuple[str, list[Path], int]]:
    """(row label, the files it names, the README's count) for each row of the table.

    A row names one or more paths in backticks; a bare name (`losses.py`) lives in the
    folder of the row's first path; a folder counts all its .py files."""
    rows = []
    for line in section("Read the code in this order").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[-1].isdigit():
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        assert names, f"README reading order: no `path` in the first cell of: {line}"
        first = PROJECT_ROOT / names[0]
        folder = first if names[0].endswith("/") else first.parent
        paths = [first] + [folder / n if "/" not in n else PROJECT_ROOT / n for n in names[1:]]
        rows.append((", ".join(names), paths, int(cells[-1])))
    assert rows, "README.md's 'Read the code in this order' table has no rows with a line count"
    return rows


def test_readme_reading_order_names_existing_files():
    missing = [str(p.relative_to(PROJECT_ROOT)) for _, paths, _ in reading_order()
               for p in paths if not p.exists()]
    assert not missing, f"README.md's reading order names files that do not exist: {missing}"


def test_readme_reading_order_covers_the_engine():
    """Every engine module (everything in ack_numpy/ but lab/, `__main__.py` and the
    `__init__.py` files, which only gather names) is in a row, so a new module cannot hide
    from the reader."""
    listed = set()
    for _, paths, _ in reading_order():
        for p in paths:
            listed |= set(p.rglob("*.py")) if p.is_dir() else {p}
    engine = {f for f in PACKAGE.rglob("*.py") if "__pycache__" not in f.parts
              and "lab" not in f.relative_to(PACKAGE).parts
              and f.name not in ("__init__.py", "__main__.py")}
    unlisted = sorted(str(f.relative_to(PROJECT_ROOT)) for f in engine - listed)
    assert not unlisted, (f"README.md's 'Read the code in this order' table does not mention {unlisted}: "
                          f"add a row (file | what it holds | lines) where it belongs in the data flow")


def test_readme_line_counts_give_the_size_of_each_row():
    stale = []
    for label, paths, said in reading_order():
        actual = sum(count_lines(p) for p in paths if p.exists())
        if not actual / SIZE_FACTOR <= said <= actual * SIZE_FACTOR:
            stale.append(f"{label}: README says {said}, it has {actual}")
    assert not stale, ("README.md's line counts are far from the files' size (" + "; ".join(stale) + "). "
                       "Update the 'lines' column of 'Read the code in this order'; "
                       "`python tests/test_readme.py` prints every current count.")


if __name__ == "__main__":
    for label, paths, said in reading_order():
        print(f"{sum(count_lines(p) for p in paths if p.exists()):5d}  (README: {said:4d})  {label}")
