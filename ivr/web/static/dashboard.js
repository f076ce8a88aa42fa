// The dashboard's menu tree: counting what a big range's callers did takes seconds, so the page
// shows its figures first and the tree is fetched here (the server caches it a little while).
// Without this script the placeholder's link opens the tree on its own page.
"use strict";

document.querySelectorAll("[data-menu-src]").forEach(async (box) => {
  const status = box.querySelector(".menu-status");
  try {
    const response = await fetch(box.dataset.menuSrc, { credentials: "same-origin" });
    if (!response.ok || response.redirected) {  // redirected: the session ended, the log-in page came
      throw new Error(`HTTP ${response.status}`);
    }
    // the server's own fragment: autoescaped text and an SVG rebuilt from an allow-list
    box.outerHTML = await response.text();
  } catch (error) {
    box.removeAttribute("aria-busy");
    if (status) {
      status.prepend(`The menu tree could not be loaded (${error.message}). `);
    }
  }
});
