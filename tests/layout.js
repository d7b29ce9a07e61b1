// Measures the framed report: text clipped by its box, chart labels on top of each
// other, a page wider than the window; writes the findings into #out as JSON.
const f = document.getElementById('f');
f.onload = () => {
  const w = f.contentWindow, d = f.contentDocument, found = [];
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  for (const el of d.querySelectorAll('body *')) {
    const cs = w.getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || !el.getClientRects().length) continue;
    if (el.closest('details:not([open]) > :not(summary)')) continue;
    const hides = ['hidden', 'clip'].includes(cs.overflowX) || cs.textOverflow === 'ellipsis';
    if (hides && el.scrollWidth > el.clientWidth + 1)
      found.push('clipped: ' + name(el) + ': ' + el.textContent.trim().replace(/\s+/g, ' ').slice(0, 70));
  }
  for (const svg of d.querySelectorAll('svg')) {
    const texts = [...svg.querySelectorAll('text')].map(t => [t, t.getBoundingClientRect()]);
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
      const a = texts[i][1], b = texts[j][1];
      const ox = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const oy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (ox > 0.5 && oy > 0.5)
        found.push('overlap in ' + (svg.getAttribute('aria-label') || 'a chart') + ': ' +
          JSON.stringify(texts[i][0].textContent) + ' / ' + JSON.stringify(texts[j][0].textContent));
    }
  }
  // inside a box that scrolls sideways by design (a wide table), overflowing is fine
  const scrolls = el => {
    for (let p = el.parentElement; p && p !== d.body; p = p.parentElement)
      if (['auto', 'scroll'].includes(w.getComputedStyle(p).overflowX)) return true;
    return false;
  };
  const wide = d.documentElement.scrollWidth;
  if (wide > w.innerWidth + 1) {
    const culprits = [...d.querySelectorAll('body *')].filter(el => {
      const r = el.getBoundingClientRect();
      return r.right > w.innerWidth + 1 && el.children.length === 0 && !scrolls(el);
    }).slice(0, 5).map(name);
    found.push('the page scrolls sideways (' + wide + 'px wide): ' + culprits.join(', '));
  }
  document.getElementById('out').textContent = JSON.stringify(found);
};
