/*
 * The embeddable chat widget:
 *   <script src="https://adapter.example.org/widget.js"></script>
 *   <script>CMPWidget.init({ apiKey: 'pk_live_…', theme: 'light', position: 'bottom-right' });</script>
 * It renders inside a Shadow DOM (the host page's styles do not leak in or out). The publishable key only
 * starts a session: the server checks this page's Origin against the subscription's allowed domains and
 * answers with a short-lived visitor token bound to this origin. The last token and the messages are kept in
 * sessionStorage (this tab only): a renewal or a reload sends the previous token, so the server carries the
 * same conversation on. A message whose send failed is kept as failed, so a reload still offers its retry.
 * Every send of a message carries its id, so a retry of one answered before (the answer lost on its way) gets
 * that answer back and is not charged again.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  var base = script ? new URL('.', script.src).href : '/';

  var css = [
    ':host { all: initial; }',
    '.root { position: fixed; z-index: 2147483000; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }',
    '.root.bottom-right { right: 20px; bottom: 20px; } .root.bottom-left { left: 20px; bottom: 20px; }',
    '.launcher, .head, form button, .user { background: var(--accent); }',
    '.launcher { border: 0; border-radius: 999px; padding: 12px 18px; color: #fff; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.2); font: inherit; }',
    '.panel { display: none; flex-direction: column; width: min(360px, calc(100vw - 40px)); height: min(480px, calc(100vh - 100px)); border-radius: 12px; overflow: hidden; box-shadow: 0 8px 30px rgba(0,0,0,.25); margin-bottom: 10px; }',
    '.open .panel { display: flex; }',
    '.light .panel { background: #fff; color: #111827; } .dark .panel { background: #111827; color: #f9fafb; }',
    '.head { display: flex; align-items: center; gap: 8px; padding: 10px 12px; color: #fff; font-weight: 600; }',
    '.head img { width: 24px; height: 24px; border-radius: 4px; object-fit: contain; background: #fff; }',
    '.head .close { margin-left: auto; background: transparent; border: 0; color: #fff; font-size: 20px; cursor: pointer; }',
    '.messages { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px; margin: 0; list-style: none; }',
    '.messages li { padding: 8px 10px; border-radius: 10px; max-width: 85%; white-space: pre-wrap; }',
    '.light .bot { background: #f1f5f9; } .dark .bot { background: #1f2937; }',
    '.bot { align-self: flex-start; } .user { align-self: flex-end; color: #fff; }',
    '.handoff { align-self: center; font-style: italic; background: #fef3c7; color: #78350f; }',
    '.error { color: #b91c1c; padding: 0 12px; margin: 0; } .error:empty { display: none; }',
    'form { display: flex; gap: 6px; padding: 10px; border-top: 1px solid rgba(127,127,127,.25); }',
    'input { flex: 1; font: inherit; padding: 8px; border: 1px solid #cbd5e1; border-radius: 6px; }',
    '.retry { display: block; margin: 6px 0 0 auto; background: transparent; color: inherit; border: 1px solid currentColor; border-radius: 6px; padding: 2px 10px; cursor: pointer; font: inherit; font-size: 13px; }',
    '.retry:disabled { cursor: default; opacity: .75; }',
    'form button { border: 0; border-radius: 6px; padding: 8px 12px; color: #fff; cursor: pointer; font: inherit; }',
    'button:focus-visible, input:focus-visible { outline: 3px solid #93c5fd; outline-offset: 1px; }'
  ].join('\n');

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text) { node.textContent = text; }
    return node;
  }

  function post(path, body, token) {
    var headers = { 'Content-Type': 'application/json' };
    if (token) { headers.Authorization = 'Bearer ' + token; }
    return fetch(base + path, { method: 'POST', mode: 'cors', credentials: 'omit', headers: headers, body: JSON.stringify(body) })
      .catch(function () { throw new Error('The assistant cannot be reached right now.'); })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (!response.ok) {
            var e = new Error((data.error && data.error.message) || 'The assistant is unavailable.');
            e.status = response.status;
            e.retryAfter = parseInt(response.headers.get('Retry-After'), 10) || 0; // seconds; the adapter sends no dates
            throw e;
          }
          return data;
        });
      });
  }

  // Refusals another try cannot change (too long, no credits, not allowed) are final; an unreachable or failing
  // adapter, a rate limit, an expired token or a first send still being answered (409) may pass on a retry.
  function retryable(e) {
    return !e.status || e.status === 401 || e.status === 409 || e.status === 429 || e.status >= 500;
  }

  // A message's id: 128 random bits in hex, in the body (a header would need the preflight to allow it).
  function messageId() {
    var bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.prototype.map.call(bytes, function (b) { return (b < 16 ? '0' : '') + b.toString(16); }).join('');
  }

  function init(options) {
    options = options || {};
    if (!options.apiKey || options.apiKey.indexOf('pk_') !== 0) {
      throw new Error('CMPWidget.init needs a publishable key (pk_live_…); never put a secret key in a web page.');
    }
    var theme = options.theme === 'dark' ? 'dark' : 'light';
    var position = options.position === 'bottom-left' ? 'bottom-left' : 'bottom-right';
    var host = element('div');
    host.setAttribute('data-cmp-widget', '');
    document.body.appendChild(host);
    var shadow = host.attachShadow({ mode: 'open' });
    var style = element('style');
    style.textContent = css;
    shadow.appendChild(style);

    var root = element('div', 'root ' + theme + ' ' + position);
    var panel = element('div', 'panel');
    panel.setAttribute('role', 'dialog');
    var head = element('div', 'head');
    var title = element('span', 'title', 'Assistant');
    var close = element('button', 'close', '×');
    close.setAttribute('aria-label', 'Close chat');
    head.appendChild(title);
    head.appendChild(close);
    var list = element('ol', 'messages');
    list.setAttribute('aria-live', 'polite');
    var error = element('p', 'error');
    error.setAttribute('role', 'alert');
    var form = element('form');
    var input = element('input');
    input.setAttribute('aria-label', 'Your message');
    input.setAttribute('maxlength', '4000');
    var send = element('button', 'send', 'Send');
    send.type = 'submit';
    form.appendChild(input);
    form.appendChild(send);
    panel.appendChild(head);
    panel.appendChild(list);
    panel.appendChild(error);
    panel.appendChild(form);
    var launcher = element('button', 'launcher', 'Chat');
    launcher.setAttribute('aria-expanded', 'false');
    root.appendChild(panel);
    root.appendChild(launcher);
    shadow.appendChild(root);

    var session = null;
    var colour = '#2563eb';

    // What this tab keeps across renewals and reloads; storage may be unavailable (privacy modes): then a
    // reload starts a new conversation, nothing else changes.
    var storageKey = 'cmp-widget:' + options.apiKey;
    var kept = { token: null, messages: [] };
    try {
      var stored = JSON.parse(window.sessionStorage.getItem(storageKey) || 'null');
      if (stored && (stored.token === null || typeof stored.token === 'string') && Array.isArray(stored.messages)) { kept = stored; }
    } catch (e) { /* unavailable or unreadable: start afresh */ }
    function keep() {
      kept.messages = kept.messages.slice(-100);
      try { window.sessionStorage.setItem(storageKey, JSON.stringify(kept)); } catch (e) { /* unavailable */ }
    }

    // One custom property, so the messages already shown take the agent's colour when the session brings it.
    function paint() {
      root.style.setProperty('--accent', colour);
    }
    paint();

    function show(role, text, next) {
      var item = element('li', role, text);
      list.insertBefore(item, next || null);
      list.scrollTop = list.scrollHeight;
      return item;
    }

    function add(role, text) {
      kept.messages.push({ role: role, text: text });
      keep();
      return show(role, text);
    }

    var logoShown = false;
    var starting = null;

    // What is shown now: the messages of the conversation the current token carries.
    function mark() {
      return { items: Array.prototype.slice.call(list.children), kept: kept.messages.length };
    }

    function start(before) {
      var previous = (session && session.token) || kept.token;
      before = before || mark();
      return post('widget/v1/session', previous ? { key: options.apiKey, previous: previous } : { key: options.apiKey }).then(function (data) {
        session = { token: data.token, expires: Date.now() + (data.expires_in - 30) * 1000 };
        if (!data.resumed) {
          // A new conversation (the first, or the old one too old to carry on): the messages shown before it go,
          // and its welcome comes first, before any message sent while it was starting.
          before.items.forEach(function (item) { if (item.parentNode) { list.removeChild(item); } });
          kept.messages = [{ role: 'bot', text: data.welcome }].concat(kept.messages.slice(before.kept));
          show('bot', data.welcome, list.firstChild);
        }
        kept.token = data.token;
        keep();
        colour = /^#[0-9a-fA-F]{6}$/.test(data.colour) ? data.colour : colour;
        title.textContent = data.name;
        if (data.logo && !logoShown) { var logo = element('img'); logo.src = data.logo; logo.alt = ''; head.insertBefore(logo, title); logoShown = true; }
        paint();
        return session;
      });
    }

    function ready(before) {
      if (session && session.expires > Date.now()) { return Promise.resolve(session); }
      // One start at a time: what needs a session while one is on its way (a message sent before the answer, a
      // reopening) waits for it, so it joins that conversation and what it showed stays (it came after the mark).
      if (!starting) {
        var done = function () { starting = null; };
        starting = start(before);
        starting.then(done, done);
      }
      return starting;
    }

    function toggle(open) {
      root.classList.toggle('open', open);
      launcher.setAttribute('aria-expanded', String(open));
      if (open) {
        ready().then(function () { input.focus(); }, function (e) { error.textContent = e.message; });
      } else {
        launcher.focus();
      }
    }

    // The Retry control of the message whose send failed last (the tab keeps that message with its error as failed,
    // and after a Retry-After the time it may be retried as retryAt). A new message drops it, so that a retry's
    // answer always comes last, on screen and in what the tab keeps.
    var retry = null;

    function offerRetry(item, message, before) {
      retry = element('button', 'retry');
      retry.type = 'button';
      retry.addEventListener('click', function () { dropRetry(); deliver(item, message, before); });
      item.appendChild(retry);
      countDown(retry, message.retryAt || 0);
    }

    // A refusal's Retry-After (a rate limit's, mostly) is waited out, counting down, so a retry is not refused again.
    function countDown(button, retryAt) {
      var wait = retryAt - Date.now();
      var seconds = Math.ceil(wait / 1000);
      var left = seconds > 60 ? Math.ceil(seconds / 60) + ' min' : seconds + ' s';
      button.disabled = seconds > 0;
      button.textContent = seconds > 0 ? 'Retry in ' + left : 'Retry';
      button.setAttribute('aria-label', 'Retry sending this message' + (seconds > 0 ? ' in ' + left : ''));
      if (seconds > 0 && button.isConnected) {
        setTimeout(function () { countDown(button, retryAt); }, wait - (seconds - 1) * 1000); // at the next whole second left
      }
    }

    function dropRetry() {
      if (retry && retry.parentNode) { retry.parentNode.removeChild(retry); }
      retry = null;
      kept.messages.forEach(function (m) { delete m.failed; delete m.retryAt; });
      keep();
    }

    // The previous page's messages, shown until the server says whether their conversation goes on; the one whose
    // send failed offers its retry again, from the same place in the conversation.
    kept.messages = kept.messages.filter(function (m) {
      return m && typeof m.text === 'string' && ['bot', 'user', 'handoff'].indexOf(m.role) >= 0;
    });
    kept.messages.forEach(function (m, index) {
      var before = { items: Array.prototype.slice.call(list.children), kept: index };
      var item = show(m.role, m.text);
      if (m.role === 'user' && typeof m.failed === 'string') {
        error.textContent = m.failed;
        offerRetry(item, m, before);
      }
    });

    // Sends a message already shown (and kept) as item; its answer comes right after it.
    function deliver(item, message, before, renewed) {
      error.textContent = '';
      send.disabled = true;
      var pending = show('bot', '…', item.nextSibling);
      return ready(before)
        .then(function (s) { return post('widget/v1/chat', { message: message.text, id: message.id }, s.token); })
        .then(function (data) {
          pending.textContent = data.answer;
          kept.messages.push({ role: 'bot', text: data.answer });
          keep();
          if (data.handoff) { add('handoff', data.handoff); }
        })
        .catch(function (e) {
          list.removeChild(pending);
          if (e.status === 401) {
            session = null;
            // The session was refused (issued by an older adapter, say): a new one and one more send before the
            // visitor sees an error. Nothing was charged for the refused send, and the message keeps its id.
            if (!renewed) { return deliver(item, message, before, true); }
          }
          error.textContent = e.message;
          if (retryable(e)) {
            message.failed = e.message;
            if (e.retryAfter > 0) { message.retryAt = Date.now() + e.retryAfter * 1000; }
            keep();
            offerRetry(item, message, before);
          }
        })
        .then(function () { send.disabled = false; input.focus(); });
    }

    launcher.addEventListener('click', function () { toggle(!root.classList.contains('open')); });
    close.addEventListener('click', function () { toggle(false); });
    root.addEventListener('keydown', function (event) { if (event.key === 'Escape') { toggle(false); } });
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var text = input.value.trim();
      if (!text) { return; }
      dropRetry();
      var before = mark();
      var message = { role: 'user', text: text, id: messageId() };
      kept.messages.push(message);
      keep();
      input.value = '';
      deliver(show('user', text), message, before);
    });

    return { open: function () { toggle(true); }, close: function () { toggle(false); } };
  }

  window.CMPWidget = { init: init };
})();
