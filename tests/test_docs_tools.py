"The docs staging step: nbdev/Quarto markup turned into what myst-nb understands."
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'tools'))
from build_docs import COLAB_BADGE, chapter_links, local_links, stage_notebook, toctree   # noqa: E402


def test_symbol_links_become_relative_with_sphinx_anchors():
    text = 'see [`h2t_fuse`](https://h2t-nb.github.io/h2t_nb/fusion.html#h2t_fuse) and [data](https://h2t-nb.github.io/h2t_nb/data.html)'
    assert local_links(text, 'https://h2t-nb.github.io/h2t_nb') == 'see [`h2t_fuse`](fusion.html#h2t-fuse) and [data](data.html)'


def test_stage_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_raw_cell("---\ndescription: 'One line.'\noutput-file: fusion.html\ntitle: The H2T operator\n---\n"),
        nbformat.v4.new_markdown_cell(f'[![Open In Colab]({COLAB_BADGE})](https://colab.research.google.com/x)'),
        nbformat.v4.new_code_cell('#| echo: false\n#| output: asis\nshow_doc(h2t_fuse)', outputs=[nbformat.v4.new_output(
            'execute_result', {'text/markdown': '---\n\n[source](https://x/fusion.py#L1){target="_blank" style="float:right"}\n\n### h2t_fuse\n'})]),
        nbformat.v4.new_code_cell('#| include: false\nsecret = 1'),
        nbformat.v4.new_code_cell('#| echo: false\nx = 1', outputs=[nbformat.v4.new_output('stream', name='stderr', text='10%|█ | 1/10 [00:01<00:09, 1.0it/s]'),
                                                           nbformat.v4.new_output('stream', name='stdout', text='kept')]),
    ])
    src = tmp_path / '02_fusion.ipynb'; nbformat.write(nb, src)
    name, staged = stage_notebook(src, 'https://h2t-nb.github.io/h2t_nb', depth=1)
    assert name == 'fusion'
    title, badge, api, code = staged.cells
    assert title.cell_type == 'markdown' and title.source.startswith('# The H2T operator') and '> One line.' in title.source
    assert '../colab-badge.svg' in badge.source and COLAB_BADGE not in badge.source
    assert api.cell_type == 'markdown' and api.source.startswith('[source](https://x/fusion.py#L1){.source-link}') and '### h2t_fuse' in api.source
    assert code.source == 'x = 1' and code.metadata['tags'] == ['remove-input']
    assert [o.name for o in code.outputs] == ['stdout']   # the progress bar is gone, the printed text stays


def test_tutorials_get_their_own_sidebar_group(tmp_path):
    sidebar = tmp_path / 'sidebar.yml'
    sidebar.write_text("website:\n  sidebar:\n    contents:\n      - index.ipynb\n      - 00_data.ipynb\n"
                       "      - section: tutorials\n        contents:\n          - tutorials/cifar100_lt_h2t.ipynb\n")
    text = toctree(sidebar, {'00_data.ipynb': 'data', 'tutorials/cifar100_lt_h2t.ipynb': 'tutorials/cifar100_lt_h2t'})
    chapters, tutorials = text.split('```\n\n')
    assert ':caption: Chapters' in chapters and 'data' in chapters and 'tutorials/' not in chapters
    assert ':caption: Tutorials' in tutorials and 'tutorials/cifar100_lt_h2t' in tutorials


def test_chapter_references_become_page_links():
    pages = {'02_fusion': 'fusion', 'tutorials/cifar100_lt_h2t': 'tutorials/cifar100_lt_h2t', 'results': 'results'}
    text = 'see `02_fusion`, `tutorials/cifar100_lt_h2t`, `results`, `99_nothing`, `h2t_fuse` and [`02_fusion`](x.html)'
    assert chapter_links(text, pages) == ('see [`02_fusion`](fusion.html), [`tutorials/cifar100_lt_h2t`](tutorials/cifar100_lt_h2t.html), '
                                          '[`results`](results.html), `99_nothing`, `h2t_fuse` and [`02_fusion`](x.html)')
    assert chapter_links('`02_fusion`', pages, depth=1) == '[`02_fusion`](../fusion.html)'
