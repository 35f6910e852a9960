"""mkdocs hook: generates the reference parts of the docs from the code at build time.

A page marks where generated text goes with an HTML comment on a line of its own; the hook replaces it, so
the CLI and config reference, the registries and the list of reproductions cannot drift from the code:

    <!-- gen:cli -->            every ``trustmarl`` subcommand with its ``--help`` text (argparse)
    <!-- gen:config -->         every config key: type, default, section, meaning, allowed values
    <!-- gen:algorithms -->     the registered algorithms and their choice per seam
    <!-- gen:seams -->          the seam registries (advantages, ratios, objectives, update orders, critic inputs)
    <!-- gen:envs -->           the registered environments
    <!-- gen:figures -->        the ``trustmarl plot`` figures
    <!-- gen:experiments -->    every ``trustmarl reproduce`` experiment with its command and figure

Registered in ``mkdocs.yml`` (``hooks:``); it imports trustmarl, so the docs build needs the package
installed (``pip install -e '.[docs]'``).
"""
from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

MARKER = re.compile(r"^<!-- gen:([a-z]+) -->$", re.M)
DOCS = Path(__file__).resolve().parent


def _cell(text) -> str:
    """Text safe inside a Markdown table cell (no pipes, no raw HTML, one line)."""
    text = " ".join(str(text).split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ")


def gen_cli() -> str:
    from trustmarl.cli import build_parser
    os.environ["COLUMNS"] = "110"  # argparse wraps help to the terminal width: fixed, so builds are stable
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    helps = {a.dest: a.help for a in sub._choices_actions}
    out = ["```text", parser.format_help().rstrip(), "```", ""]
    for name, p in sub.choices.items():
        out += [f"### trustmarl {name}", "", _cell(helps.get(name, "")), "", "```text", p.format_help().rstrip(),
                "```", ""]
    return "\n".join(out)


def gen_config() -> str:
    from dataclasses import MISSING, fields

    from trustmarl.config import FAMILY_SECTIONS, Config, _base_type
    out = ["| key | type | default | section | meaning | allowed |", "|---|---|---|---|---|---|"]
    for f in fields(Config):
        m = f.metadata
        allowed = []
        if m.get("choices"):
            allowed.append(", ".join(map(str, m["choices"])))
        if m.get("low") is not None:
            allowed.append(("> " if m.get("low_open") else ">= ") + f"{m['low']:g}")
        if m.get("high") is not None:
            allowed.append(f"<= {m['high']:g}")
        default = f.default if f.default is not MISSING else ""
        out.append(f"| `{f.name}` | {_base_type(f).__name__} | `{default!r}` | {m['section']} | {_cell(m['doc'])} "
                   f"| {_cell('; '.join(allowed))} |")
    families = ", ".join(f"`{fam}` reads {', '.join(secs)}" for fam, secs in FAMILY_SECTIONS.items())
    out += ["", f"Sections by algorithm family: {families}."]
    return "\n".join(out)


def gen_algorithms() -> str:
    from trustmarl.algos import ALGORITHMS
    out = ["| algo | summary | reference | family | advantage | update order | defaults |", "|---|---|---|---|---|---|---|"]
    for a in ALGORITHMS.values():
        defaults = ", ".join(f"{k}={v}" for k, v in a.config_defaults.items())
        out.append(f"| `{a.name}` | {_cell(a.summary)} | {_cell(a.reference)} | {a.family} | {a.advantage} | "
                   f"{a.update_order} | {_cell(defaults)} |")
    return "\n".join(out)


def gen_seams() -> str:
    from trustmarl.seams.advantages import ADVANTAGES
    from trustmarl.seams.critic_inputs import CRITIC_INPUTS
    from trustmarl.seams.ratios import RATIOS
    from trustmarl.seams.surrogates import OBJECTIVES
    from trustmarl.seams.update_orders import UPDATE_ORDERS
    seams = [("advantage", "trustmarl.seams.advantages.ADVANTAGES", ADVANTAGES),
             ("probability ratio", "trustmarl.seams.ratios.RATIOS", RATIOS),
             ("surrogate (policy objective per ratio kind)", "trustmarl.seams.surrogates.OBJECTIVES", OBJECTIVES),
             ("update order", "trustmarl.seams.update_orders.UPDATE_ORDERS", UPDATE_ORDERS),
             ("critic input", "trustmarl.seams.critic_inputs.CRITIC_INPUTS", CRITIC_INPUTS)]
    out = ["| seam | registry | name | what it is |", "|---|---|---|---|"]
    for seam, registry, entries in seams:
        for name, fn in entries.items():
            out.append(f"| {seam} | `{registry}` | `{name}` | {_cell(_first_line(fn))} |")
    return "\n".join(out)


def gen_envs() -> str:
    from trustmarl.envs import ENVS
    out = ["| env | path | what | options |", "|---|---|---|---|"]
    for name, e in ENVS.items():
        out.append(f"| `{name}` | {'host' if e.host else 'JAX'} | {_cell(e.doc)} | {_cell(', '.join(e.options))} |")
    return "\n".join(out)


def gen_figures() -> str:
    from trustmarl.analysis.figures import FIGURES
    out = ["| figure | what it draws |", "|---|---|"]
    for name, fn in FIGURES.items():
        out.append(f"| `{name}` | {_cell(_first_line(fn))} |")
    return "\n".join(out)


def gen_experiments() -> str:
    from trustmarl.analysis.reproduce import EXPERIMENTS
    out = []
    for e in EXPERIMENTS.values():
        out += [f"### {e.name}", "", f"{_cell(e.doc)}.", "", f"```bash\ntrustmarl reproduce {e.name}\n```", ""]
        figure = DOCS / "figures" / f"{e.name}.png"
        if e.table is not None and e.figure:
            out += [f"Writes the figure `{e.name}.png` and Markdown tables, `{e.name}.md`; what was run is on "
                    f"[Measured results](results.md).", ""]
        elif e.table is not None:
            out += [f"Writes a Markdown table, `{e.name}.md`, instead of a figure; what was run is on "
                    f"[Measured results](results.md).", ""]
        if e.figure and figure.is_file():
            out += [f"![{e.name}](figures/{e.name}.png)", ""]
        elif e.figure and e.table is None:
            out += ["(no figure recorded yet)", ""]
    return "\n".join(out)


GENERATORS = {"cli": gen_cli, "config": gen_config, "algorithms": gen_algorithms, "seams": gen_seams,
              "envs": gen_envs, "figures": gen_figures, "experiments": gen_experiments}


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace every ``<!-- gen:NAME -->`` line; an unknown NAME stops the build."""
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: unknown generated section gen:{name}; "
                             f"known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()
    return MARKER.sub(replace, markdown)
