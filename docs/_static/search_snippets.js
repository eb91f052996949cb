// Search result snippets come from the text of each page, where the maths is still LaTeX source (MathJax typesets it
// only in the browser): drop the formulas from the snippet text so that a summary reads as prose.
document.addEventListener('DOMContentLoaded', () => {
  if (typeof Search === 'undefined') return;   // only the search page loads Sphinx's searchtools.js
  const htmlToText = Search.htmlToText;
  Search.htmlToText = (htmlString, anchor) => {
    const page = new DOMParser().parseFromString(htmlString, 'text/html');
    page.querySelectorAll('.math').forEach((formula) => formula.replaceWith(' … '));
    return htmlToText(page.documentElement.outerHTML, anchor).replace(/\s+/g, ' ');
  };
});
