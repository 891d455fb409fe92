/* tarheel dashboard: one page, plain JS, no framework, nothing fetched but
 * this server's /api/v1 (the same API scripts use; the session cookie and
 * the X-CSRF-Token header stand in for a bearer token). Pages are hash
 * routes: #/orders, #/order/<connection>/<id>, #/connect, #/settings,
 * #/reports, #/activity. Strings come from i18n.js (Arabic first). */
(function () {
  'use strict';
  var S = { lang: 'ar', user: null, csrf: null, conns: [], selected: {}, timer: null };
  try { S.lang = localStorage.getItem('tarheel.lang') || 'ar'; } catch (e) { /* private mode */ }
  if (!window.I18N[S.lang]) S.lang = 'ar';

  function t(key, vars) {
    var s = window.I18N[S.lang][key];
    if (s === undefined) s = window.I18N.en[key] !== undefined ? window.I18N.en[key] : key;
    return String(s).replace(/\{(\w+)\}/g, function (m, k) {
      return vars && vars[k] !== undefined && vars[k] !== null ? vars[k] : '';
    });
  }

  /* h('div', {class: 'x', onclick: fn}, child, ...): children are nodes,
   * strings (as text, never HTML) or arrays of them. */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else el.setAttribute(k, v === true ? '' : v);
    });
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { add(el, x); }); return; }
    el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  function $(id) { return document.getElementById(id); }

  /* ---- the API ---- */
  function api(method, path, body) {
    var headers = { 'Accept': 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
    return fetch('/api/v1/' + path, {
      method: method, headers: headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.text().then(function (txt) {
        var j = null;
        try { j = txt ? JSON.parse(txt) : null; } catch (e) { j = null; }
        if (r.status === 401 && path !== 'login') { S.user = null; render(); }
        if (!r.ok) {
          var e = (j && j.error) || { code: 'HTTP ' + r.status, message: txt };
          var err = new Error(e.message);
          err.info = e; err.status = r.status;
          throw err;
        }
        return j;
      });
    });
  }
  function q(params) {
    var out = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] !== '' && params[k] !== null && params[k] !== undefined)
        out.push(encodeURIComponent(k) + '=' + encodeURIComponent(params[k]));
    });
    return out.length ? '?' + out.join('&') : '';
  }

  /* A failure in the page's language. tarheel's messages are English (they
   * name fields, SKUs and amounts as the platforms write them); the ones a
   * merchant meets most have an Arabic form (i18n.js reasons), the others
   * stay as they are, marked left-to-right; what to do comes from i18n.js
   * (todo_<CODE>, one per error code) when the page is not English. */
  function localText(text) {
    var out = { text: text || '', local: false };
    (S.lang !== 'en' && window.I18N[S.lang].reasons || []).some(function (p) {
      if (!p[0].test(out.text)) return false;
      out = { text: out.text.replace(p[0], p[1]), local: true };
      return true;
    });
    return out;
  }
  function reasonParts(r) {
    var own = r.code && S.lang !== 'en' && window.I18N[S.lang]['todo_' + r.code] !== undefined;
    var l = localText(r.message);
    return { head: l.text, local: l.local, remedy: own ? t('todo_' + r.code) : r.remedy || '' };
  }
  function msgEl(tag, text, local) {
    return h(tag, S.lang !== 'en' && !local ? { dir: 'ltr', lang: 'en' } : null, text);
  }
  /* A reason in a list: the head in the page's language where it can be,
   * what to do on hover. */
  function reasonSpan(r) {
    var p = reasonParts(r);
    return h('span', { class: 'reason', title: p.remedy, dir: p.local ? 'rtl' : 'auto' }, p.head);
  }
  /* An event of an order's history in the page's language (i18n.js ev_*). */
  function eventName(what) {
    var s = S.lang !== 'en' ? window.I18N[S.lang]['ev_' + String(what).replace(/ /g, '_')] : undefined;
    return s !== undefined ? s : what;
  }
  /* An error box: the message, then what to do. */
  function errorBox(e) {
    var p = reasonParts(e.info || { message: String(e.message || e) });
    return h('div', { class: 'alert error', role: 'alert' },
      msgEl('strong', p.head, p.local), p.remedy ? h('div', { class: 'remedy' }, t('remedy') + ': ' + p.remedy) : null);
  }
  function note(el, text, kind) {
    el.textContent = '';
    add(el, h('div', { class: 'alert ' + (kind || 'ok'), role: 'status' }, text));
  }
  function fail(el) { return function (e) { el.textContent = ''; add(el, errorBox(e)); }; }

  /* ---- formatting ---- */
  function money(m) {
    if (!m) return '';
    var n = Number(m.decimal).toLocaleString(S.lang === 'ar' ? 'ar-SA-u-nu-latn' : 'en-US',
      { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return n + ' ' + t('sar');
  }
  function when(iso, dateOnly) {
    if (!iso) return '';
    var d = new Date(iso);
    var opts = { timeZone: 'Asia/Riyadh', year: 'numeric', month: '2-digit', day: '2-digit' };
    if (!dateOnly) { opts.hour = '2-digit'; opts.minute = '2-digit'; }
    return d.toLocaleString(S.lang === 'ar' ? 'ar-SA-u-nu-latn-ca-gregory' : 'en-GB', opts);
  }
  /* The platform's order status, in words where we have them. */
  function statusName(s) {
    var k = 'tr_' + s;
    return window.I18N[S.lang][k] !== undefined ? t(k) : s;
  }
  function badge(state) {
    return h('span', { class: 'badge st-' + state, 'data-state': state }, t('st_' + state));
  }
  /* "Salla 1305146709" / "سلة 1305146709", or the store's name. */
  function storeName(id) {
    for (var i = 0; i < S.conns.length; i++) {
      var c = S.conns[i];
      if (c.id === id) return (c.name || t('pf_' + c.platform)) + ' \u2068' + c.store_id + '\u2069';
    }
    return '#' + id;
  }
  function storeSelect(id, value, withAll) {
    return h('select', { id: id },
      withAll ? h('option', { value: '' }, t('all')) : null,
      S.conns.map(function (c) {
        return h('option', { value: String(c.id), selected: String(c.id) === String(value) }, storeName(c.id));
      }));
  }
  function field(label, input) { return h('label', { class: 'field' }, h('span', null, label), input); }
  function today() { return new Date(Date.now() + 3 * 3600e3).toISOString().slice(0, 10); }

  /* ---- shell ---- */
  var pages = [['orders', 'nav_orders'], ['connect', 'nav_connect'], ['settings', 'nav_settings'],
    ['reports', 'nav_reports'], ['activity', 'nav_activity']];

  function route() {
    var parts = (location.hash || '#/orders').replace(/^#\/?/, '').split('/');
    return { page: parts[0] || 'orders', args: parts.slice(1) };
  }

  function setLang(l) {
    S.lang = l;
    try { localStorage.setItem('tarheel.lang', l); } catch (e) { /* ignore */ }
    render();
  }

  function render() {
    if (S.timer) { clearInterval(S.timer); S.timer = null; }
    document.documentElement.lang = S.lang;
    document.documentElement.dir = t('dir');
    document.title = t('brand') + ' — ' + (S.lang === 'ar' ? 'tarheel' : 'ترحيل');
    var app = $('app');
    app.textContent = '';
    if (!S.user) { add(app, loginPage()); return; }
    var r = route();
    var main = h('main', { id: 'main' });
    add(app, [h('header', { class: 'top' },
      h('div', { class: 'brand' }, h('span', { class: 'logo' }, 'ت'), t('brand')),
      h('nav', null, pages.map(function (p) {
        var cur = r.page === p[0] || (p[0] === 'orders' && r.page === 'order');
        return h('a', { href: '#/' + p[0], class: cur ? 'current' : null, 'aria-current': cur ? 'page' : null, id: 'nav-' + p[0] }, t(p[1]));
      })),
      h('div', { class: 'who' },
        h('button', { class: 'link', id: 'lang', lang: t('other_lang'), onclick: function () { setLang(t('other_lang')); } }, t('other')),
        h('span', { class: 'user' }, S.user + (S.tenant && S.tenant !== 'default' ? ' · ' + S.tenant : '')),
        h('button', { class: 'link', id: 'logout', onclick: logout }, t('logout')))), main]);
    var fn = { orders: ordersPage, order: orderPage, connect: connectPage, settings: settingsPage,
      reports: reportsPage, activity: activityPage }[r.page] || ordersPage;
    loadConns().then(function () { fn(main, r.args); }, function (e) { add(main, errorBox(e)); });
  }

  function loadConns() {
    return api('GET', 'connections').then(function (j) { S.conns = j.connections || []; });
  }

  function loginPage() {
    var msg = h('div', { id: 'login-msg' });
    var form = h('form', { class: 'card login', id: 'login-form', onsubmit: function (ev) {
      ev.preventDefault();
      api('POST', 'login', { user: $('login-user').value, password: $('login-password').value })
        .then(function (j) { S.user = j.user; S.csrf = j.csrf_token; S.tenant = j.tenant; render(); }, fail(msg));
    } },
    h('div', { class: 'brand big' }, h('span', { class: 'logo' }, 'ت'), t('brand')),
    h('h1', null, t('login_title')), h('p', { class: 'muted' }, t('login_hint')),
    field(t('user'), h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, dir: 'ltr' })),
    field(t('password'), h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true, dir: 'ltr' })),
    msg, h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit', id: 'login-submit' }, t('login')),
      h('button', { class: 'link', type: 'button', id: 'lang', onclick: function () { setLang(t('other_lang')); } }, t('other'))));
    return h('div', { class: 'login-wrap' }, form);
  }

  function logout() {
    api('POST', 'logout', {}).then(function () { S.user = null; S.csrf = null; render(); },
      function () { S.user = null; render(); });
  }

  /* ---- Orders ---- */
  var F = { state: '', from: '', to: '', connection: '', q: '' };

  function ordersPage(main) {
    S.selected = {};
    var msg = h('div', { id: 'orders-msg' });
    var tbody = h('tbody', { id: 'orders-body' });
    var moreBtn = h('button', { id: 'more', class: 'hidden' }, t('more'));
    var selBtn = h('button', { class: 'primary', id: 'transfer-selected', disabled: true }, t('transfer_selected', { n: 0 }));
    var cursor = null;

    function updateSel() {
      var n = Object.keys(S.selected).length;
      selBtn.textContent = t('transfer_selected', { n: n });
      selBtn.disabled = n === 0;
    }
    function row(o) {
      var key = o.connection + ':' + o.order_id;
      var cb = h('input', { type: 'checkbox', class: 'sel', 'aria-label': t('select') + ' ' + o.number, 'data-key': key,
        onchange: function () { if (cb.checked) S.selected[key] = o; else delete S.selected[key]; updateSel(); } });
      var reason = o.reason ? reasonSpan(o.reason) : null;
      return h('tr', { 'data-order': String(o.order_id), class: 'row-' + o.state },
        h('td', null, cb),
        h('td', null, h('a', { href: '#/order/' + o.connection + '/' + o.order_id, class: 'num' }, o.number || String(o.order_id))),
        h('td', { class: 'muted nowrap' }, storeName(o.connection)),
        h('td', { class: 'nowrap' }, when(o.created_at)),
        h('td', { class: 'money' }, money(o.total)),
        h('td', null, badge(o.state), reason),
        h('td', { class: 'muted' }, o.qoyod && o.qoyod.invoice_reference ? o.qoyod.invoice_reference : ''));
    }
    function load(reset) {
      if (reset) { tbody.textContent = ''; cursor = null; S.selected = {}; updateSel(); }
      var p = { state: F.state, connection: F.connection, q: F.q, order: 'newest', limit: 50, cursor: cursor };
      if (F.from) p.from = F.from + 'T00:00:00Z';
      if (F.to) p.to = F.to + 'T23:59:59Z';
      tbody.setAttribute('data-loading', '1');
      return api('GET', 'orders' + q(p)).then(function (j) {
        tbody.removeAttribute('data-loading');
        if (reset) tbody.textContent = '';
        j.orders.forEach(function (o) { add(tbody, row(o)); });
        if (!tbody.children.length) add(tbody, h('tr', null, h('td', { colspan: 7, class: 'empty' }, t('no_orders'))));
        cursor = j.next_cursor;
        moreBtn.className = cursor ? '' : 'hidden';
      }, function (e) { tbody.removeAttribute('data-loading'); fail(msg)(e); });
    }
    moreBtn.addEventListener('click', function () { load(false); });
    selBtn.addEventListener('click', function () {
      var by = {};
      Object.keys(S.selected).forEach(function (k) {
        var o = S.selected[k];
        (by[o.connection] = by[o.connection] || []).push(o.order_id);
      });
      var total = 0;
      Promise.all(Object.keys(by).map(function (c) {
        return api('POST', 'orders/transfer', { connection: Number(c), orders: by[c] }).then(function (j) { total += j.count; });
      })).then(function () { note(msg, t('queued', { n: total })); setTimeout(function () { load(true); }, 600); }, fail(msg));
    });

    var stateSel = h('select', { id: 'f-state' }, h('option', { value: '' }, t('all')),
      ['not_transferred', 'transferring', 'transferred', 'failed', 'skipped'].map(function (s) {
        return h('option', { value: s, selected: F.state === s }, t('st_' + s));
      }));
    var filters = h('form', { class: 'filters card', id: 'filters', onsubmit: function (ev) {
      ev.preventDefault();
      F = { state: stateSel.value, from: $('f-from').value, to: $('f-to').value, connection: $('f-store').value, q: $('f-text').value.trim() };
      load(true);
    } },
    field(t('f_state'), stateSel),
    field(t('f_from'), h('input', { type: 'date', id: 'f-from', value: F.from })),
    field(t('f_to'), h('input', { type: 'date', id: 'f-to', value: F.to })),
    field(t('f_store'), storeSelect('f-store', F.connection, true)),
    field(t('f_text'), h('input', { type: 'search', id: 'f-text', value: F.q, dir: 'ltr' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'apply-filters' }, t('filter')),
      h('button', { type: 'button', class: 'link', onclick: function () { F = { state: '', from: '', to: '', connection: '', q: '' }; render(); } }, t('clear'))));

    var tools = h('div', { class: 'toolbar' }, selBtn,
      h('button', { id: 'retry-failed', onclick: function () {
        api('POST', 'orders/retry', {}).then(function (j) { note(msg, t('retried', { n: j.count !== undefined ? j.count : (j.queued || []).length })); setTimeout(function () { load(true); }, 600); }, fail(msg));
      } }, t('retry_failed')),
      h('button', { id: 'pull-open', onclick: function () { pullDialog(msg, function () { load(true); }); } }, t('pull')),
      h('button', { id: 'range-open', onclick: function () { rangeDialog(msg, function () { load(true); }); } }, t('transfer_range')));

    var all = h('input', { type: 'checkbox', id: 'select-all', 'aria-label': t('select_all'), onchange: function () {
      Array.prototype.forEach.call(tbody.querySelectorAll('input.sel'), function (cb) {
        if (cb.checked !== all.checked) { cb.checked = all.checked; cb.dispatchEvent(new Event('change')); }
      });
    } });
    add(main, [h('h1', null, t('nav_orders')), filters, tools, msg,
      h('div', { class: 'card table-wrap' }, h('table', { class: 'orders', id: 'orders' },
        h('thead', null, h('tr', null, h('th', null, all), h('th', null, t('c_number')), h('th', null, t('c_store')),
          h('th', null, t('c_created')), h('th', null, t('c_total')), h('th', null, t('c_state')), h('th', null, t('c_invoice')))),
        tbody)), moreBtn]);
    load(true);
  }

  function dialog(title, body, buttons) {
    var d = h('div', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
      h('div', { class: 'card dialog' }, h('h2', null, title), body, h('div', { class: 'row end' }, buttons)));
    document.body.appendChild(d);
    return { el: d, close: function () { if (d.parentNode) d.parentNode.removeChild(d); } };
  }
  function rangeFields(prefix) {
    var first = today().slice(0, 8) + '01';
    return [field(t('f_store'), storeSelect(prefix + '-store', S.conns.length ? S.conns[0].id : '', false)),
      field(t('f_from'), h('input', { type: 'date', id: prefix + '-from', value: first })),
      field(t('f_to'), h('input', { type: 'date', id: prefix + '-to', value: today() }))];
  }

  function pullDialog(msg, done) {
    var out = h('div', { id: 'pull-status' });
    var bar = h('div', { class: 'bar-fill' });
    var progress = h('div', { class: 'progress hidden', id: 'pull-progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, bar);
    var label = h('div', { id: 'pull-label', class: 'muted' });
    var d;
    var start = h('button', { class: 'primary', id: 'pull-start', onclick: function () {
      start.disabled = true;
      api('POST', 'pulls', { connection: Number($('pull-store').value), from: $('pull-from').value, to: $('pull-to').value })
        .then(function (p) { progress.className = 'progress'; watch(p.id); }, function (e) { start.disabled = false; fail(out)(e); });
    } }, t('start'));
    function show(p) {
      var pct = p.total ? Math.round(100 * p.pulled / p.total) : (p.state === 'done' ? 100 : 0);
      bar.style.width = pct + '%';
      progress.setAttribute('aria-valuenow', String(pct));
      label.textContent = p.total === null && p.state === 'running' ? t('pull_listing') : t('pull_progress', { pulled: p.pulled, total: p.total === null ? '…' : p.total });
      if (p.state === 'done') { note(out, t('pull_done', { added: p.added, known: p.known })); progress.classList.add('done'); done(); }
      if (p.state === 'failed') fail(out)({ info: p.error });
    }
    function watch(id) {
      var tick = function () {
        api('GET', 'pulls/' + id).then(function (p) {
          show(p);
          if (p.state === 'running') setTimeout(tick, 300);
        }, fail(out));
      };
      tick();
    }
    d = dialog(t('pull_title'), [h('p', { class: 'muted' }, t('pull_hint')), rangeFields('pull'), progress, label, out],
      [start, h('button', { id: 'pull-close', onclick: function () { d.close(); } }, t('close'))]);
  }

  function rangeDialog(msg, done) {
    var out = h('div', { id: 'range-status' });
    var d;
    var confirmBtn = h('button', { class: 'primary hidden', id: 'range-confirm' }, t('confirm'));
    var count = h('button', { class: 'primary', id: 'range-count', onclick: function () {
      var body = { connection: Number($('range-store').value), from: $('range-from').value, to: $('range-to').value };
      api('POST', 'orders/transfer', Object.assign({ dry_run: true }, body)).then(function (j) {
        if (!j.count) { note(out, t('range_none'), 'info'); return; }
        note(out, t('range_count', { n: j.count, from: '\u2066' + j.from + '\u2069', to: '\u2066' + j.to + '\u2069' }), 'warn');
        count.className = 'hidden';
        confirmBtn.className = 'primary';
        confirmBtn.onclick = function () {
          api('POST', 'orders/transfer', body).then(function (r) { d.close(); note(msg, t('queued', { n: r.count })); setTimeout(done, 600); }, fail(out));
        };
      }, fail(out));
    } }, t('transfer_range'));
    d = dialog(t('range_title'), [rangeFields('range'), out], [count, confirmBtn, h('button', { onclick: function () { d.close(); } }, t('cancel'))]);
  }

  /* ---- One order ---- */
  function orderPage(main, args) {
    var msg = h('div', { id: 'order-msg' });
    add(main, [h('p', null, h('a', { href: '#/orders' }, '← ' + t('back'))), msg]);
    api('GET', 'orders/' + encodeURIComponent(args[0]) + '/' + encodeURIComponent(args[1])).then(function (o) {
      var dl = h('dl', { class: 'facts' },
        h('dt', null, t('c_store')), h('dd', null, storeName(o.connection)),
        h('dt', null, t('c_id')), h('dd', null, String(o.order_id)),
        h('dt', null, t('c_created')), h('dd', null, when(o.created_at)),
        h('dt', null, t('c_status')), h('dd', null, statusName(o.status)),
        h('dt', null, t('c_total')), h('dd', null, money(o.total)),
        h('dt', null, t('attempts')), h('dd', null, String(o.attempts)),
        h('dt', null, t('c_state')), h('dd', null, badge(o.state)));
      var rp = o.reason ? reasonParts(o.reason) : null;
      var reason = rp ? h('div', { class: 'alert error', id: 'order-reason' },
        msgEl('strong', rp.local ? rp.head : (o.reason.code ? o.reason.code + ': ' : '') + rp.head, rp.local),
        rp.remedy ? h('div', { class: 'remedy' }, t('remedy') + ': ' + rp.remedy) : null) : null;
      var qy = o.qoyod ? h('dl', { class: 'facts', id: 'order-qoyod' },
        h('dt', null, t('invoice')), h('dd', null, String(o.qoyod.invoice_id)),
        h('dt', null, t('reference')), h('dd', null, o.qoyod.invoice_reference || ''),
        h('dt', null, t('payment')), h('dd', null, o.qoyod.payment_id ? String(o.qoyod.payment_id) : '—'),
        h('dt', null, t('c_total')), h('dd', null, money(o.qoyod.total))) : null;
      var hist = h('table', { class: 'history', id: 'order-history' },
        h('thead', null, h('tr', null, h('th', null, t('h_at')), h('th', null, t('h_what')), h('th', null, t('h_detail')))),
        h('tbody', null, (o.history || []).map(function (e) {
          return h('tr', null, h('td', { class: 'nowrap' }, when(e.at)), h('td', null, eventName(e.what)), h('td', { class: 'detail', dir: 'auto' }, localText(e.detail).text));
        })));
      var again = o.state !== 'transferred' ? h('button', { class: 'primary', id: 'order-transfer', onclick: function () {
        api('POST', 'orders/transfer', { connection: o.connection, orders: [o.order_id] })
          .then(function () { note(msg, t('queued', { n: 1 })); setTimeout(render, 800); }, fail(msg));
      } }, t('transfer_now')) : null;
      add(main, [h('h1', null, t('order') + ' ' + (o.number || o.order_id)), h('div', { class: 'card' }, dl, reason, again),
        qy ? h('div', { class: 'card' }, h('h2', null, t('qoyod_ids')), qy) : null,
        h('div', { class: 'card' }, h('h2', null, t('history')), hist)]);
    }, fail(msg));
  }

  /* ---- Connect ---- */
  function connectPage(main, args) {
    var msg1 = h('div', { id: 'key-msg' }), msg2 = h('div', { id: 'inv-msg' });
    var invSel = h('select', { id: 'inv-select' });
    var step2 = h('div', { class: 'hidden', id: 'step2' },
      h('p', null, t('key_ok')),
      field(t('inventory'), invSel), field(t('f_store'), storeSelect('inv-store', S.conns.length ? S.conns[0].id : '', false)),
      h('button', { class: 'primary', id: 'inv-save', onclick: function () {
        api('PUT', 'connections/' + $('inv-store').value + '/qoyod', { api_key: $('qoyod-key').value.trim(), inventory_id: Number(invSel.value) })
          .then(function () { note(msg2, t('saved')); loadConns().then(health); }, fail(msg2));
      } }, t('save')), msg2);
    var keyForm = h('form', { id: 'key-form', onsubmit: function (ev) {
      ev.preventDefault();
      step2.className = 'hidden';
      api('POST', 'qoyod/check', { api_key: $('qoyod-key').value.trim() }).then(function (j) {
        msg1.textContent = '';
        invSel.textContent = '';
        j.inventories.forEach(function (i) {
          add(invSel, h('option', { value: String(i.id) }, i.id + ' — ' + (S.lang === 'ar' ? (i.ar_name || i.name) : (i.name || i.ar_name))));
        });
        step2.className = '';
      }, fail(msg1));
    } }, h('p', { class: 'muted' }, t('step1_hint')),
    h('div', { class: 'row' }, field(t('api_key'), h('input', { id: 'qoyod-key', autocomplete: 'off', dir: 'ltr', required: true })),
      h('button', { type: 'submit', class: 'primary', id: 'key-check' }, t('check'))), msg1);
    var cards = h('div', { class: 'health', id: 'health' });
    function health() {
      cards.textContent = '';
      if (!S.conns.length) { add(cards, h('p', { class: 'muted' }, t('no_stores'))); return; }
      S.conns.forEach(function (c) {
        var cr = c.credentials || {};
        var card = h('div', { class: 'card conn state-' + c.state, 'data-conn': String(c.id) },
          h('h3', null, storeName(c.id), ' ', h('span', { class: 'badge conn-' + c.state }, t('state_' + c.state))),
          h('dl', { class: 'facts' },
            h('dt', null, t('tokens')), h('dd', null, cr.access_token ? t('set') + (cr.token_expires_at ? ' · ' + t('expires', { d: when(cr.token_expires_at, true) }) : '') : t('missing')),
            h('dt', null, t('webhooks')), h('dd', null, (cr.webhook_secret ? t('set') : t('missing')) + ' · ' + (cr.webhook_strategy || '')),
            h('dt', null, 'Qoyod'), h('dd', null, (cr.qoyod_api_key ? t('set') : t('missing')) + ' · ' + t('inventory') + ' ' + c.settings.inventory_id),
            h('dt', null, t('connected_at')), h('dd', null, when(c.connected_at)),
            h('dt', null, t('last_sync')), h('dd', { class: 'last-sync' }, '…')));
        add(cards, card);
        api('GET', 'orders' + q({ connection: c.id, order: 'newest', limit: 1 })).then(function (j) {
          var o = j.orders[0];
          card.querySelector('.last-sync').textContent = o ? when(o.updated_at || o.created_at) : t('never');
        }, function () { /* shown as … */ });
      });
    }
    /* #/connect/done/<platform>/<store> or #/connect/failed/<reason>: the
     * OAuth callback's outcome. */
    var outcome = h('div', { id: 'connect-outcome' });
    if (args[0] === 'done') note(outcome, t('connected_ok', { p: t('pf_' + args[1]), id: args[2] }));
    if (args[0] === 'failed') fail(outcome)({ info: { message: t('connect_failed') + ': ' + decodeURIComponent(args[1] || '') } });
    var connMsg = h('div', { id: 'connect-msg' });
    function startConnect(p) {
      var body = {};
      var key = $('qoyod-key').value.trim();
      if (key && !$('step2').classList.contains('hidden')) { body.api_key = key; body.inventory_id = Number(invSel.value); }
      api('POST', 'connect/' + p, body).then(function (j) { location.href = j.authorize_url; }, fail(connMsg));
    }
    var buttons = h('div', { class: 'row', id: 'connect-buttons' });
    var howto = h('div', { id: 'connect-howto' }, h('p', null, t('salla_how')), h('p', null, t('zid_how')),
      h('pre', { dir: 'ltr' }, 'tarheel connect zid --oauth --client-id ID --client-secret SECRET \\\n  --public-url https://YOUR-HOST --qoyod-key KEY --inventory ID'));
    api('GET', 'connect').then(function (ready) {
      ['zid', 'salla'].forEach(function (p) {
        if (ready[p]) add(buttons, h('button', { class: 'primary', id: 'connect-' + p, onclick: function () { startConnect(p); } }, t('connect_' + p)));
      });
      if (!ready.zid && !ready.salla) add(buttons, h('p', { class: 'muted' }, t('connect_off')));
    }, function () { /* older API: the instructions only */ });
    add(main, [h('h1', null, t('connect_title')), outcome,
      h('div', { class: 'card' }, h('h2', null, t('step1')), keyForm, step2),
      h('div', { class: 'card' }, h('h2', null, t('step3')), h('p', { class: 'muted' }, t('connect_hint')), buttons, connMsg, howto),
      h('h2', null, t('health')), cards]);
    health();
    S.timer = setInterval(function () { loadConns().then(health); }, 10000);
  }

  /* ---- Settings ---- */
  var KNOWN = ['trigger', 'customer_per_invoice', 'number_by_order', 'financial_invoice', 'inventory_id', 'payment_account_id'];
  function settingsPage(main, args) {
    var msg = h('div', { id: 'settings-msg' });
    var form = h('form', { class: 'card settings', id: 'settings-form' });
    var cur = args[0] || (S.conns[0] && S.conns[0].id);
    var sel = storeSelect('settings-store', cur, false);
    sel.addEventListener('change', function () { location.hash = '#/settings/' + sel.value; });
    add(main, [h('h1', null, t('settings_title')), field(t('f_store'), sel), form, msg]);
    if (!cur) { add(form, h('p', { class: 'muted' }, t('no_stores'))); return; }
    api('GET', 'connections/' + cur + '/settings').then(function (st) {
      var inputs = {};
      inputs.trigger = h('select', { id: 's-trigger' }, ['new', 'ready', 'in_transit', 'completed'].map(function (v) {
        return h('option', { value: v, selected: st.trigger === v }, t('tr_' + v));
      }));
      add(form, field(t('trigger'), inputs.trigger));
      ['customer_per_invoice', 'number_by_order', 'financial_invoice'].forEach(function (k) {
        inputs[k] = h('input', { type: 'checkbox', id: 's-' + k, checked: st[k] });
        add(form, h('label', { class: 'check' }, inputs[k], h('span', null, t(k))));
      });
      ['inventory_id', 'payment_account_id'].forEach(function (k) {
        inputs[k] = h('input', { type: 'number', min: 0, id: 's-' + k, value: String(st[k] || 0), dir: 'ltr' });
        add(form, field(t(k), inputs[k]));
      });
      /* Settings this dashboard does not know by name (newer tarheel):
       * shown and saved as they are. */
      Object.keys(st).forEach(function (k) {
        if (KNOWN.indexOf(k) >= 0) return;
        var v = st[k];
        if (/_source$/.test(k)) { /* a field's source of truth: store or Qoyod */
          inputs[k] = h('select', { id: 's-' + k }, ['store', 'qoyod'].map(function (o) {
            return h('option', { value: o, selected: v === o }, t('src_' + o));
          }));
          add(form, field(t(k), inputs[k]));
          return;
        }
        inputs[k] = typeof v === 'boolean' ? h('input', { type: 'checkbox', id: 's-' + k, checked: v })
          : h('input', { id: 's-' + k, value: String(v), dir: 'ltr', 'data-type': typeof v });
        add(form, typeof v === 'boolean' ? h('label', { class: 'check' }, inputs[k], h('span', null, t(k)))
          : field(t(k), inputs[k]));
      });
      if (st.stock_sync === undefined)
        add(form, h('fieldset', { class: 'muted', disabled: true, id: 'stock-na' },
          h('legend', null, t('stock_sync') + ' · ' + t('conflict_policy')), h('p', null, t('not_in_version'))));
      add(form, h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit', id: 'settings-save' }, t('save'))));
      form.addEventListener('submit', function (ev) {
        ev.preventDefault();
        var body = {};
        Object.keys(inputs).forEach(function (k) {
          var el = inputs[k];
          if (el.type === 'checkbox') body[k] = el.checked;
          else if (el.type === 'number' || el.getAttribute('data-type') === 'number') body[k] = Number(el.value);
          else body[k] = el.value;
        });
        if (!body.payment_account_id) delete body.payment_account_id;
        api('PATCH', 'connections/' + cur + '/settings', body).then(function () { note(msg, t('saved')); }, fail(msg));
      });
      if (st.fields_sync !== undefined) conflictsCard(main, cur);
    }, fail(msg));
  }

  /* Product fields both sides changed differently (docs/FIELDS.md): open
   * ones for this store, each reviewed as it is or with one side kept. */
  function conflictsCard(main, conn) {
    var card = h('div', { class: 'card', id: 'conflicts' });
    var cmsg = h('div', { id: 'conflicts-msg' });
    add(main, card);
    function value(c, v) {
      return c.unit === 'halalas' ? money({ decimal: (Number(v) / 100).toFixed(2) }) : String(v);
    }
    function load() {
      card.textContent = '';
      add(card, [h('h2', null, t('conflicts_title')), h('p', { class: 'muted' }, t('conflicts_hint')), cmsg]);
      api('GET', 'conflicts' + q({ connection: conn })).then(function (j) {
        if (!j.conflicts.length) { add(card, h('p', { class: 'muted', id: 'no-conflicts' }, t('no_conflicts'))); return; }
        add(card, h('div', { class: 'table-wrap' }, h('table', { id: 'conflicts-table' },
          h('thead', null, h('tr', null, ['c_sku', 'c_field', 'c_store_value', 'c_qoyod_value', 'c_won', 'c_when', ''].map(function (k) {
            return h('th', null, k ? t(k) : '');
          }))),
          h('tbody', null, j.conflicts.map(function (c) {
            function act(keep, label) {
              return h('button', { onclick: function () {
                api('POST', 'conflicts/' + c.id + '/resolve', keep ? { keep: keep } : {}).then(function () { note(cmsg, t('saved')); load(); }, fail(cmsg));
              } }, t(label));
            }
            return h('tr', { 'data-id': String(c.id) }, h('td', { dir: 'ltr' }, c.sku), h('td', null, t(c.field + '_field')),
              h('td', null, value(c, c.store_value)), h('td', null, value(c, c.qoyod_value)),
              h('td', null, t('src_' + c.winner)), h('td', null, when(c.at)),
              h('td', { class: 'row' }, act(null, 'reviewed'), act('store', 'keep_store'), act('qoyod', 'keep_qoyod')));
          })))));
      }, fail(cmsg));
    }
    load();
  }

  /* ---- Reports ---- */
  function reportsPage(main, args) {
    var msg = h('div', { id: 'report-msg' });
    var out = h('div', { id: 'report' });
    var recon = h('div', { id: 'recon' });
    var cur = args[0] || (S.conns[0] && S.conns[0].id);
    var sel = storeSelect('report-store', cur, false);
    var y = today().slice(0, 4);
    var from = h('input', { type: 'month', id: 'report-from', value: y + '-01' });
    var to = h('input', { type: 'month', id: 'report-to', value: today().slice(0, 7) });
    var form = h('form', { class: 'filters card', onsubmit: function (ev) { ev.preventDefault(); show(); } },
      field(t('f_store'), sel), field(t('f_from'), from), field(t('f_to'), to),
      h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'report-show' }, t('show'))));
    add(main, [h('h1', null, t('reports_title')), form, msg, out, h('h2', null, t('recon_title')), recon]);
    function show() {
      out.textContent = '';
      if (!sel.value) { add(out, h('p', { class: 'muted' }, t('no_stores'))); return; }
      api('GET', 'reports/monthly' + q({ connection: sel.value, from: from.value, to: to.value })).then(function (r) {
        var max = 1;
        r.months.forEach(function (m) { max = Math.max(max, Number(m.sales.halalas)); });
        var chart = h('div', { class: 'chart', id: 'report-chart', role: 'img', 'aria-label': t('chart_title') },
          r.months.map(function (m) {
            var bar = h('div', { class: 'bar' });
            bar.style.height = Math.round(100 * Number(m.sales.halalas) / max) + '%';
            var ok = h('span', { class: 'ok' }), bad = h('span', { class: 'bad' });
            var n = Math.max(1, m.transferred + m.failed);
            ok.style.width = (100 * m.transferred / n) + '%';
            bad.style.width = (100 * m.failed / n) + '%';
            return h('div', { class: 'col', title: m.month + ': ' + money(m.sales) },
              h('div', { class: 'barbox' }, bar), h('div', { class: 'split' }, ok, bad), h('div', { class: 'lbl' }, m.month.slice(5)));
          }));
        function tr(m, label) {
          return h('tr', null, h('td', null, label), h('td', null, String(m.orders)), h('td', null, String(m.transferred)),
            h('td', null, String(m.failed)), h('td', { class: 'money' }, money(m.sales)), h('td', { class: 'money' }, money(m.vat)),
            h('td', { class: 'money' }, m.credit_notes && m.credit_notes.total ? money(m.credit_notes.total) : ''),
            h('td', { class: 'money' }, m.net_sales ? money(m.net_sales) : ''));
        }
        add(out, [h('div', { class: 'card' }, h('h2', null, t('chart_title')), chart,
          h('div', { class: 'legend' }, h('span', { class: 'k sales' }), t('sales'), ' ', h('span', { class: 'k ok' }), t('transferred'), ' ', h('span', { class: 'k bad' }), t('failed'))),
        h('div', { class: 'card table-wrap' }, h('table', { id: 'report-table' },
          h('thead', null, h('tr', null, [t('month'), t('orders'), t('transferred'), t('failed'), t('sales'), t('vat'), t('credited'), t('net_sales')].map(function (x) { return h('th', null, x); }))),
          h('tbody', null, r.months.map(function (m) { return tr(m, m.month); })),
          h('tfoot', null, tr(r.total, t('totals')))))]);
      }, fail(msg));
      recon.textContent = '';
      api('GET', 'reconcile' + q({ connection: sel.value })).then(function (j) {
        add(recon, h('pre', { class: 'card', dir: 'ltr' }, JSON.stringify(j, null, 2)));
      }, function (e) {
        add(recon, h('p', { class: 'muted', id: 'recon-na' }, e.status === 404 ? t('not_in_version') : e.message));
      });
    }
    show();
  }

  /* ---- Activity ---- */
  function activityPage(main) {
    var out = h('div', { id: 'activity-result' });
    var errs = h('tbody', { id: 'errors-body' }), recent = h('tbody', { id: 'recent-body' });
    var form = h('form', { class: 'filters card', id: 'activity-form', onsubmit: function (ev) {
      ev.preventDefault();
      out.textContent = '';
      var text = $('activity-q').value.trim();
      if (!text) return;
      api('GET', 'orders' + q({ q: text, limit: 20, order: 'newest' })).then(function (j) {
        if (!j.orders.length) { add(out, h('p', { class: 'muted' }, t('no_orders'))); return; }
        j.orders.forEach(function (o) {
          api('GET', 'orders/' + o.connection + '/' + o.order_id).then(function (d) {
            add(out, h('div', { class: 'card' },
              h('h3', null, h('a', { href: '#/order/' + o.connection + '/' + o.order_id }, t('order') + ' ' + (o.number || o.order_id)), ' ',
                h('span', { class: 'muted' }, t('c_id') + ' ' + o.order_id), ' ', badge(o.state)),
              h('table', { class: 'history' }, h('tbody', null, (d.history || []).map(function (e) {
                return h('tr', null, h('td', { class: 'nowrap' }, when(e.at)), h('td', null, eventName(e.what)), h('td', { class: 'detail', dir: 'auto' }, localText(e.detail).text));
              })))));
          });
        });
      }, fail(out));
    } }, field(t('search_order'), h('input', { type: 'search', id: 'activity-q', dir: 'ltr' })),
    h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'activity-search' }, t('search'))));
    function line(o, withReason) {
      return h('tr', null, h('td', { class: 'nowrap' }, when(o.updated_at || o.created_at)),
        h('td', null, h('a', { href: '#/order/' + o.connection + '/' + o.order_id }, o.number || String(o.order_id))),
        h('td', { class: 'muted' }, storeName(o.connection)), h('td', null, badge(o.state)),
        h('td', null, withReason && o.reason ? reasonSpan(o.reason) : ''));
    }
    add(main, [h('h1', null, t('activity_title')), form, out,
      h('div', { class: 'card' }, h('h2', null, t('recent_errors')), h('table', null, errs)),
      h('div', { class: 'card' }, h('h2', null, t('recent_changes')), h('table', null, recent))]);
    api('GET', 'orders' + q({ state: 'failed', order: 'newest', limit: 20 })).then(function (j) {
      j.orders.forEach(function (o) { add(errs, line(o, true)); });
      if (!j.orders.length) add(errs, h('tr', null, h('td', { class: 'empty' }, t('no_orders'))));
    });
    api('GET', 'orders' + q({ order: 'newest', limit: 200 })).then(function (j) {
      j.orders.sort(function (a, b) { return (b.updated_at || '').localeCompare(a.updated_at || ''); });
      j.orders.slice(0, 20).forEach(function (o) { add(recent, line(o, true)); });
    });
  }

  /* ---- start ---- */
  window.addEventListener('hashchange', function () { if (S.user) render(); });
  document.addEventListener('DOMContentLoaded', function () {
    api('GET', 'session').then(function (j) { S.user = j.user; S.csrf = j.csrf_token; S.tenant = j.tenant; render(); },
      function () { S.user = null; render(); });
  });
})();
