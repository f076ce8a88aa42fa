// The tokens page: the Copy button beside a token shown once.
"use strict";
document.querySelectorAll("button[data-copies]").forEach((button) => {
  const field = document.getElementById(button.dataset.copies);
  const said = document.getElementById("token-copied");
  field.addEventListener("focus", () => field.select());
  button.addEventListener("click", async () => {
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      said.textContent = "Copied.";
    } catch (err) {
      // no clipboard (an http:// address other than this machine): the text is selected for Ctrl+C
      said.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  });
});
