// Shared by the try page and the console's Run tab: a small chat over a JSON endpoint.
(function () {
  'use strict';
  window.CmpChat = function (options) {
    var form = document.getElementById('compose');
    var input = document.getElementById('message');
    var send = document.getElementById('send');
    var list = document.getElementById('messages');
    var error = document.getElementById('error');
    if (!form) { return; }

    function add(role, text) {
      var item = document.createElement('li');
      item.className = role;
      item.textContent = text;
      list.appendChild(item);
      item.scrollIntoView({ block: 'nearest' });
      return item;
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var text = input.value.trim();
      if (!text) { return; }
      error.textContent = '';
      add('user', text);
      input.value = '';
      send.disabled = true;
      var pending = add('bot', '…');
      var headers = { 'Content-Type': 'application/json' };
      if (options.antiforgery) { headers.RequestVerificationToken = options.antiforgery; }
      fetch(options.endpoint, { method: 'POST', headers: headers, credentials: 'same-origin', body: JSON.stringify({ message: text, conversation: options.conversation }) })
        .then(function (response) { return response.json().then(function (body) { return { ok: response.ok, body: body }; }); })
        .then(function (result) {
          if (result.ok) {
            pending.textContent = result.body.answer;
            if (result.body.handoff) { add('handoff', result.body.handoff); }
          } else {
            list.removeChild(pending);
            error.textContent = (result.body.error && result.body.error.message) || 'Something went wrong.';
          }
          options.after(result.body, result.ok);
        })
        .catch(function () {
          list.removeChild(pending);
          error.textContent = 'The connection failed. Please try again.';
          options.after({}, false);
        });
    });
    return { input: input, send: send };
  };
})();
