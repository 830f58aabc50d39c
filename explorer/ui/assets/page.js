// The app's page helpers (injected once per browser tab by ui.widgets.page_helpers):
// 1. dir="auto" on every text input and text area, so Arabic typed into them runs right to left;
// 2. an "SVG" button beside the camera (PNG) button of every Plotly toolbar: it asks plotly.js for the same
//    export in SVG (the camera button reads its format from the figure's config at the moment it is clicked).
(function () {
  if (window.__ddeHelpers) return;
  window.__ddeHelpers = true;
  // No markup in strings: Streamlit's HTML sanitiser drops a script whose text holds anything tag-like.
  const NS = 'http://www.w3.org/2000/svg';
  function icon() {
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 28 16');
    svg.setAttribute('width', '22');
    svg.setAttribute('height', '14');
    const text = document.createElementNS(NS, 'text');
    text.setAttribute('x', '1');
    text.setAttribute('y', '13');
    text.setAttribute('font-size', '12');
    text.setAttribute('font-family', 'Arial, sans-serif');
    text.setAttribute('font-weight', '700');
    text.setAttribute('fill', 'currentColor');
    text.textContent = 'SVG';
    svg.appendChild(text);
    return svg;
  }
  function svgButton(plot) {
    const camera = plot.querySelector('.modebar-btn[data-title^="Download plot"]:not(.dde-svg)');
    if (!camera || camera.parentNode.querySelector('.dde-svg')) return;
    const btn = document.createElement('a');
    btn.className = 'modebar-btn dde-svg';
    btn.setAttribute('rel', 'tooltip');
    btn.setAttribute('data-title', 'Download plot as SVG');
    btn.setAttribute('data-gravity', 'n');
    btn.appendChild(icon());
    btn.style.color = 'rgba(68, 68, 68, 0.5)';
    btn.addEventListener('click', function (ev) {
      ev.preventDefault();
      const ctx = plot._context;
      if (!ctx) return;
      const old = ctx.toImageButtonOptions || {};
      ctx.toImageButtonOptions = Object.assign({}, old, { format: 'svg', scale: 1 });
      try { camera.click(); } finally { ctx.toImageButtonOptions = old; }
    });
    camera.parentNode.insertBefore(btn, camera.nextSibling);
  }
  function fix() {
    document.querySelectorAll('input[type="text"]:not([dir]), input[type="search"]:not([dir]), ' +
      'input:not([type]):not([dir]), textarea:not([dir])').forEach(function (el) { el.setAttribute('dir', 'auto'); });
    document.querySelectorAll('.js-plotly-plot').forEach(svgButton);
  }
  let queued = false;
  new MutationObserver(function () {
    if (queued) return;
    queued = true;
    requestAnimationFrame(function () { queued = false; fix(); });
  }).observe(document.body, { childList: true, subtree: true });
  fix();
})();
