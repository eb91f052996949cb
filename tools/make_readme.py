"""Write README.md from nbs/index.ipynb (what `nbdev-readme` does, which needs Quarto and so cannot run offline).

Usage: python tools/make_readme.py [--check]   (--check: exit 1 if README.md is out of date)
"""
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

def readme_text(nb_path=ROOT / 'nbs' / 'index.ipynb') -> str:
    "Markdown cells as they are, code cells fenced as Python, followed by their saved text output."
    nb, parts = nbformat.read(nb_path, as_version=4), []
    for cell in nb.cells:
        src = cell.source.strip()
        # figures beside the notebooks (nbs/measured/...) are linked from README at the repository root
        if cell.cell_type == 'markdown': parts.append(src.replace('](measured/', '](nbs/measured/'))
        elif cell.cell_type == 'code' and not src.startswith('#|'):
            parts.append(f'```python\n{src}\n```')
            text = ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', '') for o in cell.get('outputs', []))
            if text.strip(): parts.append('```\n' + text.rstrip() + '\n```')
    return '<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->\n\n' + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = readme_text(), ROOT / 'README.md'
    if '--check' in sys.argv:
        sys.exit(0 if readme.exists() and readme.read_text() == text else 1)
    readme.write_text(text)
    print(f'wrote {readme}')
