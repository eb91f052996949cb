"""Sphinx glue for the h2t_nb site (tools/build_docs.py stages the pages it works on).

- `api-object` registers a show_doc entry as a Python object: in the general index, the module index and objects.inv,
  so that other projects can link to the API with intersphinx. The entry itself stays nbdev's show_doc section.
- "Edit this page" / "view source" buttons point at the notebook a page was built from (the page names are not the
  notebooks', so furo's own guess from the page name would be wrong).
- Images link to their own file, so that a wide figure opens at full size on click.
"""
import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective
from sphinx.util.osutil import relative_uri

# the general index's wording, as Sphinx's own Python directives write it
INDEX_TEXT = {'module': 'module; {full}', 'function': '{name}() (in module {parent})', 'class': '{name} (class in {parent})',
              'method': '{name}() ({parent} method)', 'property': '{name} ({parent} property)'}


class ApiObject(SphinxDirective):
    "```{api-object} h2t_nb.fusion.h2t_fuse\\n:type: function\\n```: a target, an index entry and a Python-domain object."
    required_arguments = 1
    option_spec = {'type': lambda arg: directives.choice(arg, tuple(INDEX_TEXT))}

    def run(self):
        full, objtype = self.arguments[0], self.options.get('type', 'function')
        parent, _, name = full.rpartition('.')
        node_id = f'module-{full}' if objtype == 'module' else full   # the ids Sphinx's own directives give
        python = self.env.get_domain('py')
        if objtype == 'module': python.note_module(full, node_id, '', '', False)
        python.note_object(full, objtype, node_id, location=self.get_location())
        target = nodes.target('', '', ids=[node_id])
        self.state.document.note_explicit_target(target)
        kind = 'pair' if objtype == 'module' else 'single'
        index = addnodes.index(entries=[(kind, INDEX_TEXT[objtype].format(full=full, parent=parent, name=name), node_id, '', None)])
        return [index, target]


def edit_links(app, pagename, templatename, context, doctree):
    "Point furo's edit and view buttons at the page's notebook (tools/build_docs.py writes page_sources.json)."
    notebook = getattr(app.env, 'h2t_page_sources', {}).get(pagename)
    if not notebook: return
    options = app.config.html_theme_options
    repo, branch = options['source_repository'].rstrip('/'), options.get('source_branch', 'main')
    context['theme_source_edit_link'] = f'{repo}/edit/{branch}/{notebook}'
    context['theme_source_view_link'] = f'{repo}/blob/{branch}/{notebook}'


def read_page_sources(app):
    path = Path(app.srcdir) / 'page_sources.json'
    app.env.h2t_page_sources = json.loads(path.read_text()) if path.is_file() else {}


def full_size_images(app, doctree, docname):
    "Wrap every local image that is not a link already in a link to its own file in _images/."
    if app.builder.format != 'html': return
    images = relative_uri(app.builder.get_target_uri(docname), '_images')
    for image in list(doctree.findall(nodes.image)):
        uri = image.get('candidates', {}).get('*', image['uri'])
        if isinstance(image.parent, nodes.reference) or uri not in app.env.images: continue
        link = nodes.reference('', '', refuri=f'{images}/{app.env.images[uri][1]}', classes=['full-size-image'])
        link['reftitle'] = 'open the figure at full size'
        image.replace_self(link)
        link.append(image)


def setup(app):
    app.add_directive('api-object', ApiObject)
    app.connect('builder-inited', read_page_sources)
    app.connect('html-page-context', edit_links)
    app.connect('doctree-resolved', full_size_images)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
