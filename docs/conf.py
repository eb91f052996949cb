# Sphinx configuration for the h2t_nb site, built offline by tools/build_docs.py from nbdev's processed notebooks.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / '_ext'))
project = 'h2t_nb'
author = 'h2t_nb team'
copyright = '2026, h2t_nb team (Apache-2.0)'
extensions = ['myst_nb', 'sphinx-mathjax-offline',   # the module name really has dashes; MathJax ships with the site
              'sphinx_copybutton',                    # a copy button on every code block
              'h2t_site']                             # docs/_ext: API objects (objects.inv, index), edit links, full-size figures
exclude_patterns = ['_build', '**.ipynb_checkpoints', '*.yml', '*.json']
nb_execution_mode = 'off'                             # the saved outputs of running the notebooks; never re-executed
nb_render_markdown_format = 'myst'                    # math inside show_doc and markdown outputs
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'attrs_inline']
myst_all_links_external = True                        # keep page.html#anchor links as plain links
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type']
html_theme = 'furo'
html_title = 'h2t_nb'
html_static_path = ['_static']
html_css_files = ['h2t.css']
html_js_files = ['search_snippets.js']
html_favicon = '_static/favicon.svg'
REPO = 'https://github.com/h2t-nb/h2t_nb'
html_theme_options = {
    'announcement': f'<a href="{REPO}">h2t_nb on GitHub</a> · <a href="{REPO}/issues/new">report an issue</a>',
    'source_repository': f'{REPO}/', 'source_branch': 'main', 'source_directory': 'nbs/',
    'top_of_page_buttons': ['view', 'edit'],   # to the page's notebook on GitHub (h2t_site.edit_links)
}
copybutton_prompt_text = r'\$ |>>> '                  # copy commands without their prompts
copybutton_prompt_is_regexp = True
