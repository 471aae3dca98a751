"""The import-cycle check of `make lint` (module_cycles.py) on small trees
made for each case, and on the real src/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("module_cycles.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def run(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(src)], capture_output=True, text=True)


def tree(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp


def test_the_real_src_has_no_cycle():
    result = run(SRC)
    assert result.returncode == 0, result.stderr


def test_two_modules_that_import_each_other_fail_with_the_lines(tmp_path):
    src = tree(tmp_path, {
        "lib.rs": "pub mod a;\npub mod b;\n",
        "a.rs": "use crate::b::Thing;\n",
        "b.rs": "//! b\n\nuse crate::a;\n",
    })
    result = run(src)
    assert result.returncode == 1
    assert "import cycle among a, b" in result.stderr
    assert "a.rs:1" in result.stderr and "b.rs:3" in result.stderr


def test_a_cycle_through_a_third_module_fails(tmp_path):
    src = tree(tmp_path, {
        "a.rs": "fn f() { crate::b::g(); }\n",
        "b.rs": "use crate::{c, model};\n",
        "c.rs": "use crate::a::X;\n",
        "model.rs": "pub struct X;\n",
    })
    result = run(src)
    assert result.returncode == 1
    assert "import cycle among a, b, c" in result.stderr


def test_a_child_module_counts_as_its_parent(tmp_path):
    src = tree(tmp_path, {
        "disk/mod.rs": "mod ext4;\n",
        "disk/ext4.rs": "use crate::report::Status;\n",
        "report.rs": "use crate::disk::Disk;\n",
    })
    result = run(src)
    assert result.returncode == 1
    assert "import cycle among disk, report" in result.stderr


def test_comments_and_strings_are_not_imports(tmp_path):
    src = tree(tmp_path, {
        "a.rs": "//! See [`b`](crate::b).\nuse crate::b::Y;\n",
        "b.rs": "/// Unlike [`a`](crate::a).\n/* crate::a::Z */\nconst S: &str = \"crate::a\";\n",
    })
    result = run(src)
    assert result.returncode == 0, result.stderr
