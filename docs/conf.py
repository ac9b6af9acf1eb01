"""Sphinx configuration of the course site (``make docs``; see docs/course/site.md).

The source folder is the repository root (``sphinx-build -c docs . build/site``) so that the
tutorials (``notebooks/NN_name.py``) and the pages under ``docs/`` keep the relative links
they have on GitHub; ``include_patterns`` picks exactly those files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pygments.lexers.special import TextLexer
from sphinx import addnodes
from sphinx.transforms import SphinxTransform

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tools.course (the notebook reader) and the packages

project = "FedDLR toolkit"
author = "the FedDLR toolkit engineers"
copyright = "2026, " + author  # noqa: A001 (Sphinx's name)

extensions = [
    "myst_nb",  # Markdown (MyST) pages and notebooks, math with MathJax
    "sphinx.ext.autodoc",
    "numpydoc",  # the numpydoc docstrings of the packages
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into the site: it renders offline
]

root_doc = "docs/index"
include_patterns = ["docs/**/*.md", "docs/*.md", "notebooks/[0-9]*.py"]
exclude_patterns = [".venv", "build", "runs", ".git", "**/.ipynb_checkpoints",
                    "docs/results/*.md", "docs/figures/**/*.md"]
suppress_warnings = ["myst.header"]

# The tutorials: jupytext sources, read as their solution version (tools/course.py).
# make test executes them once (nbmake, build/course/solutions); the reader reuses those
# outputs and only a notebook without a current executed copy runs here.
nb_custom_formats = {".py": ["tools.course.site_reads", {}, False]}
nb_execution_mode = "force"
nb_execution_timeout = 240
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# API reference: the public names of each package (their __all__), numpydoc style.
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

html_theme = "furo"
html_title = "FedDLR toolkit: a course on communication-efficient federated learning"
html_static_path: list[str] = []


class RepositoryFileLinks(SphinxTransform):
    """A link to a repository file that is not a page (``README.md``, ``fl_sim/config.py``)
    becomes a download of that file instead of a broken page reference; a link to a file
    that does not exist stays a warning (an error with ``-W``)."""

    default_priority = 100

    def apply(self, **kwargs: object) -> None:
        srcdir = Path(self.env.srcdir)
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or node.get("refdomain") != "doc":
                continue
            target = node["reftarget"]
            if target in self.env.found_docs:
                continue
            files = [srcdir / (target + suffix) for suffix in self.config.source_suffix]
            existing = [f for f in files if f.is_file()]
            if not existing:
                continue
            link = addnodes.download_reference(
                refdomain=None, reftarget="/" + existing[0].relative_to(srcdir).as_posix(),
                refdoc=node.get("refdoc", self.env.docname), reftype="myst",
                refexplicit=True)
            link.extend(node.children)
            node.replace_self(link)


def setup(app):
    app.add_transform(RepositoryFileLinks)
    app.add_lexer("mermaid", TextLexer)  # the architecture diagram shows as its source text
