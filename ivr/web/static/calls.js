// The calls list: the number of matches is counted after the page is shown (counting can take
// longer than the page itself on a million calls), then written into the heading.
"use strict";
(function () {
  const target = document.querySelector("[data-count-url]");
  if (!target || !window.fetch) {
    return;
  }
  fetch(target.dataset.countUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (answer) {
      if (answer && typeof answer.label === "string") {
        target.textContent = answer.label;
      }
    })
    .catch(function () { /* the page still says "50+" */ });
})();
