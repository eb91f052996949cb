"The docs staging step: nbdev/Quarto markup turned into what myst-nb understands."

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))
from build_docs import COLAB_BADGE, chapter_links, local_links, stage_notebook, toctree  # noqa: E402


def test_symbol_links_become_relative_with_sphinx_anchors():
    text = (
        'see [`h2t_fuse`](https://h2t-nb.github.io/h2t_nb/fusion.html#h2t_fuse) and '
        '[data](https://h2t-nb.github.io/h2t_nb/data.html)'
    )
    assert (
        local_links(text, 'https://h2t-nb.github.io/h2t_nb')
        == 'see [`h2t_fuse`](fusion.html#h2t-fuse) and [data](data.html)'
    )


def test_stage_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_raw_cell(
                "---\ndescription: 'One line.'\noutput-file: fusion.html\ntitle: The H2T operator\n---\n"
            ),
            nbformat.v4.new_markdown_cell(f'[![Open In Colab]({COLAB_BADGE})](https://colab.research.google.com/x)'),
            nbformat.v4.new_code_cell(
                '#| echo: false\n#| output: asis\nshow_doc(h2t_fuse)',
                outputs=[
                    nbformat.v4.new_output(
                        'execute_result',
                        {
                            'text/markdown': '---\n\n[source](https://x/fusion.py#L1)'
                            '{target="_blank" style="float:right"}\n\n### h2t_fuse\n'
                        },
                    )
                ],
            ),
            nbformat.v4.new_code_cell('#| include: false\nsecret = 1'),
            nbformat.v4.new_code_cell(
                '#| echo: false\nx = 1',
                outputs=[
                    nbformat.v4.new_output('stream', name='stderr', text='10%|█ | 1/10 [00:01<00:09, 1.0it/s]'),
                    nbformat.v4.new_output('stream', name='stdout', text='kept'),
                ],
            ),
        ]
    )
    src = tmp_path / '02_fusion.ipynb'
    nbformat.write(nb, src)
    name, staged = stage_notebook(src, 'https://h2t-nb.github.io/h2t_nb', depth=1)
    assert name == 'fusion'
    title, badge, api, code = staged.cells
    assert (
        title.cell_type == 'markdown'
        and title.source.startswith('# The H2T operator')
        and '> One line.' in title.source
    )
    assert '../colab-badge.svg' in badge.source and COLAB_BADGE not in badge.source
    assert (
        api.cell_type == 'markdown'
        and api.source.startswith('[source](https://x/fusion.py#L1){.source-link}')
        and '### h2t_fuse' in api.source
    )
    assert code.source == 'x = 1' and code.metadata['tags'] == ['remove-input']
    assert [o.name for o in code.outputs] == ['stdout']  # the progress bar is gone, the printed text stays


def test_tutorials_get_their_own_sidebar_group(tmp_path):
    sidebar = tmp_path / 'sidebar.yml'
    sidebar.write_text(
        "website:\n  sidebar:\n    contents:\n      - index.ipynb\n      - 00_data.ipynb\n"
        "      - section: tutorials\n        contents:\n          - tutorials/cifar100_lt_h2t.ipynb\n"
    )
    text = toctree(sidebar, {'00_data.ipynb': 'data', 'tutorials/cifar100_lt_h2t.ipynb': 'tutorials/cifar100_lt_h2t'})
    chapters, tutorials, reference = text.split('```\n\n')
    assert ':caption: Chapters' in chapters and 'data' in chapters and 'tutorials/' not in chapters
    assert ':caption: Tutorials' in tutorials and 'tutorials/cifar100_lt_h2t' in tutorials
    assert ':caption: Reference' in reference and 'genindex\nmodindex' in reference  # the general and module indexes


def test_chapter_references_become_page_links():
    pages = {'02_fusion': 'fusion', 'tutorials/cifar100_lt_h2t': 'tutorials/cifar100_lt_h2t', 'results': 'results'}
    text = 'see `02_fusion`, `tutorials/cifar100_lt_h2t`, `results`, `99_nothing`, `h2t_fuse` and [`02_fusion`](x.html)'
    assert chapter_links(text, pages) == (
        'see [`02_fusion`](fusion.html), [`tutorials/cifar100_lt_h2t`](tutorials/cifar100_lt_h2t.html), '
        '[`results`](results.html), `99_nothing`, `h2t_fuse` and [`02_fusion`](x.html)'
    )
    assert chapter_links('`02_fusion`', pages, depth=1) == '[`02_fusion`](../fusion.html)'


# --- API entries: readable signatures, Python objects for objects.inv and the general index ---
import dataclasses  # noqa: E402
import subprocess  # noqa: E402
import zlib  # noqa: E402
from typing import Annotated  # noqa: E402

import torch.nn as nn  # noqa: E402
from fastcore.docments import DocmentText  # noqa: E402

from build_docs import api_directive, api_objects, cli_types, object_type, readable_signature  # noqa: E402


def test_cli_options_read_as_the_values_they_hold():
    def cli(
        seeds: Annotated[int, {'nargs': '+'}] = None,  # one run per seed
        amp: Annotated[str, {'choices': ['bf16', 'fp16']}] = None,
        out: str = 'runs',
    ): ...

    text = DocmentText(cli, docstring=False)
    cli_types(cli, text.dm)
    assert (
        'Annotated' not in str(text)
        and 'seeds:list[int]=None, # one run per seed' in str(text)
        and 'amp:str=None' in str(text)
    )


def test_classes_read_as_classes_over_their_own_init():
    class Head(nn.Module):
        def __init__(self, width: int = 4):
            super().__init__()

    class Plain(nn.Module):
        pass  # only nn.Module's (*args, **kwargs): nothing of its own to show

    @dataclasses.dataclass
    class Config:
        epochs: int = 200

    head = readable_signature(Head, str(DocmentText(Head, docstring=False)))
    assert head == 'class Head(nn.Module):\n    def __init__(\n        width:int=4\n    ):', head
    assert readable_signature(Plain, str(DocmentText(Plain, docstring=False))) == 'class Plain(nn.Module):'
    assert readable_signature(Config, str(DocmentText(Config, docstring=False))).startswith(
        '@dataclass\nclass Config:\n    def __init__(\n        epochs:int=200'
    )
    assert readable_signature(len, 'def len(obj):') == 'def len(obj):'
    assert readable_signature(None, 'def n():', is_property=True) == '@property\ndef n():'


def test_api_objects_come_from_nbdevs_symbol_index():
    modidx = {
        'syms': {
            'h2t_nb.fusion': {
                'h2t_nb.fusion.h2t_fuse': ('fusion.html#h2t_fuse', ''),
                'h2t_nb.fusion.H2T': ('fusion.html#h2t', ''),
                'h2t_nb.fusion.H2T.forward': ('fusion.html#h2t.forward', ''),
                'h2t_nb.fusion._private': ('fusion.html#_private', ''),
            },
            'h2t_nb.data': {'h2t_nb.data.LTImageDataset.num_classes': ('data.html#ltimagedataset.num_classes', '')},
        }
    }
    api = api_objects(modidx)
    assert api['fusion'] == {
        'module': 'h2t_nb.fusion',
        'symbols': {
            'h2t_fuse': ('h2t_nb.fusion.h2t_fuse', 'function'),
            'H2T': ('h2t_nb.fusion.H2T', 'class'),
            'H2T.forward': ('h2t_nb.fusion.H2T.forward', 'method'),
        },
    }
    assert api['data']['symbols']['LTImageDataset.num_classes'][1] == 'property'
    import h2t_nb.fusion

    assert object_type(h2t_nb.fusion, 'check_ratio') == 'function'


def test_show_doc_entries_and_pages_are_registered(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_raw_cell("---\noutput-file: fusion.html\ntitle: The H2T operator\n---\n"),
            nbformat.v4.new_code_cell(
                '#| output: asis\nshow_doc(h2t_fuse)',
                outputs=[
                    nbformat.v4.new_output(
                        'execute_result',
                        {
                            'text/markdown': '---\n\n### h2t_fuse\n\n```python\n'
                            'def h2t_fuse(fused, fusing, ratio):\n```\n'
                        },
                    )
                ],
            ),
            nbformat.v4.new_code_cell(
                '#| output: asis\nshow_doc(unknown)',
                outputs=[nbformat.v4.new_output('execute_result', {'text/markdown': '### unknown\n'})],
            ),
        ]
    )
    src = tmp_path / '02_fusion.ipynb'
    nbformat.write(nb, src)
    api = {'fusion': {'module': 'h2t_nb.fusion', 'symbols': {'h2t_fuse': ('h2t_nb.fusion.h2t_fuse', 'function')}}}
    _, staged = stage_notebook(src, 'https://h2t-nb.github.io/h2t_nb', api=api)
    title, entry, unknown = staged.cells
    assert title.source.endswith(api_directive('h2t_nb.fusion', 'module'))
    assert entry.source.startswith(
        '### h2t_fuse\n\n' + api_directive('h2t_nb.fusion.h2t_fuse', 'function') + '\n```python'
    )
    assert unknown.source == '### unknown\n'  # not in the index: no object


def test_sphinx_extension_writes_objects_index_and_links(tmp_path):
    "docs/_ext/h2t_site.py in a real Sphinx build: objects.inv, the general index, edit links and full-size figures."
    root = Path(__file__).resolve().parents[1]
    src, out = tmp_path / 'src', tmp_path / 'html'
    src.mkdir()
    (src / 'conf.py').write_text(
        f"import sys; sys.path.insert(0, {str(root / 'docs' / '_ext')!r})\n"
        "extensions = ['myst_parser', 'h2t_site']\nhtml_theme = 'furo'\nexclude_patterns = ['*.json']\n"
        "html_theme_options = {'source_repository': 'https://github.com/o/r/', 'source_branch': 'main', "
        "'top_of_page_buttons': ['view', 'edit']}\n"
    )
    (src / 'page_sources.json').write_text('{"fusion": "nbs/02_fusion.ipynb"}')
    (src / 'index.md').write_text('# Home\n\n```{toctree}\nfusion\n```\n')
    (src / 'figure.svg').write_bytes((root / 'docs' / '_static' / 'favicon.svg').read_bytes())
    (src / 'fusion.md').write_text(
        f'# Fusion\n\n{api_directive("h2t_nb.fusion", "module")}\n## h2t_fuse\n\n'
        f'{api_directive("h2t_nb.fusion.h2t_fuse", "function")}\n## '
        f'H2T.forward\n\n{api_directive("h2t_nb.fusion.H2T.forward", "method")}\n'
        '![a figure](figure.svg)\n'
    )
    subprocess.run([sys.executable, '-m', 'sphinx', '-q', '-W', '-b', 'html', str(src), str(out)], check=True)
    header, _, body = (out / 'objects.inv').read_bytes().partition(b'zlib.\n')
    lines = set(zlib.decompress(body).decode().splitlines())
    assert 'h2t_nb.fusion.h2t_fuse py:function 1 fusion.html#$ -' in lines
    assert 'h2t_nb.fusion.H2T.forward py:method 1 fusion.html#$ -' in lines
    assert 'h2t_nb.fusion py:module 0 fusion.html#module-$ -' in lines
    page, index = (out / 'fusion.html').read_text(), (out / 'genindex.html').read_text()
    assert (
        'id="h2t_nb.fusion.h2t_fuse"' in page
        and 'href="fusion.html#h2t_nb.fusion.h2t_fuse"' in index
        and 'forward() (h2t_nb.fusion.H2T method)' in index
    )
    assert (
        'href="https://github.com/o/r/edit/main/nbs/02_fusion.ipynb"' in page
        and 'href="https://github.com/o/r/blob/main/nbs/02_fusion.ipynb"' in page
    )
    assert 'class="full-size-image' in page and 'href="_images/figure.svg"' in page
    assert 'edit/main/nbs' not in (out / 'index.html').read_text()  # a page without a notebook gets no edit button


def test_other_sphinx_projects_link_to_the_api_with_intersphinx(tmp_path):
    """README's promise: intersphinx_mapping = {'h2t_nb': (site, None)} resolves :py:func:`h2t_nb.fusion.h2t_fuse` to
    its entry."""
    root = Path(__file__).resolve().parents[1]
    site, theirs = tmp_path / 'site', tmp_path / 'theirs'
    site.mkdir()
    theirs.mkdir()
    (site / 'conf.py').write_text(
        f"import sys; sys.path.insert(0, {str(root / 'docs' / '_ext')!r})\nextensions = ['myst_parser', 'h2t_site']\n"
    )
    (site / 'index.md').write_text('# Home\n\n```{toctree}\nfusion\n```\n')
    (site / 'fusion.md').write_text(f'# Fusion\n\n## h2t_fuse\n\n{api_directive("h2t_nb.fusion.h2t_fuse", "function")}')
    subprocess.run(
        [sys.executable, '-m', 'sphinx', '-q', '-W', '-b', 'html', str(site), str(tmp_path / 'site_html')], check=True
    )
    (theirs / 'conf.py').write_text(
        "extensions = ['myst_parser', 'sphinx.ext.intersphinx']\n"
        f"intersphinx_mapping = {{'h2t_nb': ('https://h2t-nb.github.io/h2t_nb/', "
        f"{str(tmp_path / 'site_html' / 'objects.inv')!r})}}\n"
    )
    (theirs / 'index.md').write_text('# Their project\n\nWe fuse features with {py:func}`h2t_nb.fusion.h2t_fuse`.\n')
    subprocess.run(
        [sys.executable, '-m', 'sphinx', '-q', '-W', '-b', 'html', str(theirs), str(tmp_path / 'theirs_html')],
        check=True,
    )
    assert (
        'href="https://h2t-nb.github.io/h2t_nb/fusion.html#h2t_nb.fusion.h2t_fuse"'
        in (tmp_path / 'theirs_html' / 'index.html').read_text()
    )
