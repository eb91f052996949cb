"""Open every page of the built site (_docs/) in headless Chromium and check it as a reader would.

    python tools/check_site.py [--out DIR]     # after tools/build_docs.py; needs Debian's chromium (apt-get install chromium)

Serves _docs/ on a free localhost port, drives /usr/bin/chromium (headless, --no-sandbox --disable-gpu) through
Playwright, and asserts for every page: the title, that every image has loaded, that the sidebar links to every page,
and, for each exported symbol of the package, an API entry on its module's page. The search page must find `h2t_fuse`.
Every page also needs a favicon, copy buttons on its code, the "report an issue" link and the Tutorials group in its
sidebar, and nothing it requests may fail. API entries show readable signatures (a class as `class Name(Base):`, no
call_parse `Annotated[...]`); no code block is clipped at 1280 px or on a 390 px phone; every API object is in
objects.inv and the general index and points at an anchor that exists; every page has "edit this page" / "view source"
links to its notebook; every figure opens at full size on click; all tables share one style; search snippets carry no
raw LaTeX. Full-page screenshots of every page are saved to --out (default _site_check/).
"""
import argparse
import functools
import http.server
import json
import re
import threading
import zlib
from pathlib import Path

from docutils.nodes import make_id
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / '_docs'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--no-first-run', '--disable-sync']


def exported_symbols():
    """module page -> {shown name (`h2t_fuse`, `H2T.forward`): (full name, object type)} for every public function, class,
    method and property: the same table the build registers as the site's Python objects (build_docs.api_objects)."""
    from build_docs import api_objects   # tools/ is on the path: this script runs as python tools/check_site.py
    from h2t_nb._modidx import d
    return {f'{page}.html': entry['symbols'] for page, entry in api_objects(d).items()}


def inventory(path):
    "objects.inv as {name: (domain:role, uri)}: four header lines, then zlib-compressed `name domain:role prio uri dispname` lines."
    header, _, body = path.read_bytes().partition(b'zlib.\n')
    if not header.startswith(b'# Sphinx inventory version 2'): raise SystemExit(f'check_site: {path} is not a Sphinx inventory')
    objects = {}
    for line in zlib.decompress(body).decode().splitlines():
        name, role, _prio, uri, _ = re.match(r'(.+?)\s+(\S+:\S+)\s+(-?\d+)\s+(\S*)\s+(.*)', line).groups()
        objects[name] = (role, uri.replace('$', name) if uri.endswith('$') else uri)
    return objects


# one style for every table: pandas' own HTML tables look like the site's Markdown tables
TABLE_STYLE = """t => { const cell = t.querySelector('td'), head = t.querySelector('th'), s = getComputedStyle(t);
  return [s.borderCollapse, s.boxShadow, head ? getComputedStyle(head).backgroundColor : '',
          cell ? getComputedStyle(cell).borderBottom : '', cell ? getComputedStyle(cell).fontSize : ''].join(' | ') }"""
LATEX = re.compile(r'\\[A-Za-z]+|\\[(\[]|\$')


def serve(directory):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=str(ROOT / '_site_check'), help='folder for the screenshots')
    parser.add_argument('--chromium', default='/usr/bin/chromium')
    args = parser.parse_args()
    if not (SITE / 'index.html').is_file(): raise SystemExit('check_site: no _docs/index.html: run python tools/build_docs.py first.')
    if not Path(args.chromium).is_file(): raise SystemExit(f'check_site: {args.chromium} not found: apt-get install -y chromium')
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    pages = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob('*.html')
                   if not p.relative_to(SITE).parts[0].startswith('_') and p.name not in ('genindex.html', 'py-modindex.html', 'search.html'))
    api = exported_symbols()
    objects = inventory(SITE / 'objects.inv')
    python_objects = {name: uri for name, (role, uri) in objects.items() if role in ('py:function', 'py:class', 'py:method', 'py:property')}
    missing = sorted(full for syms in api.values() for full, _ in syms.values() if full not in python_objects)
    server = serve(SITE)
    base = f'http://127.0.0.1:{server.server_port}/'
    problems, checked, anchors, table_styles = [], 0, {}, {}
    if missing: problems.append(f'objects.inv lacks {len(missing)} API objects, e.g. {missing[:3]}')
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={'width': 1280, 'height': 900})
        external = []
        page.on('request', lambda r: external.append(r.url) if not r.url.startswith(base) and not r.url.startswith('data:') else None)
        failed = []   # anything the site itself refers to but does not have (a missing favicon is a 404 on every page)
        page.on('response', lambda r: failed.append(r.url) if r.status >= 400 else None)
        for name in pages:
            page.goto(base + name, wait_until='networkidle')
            title = page.title()
            if not title or 'h2t_nb' not in title: problems.append(f'{name}: title {title!r}')
            broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            if broken: problems.append(f'{name}: images that did not load: {broken}')
            headings = set(page.eval_on_selector_all('section[id]', 'els => els.map(e => e.id)'))
            anchors[name] = set(page.eval_on_selector_all('[id]', 'els => els.map(e => e.id)'))
            for sym in sorted(api.get(name, ())):
                anchor = make_id(sym)   # the id Sphinx gives the symbol's heading
                if anchor not in headings: problems.append(f'{name}: no API entry for {sym} (#{anchor})'); continue
                signature = page.evaluate("id => (document.getElementById(id).querySelector('pre') || {}).textContent || ''", anchor)
                if 'Annotated[' in signature: problems.append(f'{name}: {sym} shows call_parse\'s Annotated[...] in its signature')
                if sym[:1].isupper() and '.' not in sym and not re.match(r'(@dataclass\n)?class ', signature):
                    problems.append(f'{name}: the class {sym} is shown as {signature.splitlines()[0] if signature else "nothing"!r}, not as `class {sym}(...)`')
            for style in page.eval_on_selector_all('article table', f'els => els.map({TABLE_STYLE})'):
                table_styles.setdefault(style, name)
            unlinked_images = page.evaluate("Array.from(document.querySelectorAll('article img')).filter(i => !i.closest('a')).map(i => i.getAttribute('src'))")
            if unlinked_images: problems.append(f'{name}: figures that do not open at full size on click: {unlinked_images[:3]}')
            zoom = page.evaluate("Array.from(document.querySelectorAll('article a.full-size-image')).filter(a => a.href !== a.querySelector('img').src).length")
            if zoom: problems.append(f'{name}: {zoom} figure links do not lead to the figure itself')
            buttons = {b: page.eval_on_selector_all(f'a[title="{b}"]', 'els => els.map(e => e.href)') for b in ('Edit this page', 'View this page')}
            for button, hrefs in buttons.items():
                notebook = re.sub(r'^https://github\.com/[^/]+/[^/]+/(edit|blob)/[^/]+/', '', hrefs[0]) if hrefs else ''
                if not hrefs or not notebook.endswith('.ipynb') or not (ROOT / notebook).is_file():
                    problems.append(f'{name}: "{button}" does not lead to a notebook of the repository ({hrefs[:1]})')
            sidebar = set(page.eval_on_selector_all('.sidebar-tree a', 'els => els.map(e => e.getAttribute("href"))'))
            if len(sidebar) < len(pages) - 1: problems.append(f'{name}: sidebar lists {len(sidebar)} of {len(pages) - 1} other pages')
            if page.locator('div.highlight pre').count() and not page.locator('button.copybtn').count():
                problems.append(f'{name}: code blocks without a copy button')
            if not page.locator('link[rel~="icon"]').count(): problems.append(f'{name}: no favicon')
            unlinked = page.evaluate("re => Array.from(document.querySelectorAll('article code')).filter(c => new RegExp(re).test(c.textContent) && !c.closest('a') && !c.closest('pre')).map(c => c.textContent)",
                                     r'^(\d\d[a-z]?_\w+|tutorials/\w+)$')
            if unlinked: problems.append(f'{name}: chapter references that are not links: {sorted(set(unlinked))[:5]}')
            hrefs = page.eval_on_selector_all('article a[href]', 'els => els.map(e => e.href)')
            dead = sorted({h.split('#')[0] for h in hrefs if h.startswith(base) and not (SITE / h[len(base):].split('#')[0]).is_file()})
            if dead: problems.append(f'{name}: links to pages that do not exist: {dead[:3]}')
            code = page.eval_on_selector_all('article pre', 'els => els.map(e => e.textContent)')
            private = sorted({m for text in code for m in re.findall(r'(?<![\w.])_[A-Za-z]\w*\(', text)})
            if private: problems.append(f'{name}: private calls in visible code: {private[:5]}')
            if re.search(r'/tmp/|/var/folders/|tmp[a-z0-9_]{8}', page.inner_text('article')): problems.append(f'{name}: a temporary path is shown')
            clipped = page.evaluate("Array.from(document.querySelectorAll('pre')).filter(p => p.scrollWidth > p.clientWidth + 1).length")
            if clipped: problems.append(f'{name}: {clipped} code blocks wider than the page (clipped at 1280 px)')
            if 'report an issue' not in page.inner_text('body'): problems.append(f'{name}: no "report an issue" link')
            if 'Tutorials' not in page.eval_on_selector_all('.sidebar-tree .caption', 'els => els.map(e => e.textContent).join(" ")'):
                problems.append(f'{name}: the sidebar has no Tutorials group')
            checked += 1
            page.screenshot(path=str(out / name.replace('/', '_').replace('.html', '.png')), full_page=True)   # every page, for review
        phone = browser.new_page(viewport={'width': 390, 'height': 844}, is_mobile=True)   # nothing clipped on a phone either
        for name in pages:
            phone.goto(base + name, wait_until='networkidle')
            clipped = phone.evaluate("Array.from(document.querySelectorAll('article pre')).filter(p => p.scrollWidth > p.clientWidth + 1).length")
            if clipped: problems.append(f'{name}: {clipped} code blocks wider than a phone screen (390 px)')
        phone.close()
        if len(table_styles) > 1: problems.append(f'tables in {len(table_styles)} styles: {table_styles}')
        for full, uri in sorted(python_objects.items()):
            target, _, anchor = uri.partition('#')
            if anchor not in anchors.get(target, ()): problems.append(f'objects.inv: {full} points at {uri}, which is not on the site'); break
        page.goto(base + 'genindex.html', wait_until='networkidle')
        indexed = {h.split('/')[-1] for h in page.eval_on_selector_all('article a[href]', 'els => els.map(e => e.href)')}
        unindexed = sorted(full for full, uri in python_objects.items() if uri not in indexed)
        if unindexed: problems.append(f'the general index lacks {len(unindexed)} API objects, e.g. {unindexed[:3]}')
        page.goto(base + 'search.html?q=fused+feature', wait_until='networkidle')   # hits pages whose text is full of formulas
        page.wait_for_selector('#search-results p.context', timeout=10_000)
        page.wait_for_timeout(1000)   # snippets arrive one page fetch at a time
        snippets = page.eval_on_selector_all('#search-results p.context', 'els => els.map(e => e.textContent)')
        latex = [s for s in snippets if LATEX.search(s)]
        if latex: problems.append(f'search snippets with raw LaTeX: {latex[0][:120]!r}')
        page.goto(base + 'search.html?q=h2t_fuse', wait_until='networkidle')
        page.wait_for_selector('#search-results li', timeout=10_000)
        hits = page.eval_on_selector_all('#search-results li a', 'els => els.map(e => e.getAttribute("href"))')
        if not any(h.startswith('fusion.html#h2t-fuse') for h in hits[:3]): problems.append(f'search for h2t_fuse: its API entry is not among the first three hits {hits[:3]}')
        if external: problems.append(f'pages asked for {len(external)} resources outside the site, e.g. {external[:3]}')
        if failed: problems.append(f'{len(failed)} requests failed, e.g. {sorted(set(failed))[:3]}')
        browser.close()
    server.shutdown()
    summary = dict(pages=checked, api_entries=sum(map(len, api.values())), problems=problems)
    (out / 'report.json').write_text(json.dumps(summary, indent=1))
    for p in problems: print('PROBLEM', p)
    print(f"checked {checked} pages and {summary['api_entries']} API entries in Chromium: "
          + ('all good' if not problems else f'{len(problems)} problems') + f'; screenshots in {out}')
    raise SystemExit(1 if problems else 0)


if __name__ == '__main__':
    main()
