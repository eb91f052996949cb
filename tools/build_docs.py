"""Build the documentation site into _docs/ offline: nbdev's own notebook processing, then Sphinx + myst-nb.

    python tools/build_docs.py            # needs the package installed with its dev extra (pip install -e ".[dev]")

nbdev-docs needs Quarto, which cannot be installed offline. This does what nbdev-docs does before Quarto (show_doc
pages, hidden and export cells removed, the sidebar), then stages the processed notebooks for myst-nb, which does not
understand nbdev/Quarto markup (front matter, `#|` cell options, `output: asis` cells, symbol links to the published
site), and builds one HTML page per notebook with Sphinx. Outputs are those saved in the notebooks by running them.
Every API entry is also registered as a Python object (docs/_ext/h2t_site.py): the general index, the module index and
objects.inv for intersphinx list the whole API, from nbdev's own symbol index (h2t_nb/_modidx.py).
"""
import dataclasses
import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import nbformat
import yaml
from docutils.nodes import make_id

ROOT = Path(__file__).resolve().parents[1]
PROC, STAGE, BUILD, SITE = ROOT / '_proc', ROOT / '_sphinx_src', ROOT / '_sphinx_build', ROOT / '_docs'
COLAB_BADGE = 'https://colab.research.google.com/assets/colab-badge.svg'
OPTION = re.compile(r'^#\|\s*([\w-]+)\s*:?\s*(.*)$')


def readable_signature(sym, text, is_property=False):
    """show_doc's signature `text` for `sym` as a reader would write it: a class as `class Name(Base):` over the
    `__init__` it really takes (none when it only inherits one from torch or Python), a property marked as one.
    (call_parse's options are retyped before this, by `cli_types`.)"""
    if is_property: return '@property\n' + text
    if not inspect.isclass(sym): return text
    bases = ', '.join(('nn.' if b.__module__.startswith('torch.nn') else '') + b.__qualname__ for b in sym.__bases__ if b is not object)
    head = ('@dataclass\n' if dataclasses.is_dataclass(sym) else '') + f"class {sym.__name__}{f'({bases})' if bases else ''}:"
    init_owner = next(k for k in sym.__mro__ if '__init__' in vars(k))
    own_init = init_owner.__module__.split('.')[0] == sym.__module__.split('.')[0]
    if not own_init or not text.startswith(f'def {sym.__name__}(\n'): return head   # nothing of its own to show
    return head + '\n' + textwrap.indent(text.replace(f'def {sym.__name__}(', 'def __init__(', 1), '    ')


def cli_types(fn, docments):
    "call_parse's `Annotated[T, {...}]` parameters of `fn` retyped in `docments` (fastcore's dict) as what they hold."
    try: hints = typing.get_type_hints(fn, include_extras=True)
    except Exception: return   # an annotation that does not evaluate stays as written
    for name, hint in hints.items():
        if typing.get_origin(hint) is not typing.Annotated or name not in docments: continue
        base, *extras = typing.get_args(hint)
        options = next((e for e in extras if isinstance(e, dict)), {})
        docments[name]['anno'] = list[base] if options.get('nargs') not in (None, '?') else base


def readable_renderer():
    "nbdev's markdown renderer for show_doc, with the signatures of `readable_signature`."
    from fastcore.docments import DocmentText
    from nbdev.showdoc import BasicMarkdownRenderer

    class ReadableRenderer(BasicMarkdownRenderer):
        def __init__(self, sym, name=None, title_level=3, maxline=110):
            is_property = isinstance(sym, property)
            super().__init__(sym, name=name, title_level=title_level, maxline=maxline)
            if not isinstance(self.dm, DocmentText): return
            if callable(self.sym) and not inspect.isclass(self.sym): cli_types(self.sym, self.dm.dm)
            self.dm = readable_signature(self.sym, str(self.dm), is_property)
    return ReadableRenderer


def process_with_nbdev():
    "The same calls nbdev-docs makes before handing over to Quarto, with show_doc's signatures made readable."
    from nbdev.config import get_config
    from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml
    from nbdev.serve import proc_nbs
    import nbdev.doclinks
    import nbdev.showdoc
    # show_doc takes its default renderer from this module global at call time; proc_nbs runs the show_doc cells in
    # this process (n_workers=0), so the site gets readable signatures while notebooks keep nbdev's own renderer
    nbdev.showdoc.BasicMarkdownRenderer = readable_renderer()
    cfg = get_config()
    refresh_quarto_yml()
    nbdev.doclinks._build_modidx()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    proc_nbs(cfg.nbs_path, n_workers=0, force=True)   # force: re-process even when a notebook is unchanged
    return cfg


def api_objects(modidx):
    """page -> {'module': its module, 'symbols': {shown name: (full name, Python object type)}} from nbdev's symbol
    index, for the site's Python objects (objects.inv, general index); private names are left out."""
    pages = {}
    for module, syms in modidx['syms'].items():
        for full, (doc, _) in syms.items():
            name = full[len(module) + 1:]
            if any(part.startswith('_') for part in name.split('.')): continue
            page = pages.setdefault(Path(doc.split('#')[0]).stem, {'module': module, 'symbols': {}})
            page['symbols'][name] = (full, object_type(importlib.import_module(module), name))
    return pages


def object_type(module, name):
    "'function', 'class', 'method' or 'property': what `name` (e.g. `H2T.forward`) is in `module`."
    *owners, last = name.split('.')
    parent = module
    for part in owners: parent = getattr(parent, part)
    obj = inspect.getattr_static(parent, last)
    if inspect.isclass(obj): return 'class'
    if isinstance(obj, property): return 'property'
    return 'method' if owners else 'function'


def api_directive(full, objtype):
    "The MyST directive (docs/_ext/h2t_site.py) that registers one API entry as a Python object."
    return f'```{{api-object}} {full}\n:type: {objtype}\n```\n'


def local_links(text, doc_url, depth=0):
    "nbdev's symbol links point at the published site: make them relative (from a page `depth` folders down), anchors as Sphinx writes them."
    def fix(m):
        page, anchor = m.group(1), m.group(2)
        return f"({'../' * depth}{page}" + (f'#{make_id(anchor)}' if anchor else '') + ')'
    return re.sub(r'\(' + re.escape(doc_url.rstrip('/')) + r'/([\w./-]+\.html)(?:#([\w.-]+))?\)', fix, text)


CHAPTER = re.compile(r'(?<!\[)`((?:\d\d[a-z]?_\w+|tutorials/\w+|results|index))`(?!\])')


def chapter_links(text, pages, depth=0):
    "Backticked chapter names (`02_fusion`, `tutorials/cifar100_lt_h2t`) become links to their pages; unknown ones stay text."
    def link(m):
        page = pages.get(m.group(1))
        return f"[`{m.group(1)}`]({'../' * depth}{page}.html)" if page else m.group(0)
    return CHAPTER.sub(link, text)


def stage_notebook(src, doc_url, depth=0, api=None):
    """A processed notebook made readable for myst-nb; returns (output file name, notebook). `api` (from `api_objects`)
    names the Python objects of each page: its module under the title, each show_doc entry under its heading."""
    nb = nbformat.read(src, as_version=4)
    api = api or {}
    cells, out_name = [], src.stem
    for cell in nb.cells:
        cell.metadata.pop('execution', None)   # float timings: nbformat rejects them
        if cell.cell_type == 'raw' and cell.source.startswith('---'):   # Quarto front matter -> title + description
            meta = yaml.safe_load(cell.source.strip('-\n')) or {}
            out_name = Path(meta.get('output-file', src.name)).stem
            text = f"# {meta.get('title', out_name)}\n\n" + (f"> {meta['description']}\n" if meta.get('description') else '')
            if out_name in api: text += '\n' + api_directive(api[out_name]['module'], 'module')
            cells.append(nbformat.v4.new_markdown_cell(text)); continue
        if cell.cell_type == 'markdown':
            # the badge image comes from Google; the site ships its own copy so that it works offline
            cell.source = local_links(cell.source.replace(COLAB_BADGE, '../' * depth + 'colab-badge.svg'), doc_url, depth)
            cell.source = re.sub(r'::: \{\.callout-(\w+)\}', r':::{\1}', cell.source)
            cells.append(cell); continue
        if cell.cell_type != 'code': continue
        lines, options = cell.source.splitlines(), {}
        while lines and OPTION.match(lines[0]):
            key, value = OPTION.match(lines.pop(0)).groups(); options[key] = value.strip()
        if options.get('include') == 'false': continue
        if options.get('output') == 'asis':   # show_doc: its markdown becomes a real section (TOC, search, anchor)
            md = ''.join(o.get('data', {}).get('text/markdown', '') for o in cell.outputs)
            md = re.sub(r'^\s*---\s*\n', '', md)
            md = re.sub(r'\[source\]\(([^)]*)\)\{[^}]*\}', r'[source](\1){.source-link}', md)
            known = api.get(out_name, {}).get('symbols', {})
            md = re.sub(r'^(#+ (\S+)\n)', lambda m: m.group(1) + ('\n' + api_directive(*known[m.group(2)]) if m.group(2) in known else ''),
                        md, count=1, flags=re.M)
            cells.append(nbformat.v4.new_markdown_cell(local_links(md, doc_url, depth))); continue
        cell.source = '\n'.join(lines)
        tags = cell.metadata.setdefault('tags', [])
        if options.get('echo') == 'false': tags.append('remove-input')
        if options.get('output') == 'false': tags.append('remove-output')
        if options.get('code-fold') == 'true': tags.append('hide-input')
        # progress bars saved as stderr text are noise on a web page
        cell.outputs = [o for o in cell.get('outputs', []) if not (o.output_type == 'stream' and o.name == 'stderr')]
        cells.append(cell)
    nb.cells = cells
    return out_name, nb


def toctree(sidebar, names):
    "Hidden toctrees for the index page, in the sidebar's order: the chapters, the tutorials as their own group, then the indexes."
    entries = yaml.safe_load(sidebar.read_text())['website']['sidebar']['contents']
    flat = []
    def walk(items):
        for item in items:
            if isinstance(item, dict): walk(item.get('contents', []))
            elif str(item) != 'index.ipynb': flat.append(names[str(item)])
    walk(entries)
    group = lambda caption, pages: f'```{{toctree}}\n:hidden:\n:maxdepth: 1\n:caption: {caption}\n\n' + '\n'.join(pages) + '\n```\n'
    tutorials = [p for p in flat if p.startswith('tutorials/')]
    return (group('Chapters', [p for p in flat if p not in tutorials]) + ('\n' + group('Tutorials', tutorials) if tutorials else '')
            + '\n' + group('Reference', ['genindex', 'modindex']))   # Sphinx's general index and Python module index


def main():
    cfg = process_with_nbdev()
    doc_url = f"{cfg.doc_host.rstrip('/')}{cfg.doc_baseurl.rstrip('/')}" if cfg.get('doc_host') else 'https://h2t-nb.github.io/h2t_nb'
    shutil.rmtree(STAGE, ignore_errors=True); STAGE.mkdir()
    shutil.copy(ROOT / 'docs' / 'colab-badge.svg', STAGE)
    # figures of the measured evidence that markdown cells show by relative path (README's, from nbs/index.ipynb)
    shutil.copytree(ROOT / 'nbs' / 'measured', STAGE / 'measured', ignore=lambda d, names: [n for n in names if not n.endswith('.png')])
    from h2t_nb._modidx import d as modidx
    api = api_objects(modidx)
    names = {}
    for src in sorted(PROC.rglob('*.ipynb')):
        rel = src.relative_to(PROC)
        out_name, nb = stage_notebook(src, doc_url, depth=len(rel.parts) - 1, api=api)
        target = STAGE / rel.parent / f'{out_name}.ipynb'
        target.parent.mkdir(parents=True, exist_ok=True)
        names[str(rel)] = str((rel.parent / out_name).as_posix())
        nbformat.write(nb, target)
    chapters = {str(Path(rel).with_suffix('')): page for rel, page in names.items()}   # '02_fusion' -> 'fusion'
    for staged in STAGE.rglob('*.ipynb'):   # second pass: every page is named now
        nb = nbformat.read(staged, as_version=4)
        depth = len(staged.relative_to(STAGE).parts) - 1
        for cell in nb.cells:
            if cell.cell_type == 'markdown': cell.source = chapter_links(cell.source, chapters, depth)
        nbformat.write(nb, staged)
    # page -> its notebook, for the "edit this page" / "view source" buttons (the page names are not the notebooks')
    (STAGE / 'page_sources.json').write_text(json.dumps({page: f'{cfg.nbs_path.name}/{rel}' for rel, page in names.items()}, indent=1))
    index = STAGE / 'index.ipynb'
    nb = nbformat.read(index, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(toctree(PROC / 'sidebar.yml', names)))
    nbformat.write(nb, index)
    shutil.rmtree(BUILD / 'html', ignore_errors=True)
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-W', '--keep-going', '-c', str(ROOT / 'docs'),
           '-d', str(BUILD / 'doctrees'), str(STAGE), str(BUILD / 'html')]
    subprocess.run(cmd, check=True)
    shutil.rmtree(SITE, ignore_errors=True)
    shutil.copytree(BUILD / 'html', SITE)
    print(f'built {len(names)} pages into {SITE}')


if __name__ == '__main__':
    main()
