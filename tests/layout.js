// Measures the framed report: text clipped by its box, a column or figure pushed out of
// sight into a box that scrolls sideways, anything crossing its card's border, chart labels
// on top of each other, route names broken mid-word, a page wider than the window; writes
// the findings into #out as JSON.
const f = document.getElementById('f');
f.onload = () => {
  const w = f.contentWindow, d = f.contentDocument, found = [];
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).join('.') : '');
  const text = el => el.textContent.trim().replace(/\s+/g, ' ').slice(0, 70);
  const shown = el => {
    const cs = w.getComputedStyle(el);
    return cs.display !== 'none' && cs.visibility !== 'hidden' && el.getClientRects().length &&
      !el.closest('details:not([open]) > :not(summary)');
  };
  const boxes = '.card, .tcard, .kpi, .verdict';
  for (const el of d.querySelectorAll('body *')) {
    if (!shown(el)) continue;
    const cs = w.getComputedStyle(el);
    const hides = ['hidden', 'clip'].includes(cs.overflowX) || cs.textOverflow === 'ellipsis';
    if (hides && el.scrollWidth > el.clientWidth + 1)
      found.push('clipped: ' + name(el) + ': ' + text(el));
    // a box that scrolls sideways hides what does not fit: a table's last columns, a
    // figure's last digits (no scrollbar is drawn on a phone until it is touched)
    const scrolls = ['auto', 'scroll'].includes(cs.overflowX) && el.tagName !== 'PRE';
    if (scrolls && el.scrollWidth > el.clientWidth + 1) {
      const edge = el.getBoundingClientRect().right;
      const hidden = [...el.querySelectorAll('th, td, a, svg, .route, .badge')]
        .filter(c => shown(c) && c.getBoundingClientRect().right > edge + 1).slice(0, 4).map(text);
      found.push('hidden sideways: ' + name(el) + ' (' + el.scrollWidth + 'px in ' +
        el.clientWidth + 'px): ' + JSON.stringify(hidden));
    }
  }
  // a leaf that sticks out of the card it is drawn in (a table, a badge on the border)
  for (const box of d.querySelectorAll(boxes)) {
    if (!shown(box)) continue;
    const b = box.getBoundingClientRect();
    const out = [...box.querySelectorAll('*')].filter(el => {
      if (el.children.length || !shown(el) || el.closest('svg') !== null && el.tagName !== 'svg') return false;
      const r = el.getBoundingClientRect();
      return r.width > 0 && (r.right > b.right + 0.5 || r.left < b.left - 0.5);
    });
    if (out.length)
      found.push('crosses the border of ' + name(box) + ': ' + out.slice(0, 3).map(el => name(el) + ' ' + JSON.stringify(text(el))).join(', '));
  }
  // a route name wraps only after '>' or ':' (cascade:haiku>|sonnet), never inside a name
  for (const el of d.querySelectorAll('.route')) {
    if (!shown(el)) continue;
    const walker = d.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    const chars = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode())
      for (let i = 0; i < node.length; i++) chars.push([node, i]);
    let top = null, prev = '';
    for (const [node, i] of chars) {
      const range = d.createRange();
      range.setStart(node, i); range.setEnd(node, i + 1);
      const r = range.getBoundingClientRect(), ch = node.data[i];
      if (r.width === 0 && /\s/.test(ch)) { prev = ch; continue; }
      if (top !== null && r.top > top + 2 && !/[>:\s]/.test(prev)) {
        found.push('route broken mid-word: ' + JSON.stringify(el.textContent.trim()) + ' after ' + JSON.stringify(prev));
        break;
      }
      top = r.top; prev = ch;
    }
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
  const wide = d.documentElement.scrollWidth;
  if (wide > w.innerWidth + 1) {
    const culprits = [...d.querySelectorAll('body *')].filter(el => {
      const r = el.getBoundingClientRect();
      return r.right > w.innerWidth + 1 && el.children.length === 0;
    }).slice(0, 5).map(name);
    found.push('the page scrolls sideways (' + wide + 'px wide): ' + culprits.join(', '));
  }
  document.getElementById('out').textContent = JSON.stringify(found);
};
