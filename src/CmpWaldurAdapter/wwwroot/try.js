// The try page: the server counts demo messages; this only shows what it says.
(function () {
  'use strict';
  var section = document.getElementById('try-chat');
  if (!section) { return; }
  var count = document.getElementById('remaining-count');
  var chat = window.CmpChat({
    endpoint: section.getAttribute('data-endpoint'),
    after: function (body, ok) {
      if (typeof body.remaining === 'number') { count.textContent = String(body.remaining); }
      var left = Number(count.textContent);
      chat.send.disabled = left <= 0;
      chat.input.disabled = left <= 0;
      if (left <= 0) { document.getElementById('subscribe').focus(); } else if (ok) { chat.input.focus(); }
    }
  });
})();
