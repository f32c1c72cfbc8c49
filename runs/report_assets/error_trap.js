(function () {
  'use strict';
  var errors = [], shown = 0;
  function flush() {
    var body = document.body;
    if (!body) return;
    body.setAttribute('data-errors', String(errors.length));
    var box = document.getElementById('script-errors');
    if (!box) return;
    for (; shown < errors.length; shown++) {
      var line = document.createElement('div');
      line.textContent = 'Script error: ' + errors[shown];
      box.appendChild(line);
    }
    if (errors.length) box.hidden = false;
  }
  function record(message) {
    errors.push(String(message));
    try { flush(); } catch (e) { /* the count is kept; shown at DOMContentLoaded */ }
  }
  window.__bbError = record;
  window.onerror = function (message, source, line, column) {
    record(message + (line ? ' (line ' + line + (column ? ':' + column : '') + ')' : ''));
    return false;
  };
  window.addEventListener('unhandledrejection', function (e) {
    record('unhandled promise rejection: ' + (e && e.reason));
  });
  var original = console.error;
  console.error = function () {
    var parts = [];
    for (var i = 0; i < arguments.length; i++) parts.push(String(arguments[i]));
    record('console.error: ' + parts.join(' '));
    if (original) return original.apply(console, arguments);
  };
  document.addEventListener('DOMContentLoaded', flush);
})();
