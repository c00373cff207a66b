// zhudai progressive enhancement. Every page works without this file.
(function () {
  "use strict";
  // Forms that change data ask for confirmation when marked data-confirm="…".
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var msg = form && form.getAttribute && form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  });
  // Disable a submit button once pressed, so a double click does not post twice.
  document.addEventListener("submit", function (e) {
    var buttons = e.target.querySelectorAll("button[type=submit]");
    for (var i = 0; i < buttons.length; i++) { buttons[i].setAttribute("disabled", "disabled"); }
  }, true);
})();
