"""Reports made from the results document: terminal, JSON (and HTML, Markdown, JUnit)."""
