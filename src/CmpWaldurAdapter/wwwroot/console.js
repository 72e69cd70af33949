// The buyer console: brand colour, copy buttons, confirmations, the Run chat and the knowledge-base panel.
(function () {
  'use strict';
  var root = document.getElementById('console');
  if (!root) { return; }
  var antiforgery = root.getAttribute('data-antiforgery');
  var colour = root.getAttribute('data-colour');
  if (/^#[0-9a-fA-F]{6}$/.test(colour || '')) { document.documentElement.style.setProperty('--brand', colour); }

  document.querySelectorAll('button.copy').forEach(function (button) {
    button.addEventListener('click', function () {
      var source = document.getElementById(button.getAttribute('data-copy'));
      navigator.clipboard.writeText(source.textContent.trim()).then(function () { button.textContent = 'Copied'; });
    });
  });
  document.querySelectorAll('form.confirm').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      if (!window.confirm(form.getAttribute('data-confirm'))) { event.preventDefault(); }
    });
  });

  var run = document.getElementById('run-chat');
  if (run && window.CmpChat) {
    var conversation = (window.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Date.now())).replace(/[^a-zA-Z0-9-]/g, '');
    var chat = window.CmpChat({
      endpoint: run.getAttribute('data-endpoint'),
      antiforgery: antiforgery,
      conversation: conversation,
      after: function (body) {
        if (typeof body.credits_used === 'number') { document.getElementById('credits-used').textContent = String(body.credits_used); }
        var balance = document.getElementById('credits-balance'); // absent when the organization's credit does not cover this agent
        if (balance && typeof body.balance === 'number') { balance.textContent = String(body.balance); }
        chat.send.disabled = false;
        chat.input.focus();
      }
    });
  }

  var kb = document.getElementById('knowledge');
  if (kb) { knowledge(kb.getAttribute('data-endpoint')); }

  // The knowledge base API accepts the console session (cookie plus anti-forgery header) like a secret key.
  function knowledge(base) {
    var error = document.getElementById('kb-error');
    var list = document.getElementById('kb-documents');
    var indexed = document.getElementById('kb-indexed');

    function call(method, path, body, json) {
      var headers = { RequestVerificationToken: antiforgery };
      if (json) { headers['Content-Type'] = 'application/json'; }
      return fetch(base + path, { method: method, headers: headers, credentials: 'same-origin', body: json ? JSON.stringify(body) : body })
        .then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (data) {
            if (response.status === 404 && !(data.error && data.error.message)) { throw new Error('The knowledge base is not available for this agent yet.'); }
            if (!response.ok) { throw new Error((data.error && data.error.message) || ('The knowledge base answered ' + response.status + '.')); }
            return data;
          });
        });
    }

    function refresh() {
      call('GET', '/documents').then(function (data) {
        var documents = data.data || [];
        list.textContent = '';
        indexed.textContent = String(documents.filter(function (d) { return String(d.status).toLowerCase() === 'done'; }).length);
        documents.forEach(function (d) {
          var item = document.createElement('li');
          var name = document.createElement('span');
          name.textContent = d.name;
          var status = document.createElement('span');
          status.className = 'muted';
          status.textContent = d.status + (d.error ? ': ' + d.error : '');
          item.appendChild(name);
          item.appendChild(status);
          list.appendChild(item);
        });
      }).catch(function (e) { indexed.textContent = '0'; error.textContent = e.message; });
    }

    function submit(id, build) {
      var form = document.getElementById(id);
      form.addEventListener('submit', function (event) {
        event.preventDefault();
        error.textContent = '';
        build(form).then(function () { form.reset(); refresh(); }).catch(function (e) { error.textContent = e.message; });
      });
    }

    submit('kb-upload', function (form) {
      var data = new FormData();
      Array.prototype.forEach.call(form.elements.file.files, function (file) { data.append('file', file); });
      return call('POST', '/documents', data, false);
    });
    submit('kb-url', function (form) { return call('POST', '/urls', { url: form.elements.url.value }, true); });
    submit('kb-notion', function (form) {
      var ids = form.elements.ids.value.split(',').map(function (s) { return s.trim(); }).filter(Boolean);
      return call('POST', '/connectors/notion', { integration_token: form.elements.integration_token.value, ids: ids }, true);
    });
    submit('kb-confluence', function (form) {
      return call('POST', '/connectors/confluence', {
        site_url: form.elements.site_url.value, email: form.elements.email.value,
        api_token: form.elements.api_token.value, space_key: form.elements.space_key.value
      }, true);
    });
    refresh();
  }
})();
