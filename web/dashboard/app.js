// TrackFlow dashboard: plain browser JavaScript, no build step, no third-party code.
// Every figure comes from the worker's read API (/v1/stats/...) with the read secret as a
// Bearer token. Rendered numbers carry data-value (the raw figure) and a stable data-testid.
// All text from the API (URLs, error messages, stacks) is set with textContent, never as HTML.
'use strict';

(function () {
  const STORAGE_KEY = 'trackflow.readSecret';
  const PRESETS = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3, '90d': 90 * 86400e3 };
  const FILTERS = ['page_url', 'device_type', 'os', 'browser', 'country'];
  const DIMENSIONS = ['device_type', 'os', 'browser', 'country'];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const SERIES = [
    { key: 'page_views', label: 'page views', color: '#2f6fed' },
    { key: 'sessions', label: 'sessions', color: '#18a37a' },
    { key: 'users', label: 'users', color: '#e08a1e' },
  ];

  const $ = (id) => document.getElementById(id);
  let generation = 0; // drops responses of superseded refreshes
  let selectedFingerprint = null;

  // -- small DOM helpers ---------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (name === 'class') node.className = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const intFmt = new Intl.NumberFormat('en-US');
  const fmt = {
    int: (v) => (v === null || v === undefined ? '–' : intFmt.format(v)),
    dec: (v) => (v === null || v === undefined ? '–' : v.toFixed(2)),
    pct: (v) => (v === null || v === undefined ? '–' : (v * 100).toFixed(1) + '%'),
    ms: (v) => (v === null || v === undefined ? '–' : intFmt.format(Math.round(v))),
    duration(ms) {
      if (ms === null || ms === undefined) return '–';
      const s = Math.round(ms / 1000);
      if (s < 60) return s + 's';
      const m = Math.floor(s / 60);
      if (m < 60) return m + 'm ' + (s % 60) + 's';
      return Math.floor(m / 60) + 'h ' + (m % 60) + 'm';
    },
    time(ms) {
      return ms === null || ms === undefined ? '–' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + 'Z';
    },
  };

  function setFigure(id, value, format) {
    const node = $(id);
    node.dataset.value = value === null || value === undefined ? '' : String(value);
    node.textContent = format(value);
  }

  function setStatus(state, text) {
    const node = $('status');
    node.dataset.state = state;
    node.textContent = text;
  }

  // -- secret and API --------------------------------------------------------------------------
  function secret() {
    return localStorage.getItem(STORAGE_KEY) || '';
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || 'HTTP ' + status);
      this.status = status;
    }
  }

  async function api(path, params, token) {
    const query = new URLSearchParams(params || {});
    const response = await fetch(path + (query.toString() ? '?' + query : ''), {
      headers: { Authorization: 'Bearer ' + (token || secret()) },
      cache: 'no-store',
    });
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  function showLogin(message) {
    $('dashboard').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('tenant-label').textContent = '';
    const error = $('login-error');
    error.hidden = !message;
    error.textContent = message || '';
    setStatus('idle', 'not connected');
    $('secret').focus();
  }

  function showDashboard() {
    $('login').hidden = true;
    $('dashboard').hidden = false;
    $('logout').hidden = false;
  }

  // -- range and filters (kept in the URL fragment, so a view can be shared or reloaded) -------
  function toLocalInput(ms) {
    return new Date(ms).toISOString().slice(0, 16); // shown and read as UTC
  }

  function fromLocalInput(value) {
    if (!value) return null;
    const ms = Date.parse(value + ':00Z');
    return Number.isNaN(ms) ? null : ms;
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    if (params.has('from') || params.has('to')) {
      $('preset').value = 'custom';
      const from = Date.parse(params.get('from') || '');
      const to = Date.parse(params.get('to') || '');
      if (!Number.isNaN(from)) $('from').value = toLocalInput(from);
      if (!Number.isNaN(to)) $('to').value = toLocalInput(to);
    } else if (params.get('preset') in PRESETS) {
      $('preset').value = params.get('preset');
    }
    if (params.get('interval')) $('interval').value = params.get('interval');
    for (const name of FILTERS) $('f-' + name).value = params.get(name) || '';
    $('include-bots').checked = params.get('include_bots') === '1';
  }

  function writeHash(range) {
    const params = new URLSearchParams();
    if ($('preset').value === 'custom') {
      params.set('from', new Date(range.from).toISOString());
      params.set('to', new Date(range.to).toISOString());
    } else {
      params.set('preset', $('preset').value);
    }
    if ($('interval').value !== 'auto') params.set('interval', $('interval').value);
    for (const [name, value] of Object.entries({ ...filters(), ...bots() })) params.set(name, value);
    history.replaceState(null, '', '#' + params.toString());
  }

  function currentRange() {
    const preset = $('preset').value;
    if (preset in PRESETS) {
      const to = Date.now();
      const from = to - PRESETS[preset];
      $('from').value = toLocalInput(from);
      $('to').value = toLocalInput(to);
      return { from, to };
    }
    const from = fromLocalInput($('from').value);
    const to = fromLocalInput($('to').value);
    if (from === null || to === null) throw new ApiError(400, { message: 'choose both From and To' });
    return { from, to };
  }

  function filters() {
    const out = {};
    for (const name of FILTERS) {
      const value = $('f-' + name).value.trim();
      if (value) out[name] = value;
    }
    return out;
  }

  // Bots (is_bot rows) are left out by the read API unless include_bots=1.
  function bots() {
    return $('include-bots').checked ? { include_bots: '1' } : {};
  }

  function setFilter(name, value) {
    $('f-' + name).value = value === null || value === undefined ? '' : value;
    refresh();
  }

  // -- rendering -------------------------------------------------------------------------------
  function emptyRow(tbody, columns, text) {
    tbody.replaceChildren(el('tr', {}, el('td', { class: 'empty', colspan: columns }, text || 'no data')));
  }

  // columns: [{field, format, num, bar}]; each cell carries data-field and data-value.
  function renderRows(tbody, rows, columns, testid, onClick) {
    if (!rows.length) return emptyRow(tbody, columns.length);
    const max = Math.max(1, ...rows.map((row) => Number(row[columns[1].field]) || 0));
    tbody.replaceChildren(
      ...rows.map((row, index) => {
        const tr = el('tr', { 'data-testid': testid, 'data-index': index, class: onClick ? 'clickable' : null });
        columns.forEach((column, i) => {
          const value = row[column.field];
          const td = el(
            'td',
            { 'data-field': column.field, 'data-value': value === null || value === undefined ? '' : value, class: column.num ? 'num' : null },
            (column.format || ((v) => (v === null || v === undefined ? '(unknown)' : v)))(value)
          );
          if (i === 0 && column.bar) {
            const bar = el('span', { class: 'bar' });
            bar.style.width = Math.max(2, (100 * (Number(row[columns[1].field]) || 0)) / max) + '%';
            td.append(bar);
          }
          tr.append(td);
        });
        if (onClick) tr.addEventListener('click', () => onClick(row, tr));
        return tr;
      })
    );
  }

  // The top of a 4-tick axis: a whole, round step per tick.
  function niceMax(value) {
    const raw = Math.max(1, value / 4);
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      const tick = step * magnitude;
      if (tick >= raw && Number.isInteger(tick)) return tick * 4;
    }
    return 10 * magnitude * 4;
  }

  function bucketLabel(ms, interval) {
    const iso = new Date(ms).toISOString();
    if (interval === 'day') return iso.slice(5, 10);
    return iso.slice(5, 10) + ' ' + iso.slice(11, 16);
  }

  // A hand-drawn SVG chart: lines (traffic) or bars (health), hover titles per bucket.
  function drawChart(container, points, series, interval, opts) {
    const width = 960;
    const height = (opts && opts.height) || 240;
    const pad = { left: 48, right: 12, top: 10, bottom: 24 };
    const innerW = width - pad.left - pad.right;
    const innerH = height - pad.top - pad.bottom;
    const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': (opts && opts.label) || 'chart' });
    const max = niceMax(Math.max(0, ...points.flatMap((p) => series.map((s) => p[s.key] || 0))));
    const n = Math.max(points.length, 1);
    const x = (i) => pad.left + (n === 1 ? innerW / 2 : (i * innerW) / (n - 1));
    const y = (v) => pad.top + innerH - (v / max) * innerH;
    for (let t = 0; t <= 4; t++) {
      const value = (max * t) / 4;
      svg.append(svgEl('line', { class: 'axis', x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value) }));
      svg.append(svgEl('text', { x: pad.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, intFmt.format(value)));
    }
    const labels = Math.min(6, n);
    for (let k = 0; k < labels; k++) {
      const i = labels === 1 ? 0 : Math.round((k * (n - 1)) / (labels - 1));
      if (!points[i]) continue;
      const anchor = labels > 1 && k === 0 ? 'start' : labels > 1 && k === labels - 1 ? 'end' : 'middle';
      const at = opts && opts.bars ? pad.left + ((i + 0.5) * innerW) / n : x(i);
      svg.append(svgEl('text', { x: at, y: height - 6, 'text-anchor': anchor }, bucketLabel(points[i].t, interval)));
    }
    if (opts && opts.bars) {
      const w = Math.max(1, innerW / n - 1);
      points.forEach((p, i) => {
        const v = p[series[0].key] || 0;
        const left = pad.left + (i * innerW) / n;
        const bar = svgEl('rect', { x: left, y: y(v), width: w, height: Math.max(0, pad.top + innerH - y(v)), fill: series[0].color });
        bar.append(svgEl('title', {}, bucketLabel(p.t, interval) + ': ' + intFmt.format(v) + ' ' + series[0].label));
        svg.append(bar);
      });
    } else {
      for (const s of series) {
        const coords = points.map((p, i) => `${x(i).toFixed(1)},${y(p[s.key] || 0).toFixed(1)}`).join(' ');
        svg.append(svgEl('polyline', { points: coords, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round' }));
        if (points.length <= 60) {
          points.forEach((p, i) => svg.append(svgEl('circle', { cx: x(i), cy: y(p[s.key] || 0), r: 2.5, fill: s.color })));
        }
      }
      const slot = innerW / n;
      points.forEach((p, i) => {
        const hit = svgEl('rect', { x: x(i) - slot / 2, y: pad.top, width: slot, height: innerH, fill: 'transparent' });
        hit.append(svgEl('title', {}, bucketLabel(p.t, interval) + '\n' + series.map((s) => s.label + ': ' + intFmt.format(p[s.key] || 0)).join('\n')));
        svg.append(hit);
      });
    }
    container.replaceChildren(svg);
  }

  function renderTraffic(traffic) {
    setFigure('total-page-views', traffic.totals.page_views, fmt.int);
    setFigure('total-sessions', traffic.totals.sessions, fmt.int);
    setFigure('total-users', traffic.totals.users, fmt.int);
    const chart = $('traffic-chart');
    chart.dataset.points = traffic.series.length;
    chart.dataset.interval = traffic.range.interval;
    chart.dataset.sumPageViews = traffic.series.reduce((sum, p) => sum + p.page_views, 0);
    drawChart(chart, traffic.series, SERIES, traffic.range.interval, { label: 'traffic per ' + traffic.range.interval });
    $('range-label').textContent =
      fmt.time(traffic.range.from) + ' → ' + fmt.time(traffic.range.to) + ', per ' + traffic.range.interval;
  }

  function renderSessions(s) {
    setFigure('pages-per-session', s.pages_per_session, fmt.dec);
    setFigure('bounce-rate', s.bounce_rate, fmt.pct);
    setFigure('avg-duration', s.avg_duration_ms, fmt.duration);
    const node = $('avg-duration');
    node.dataset.sessions = s.sessions;
    node.dataset.bounces = s.bounces;
  }

  function renderLists(pages, referrers, breakdowns) {
    renderRows(
      $('pages-body'),
      pages.pages,
      [{ field: 'page_url', bar: true }, { field: 'page_views', num: true, format: fmt.int }, { field: 'sessions', num: true, format: fmt.int }],
      'pages-row',
      (row) => setFilter('page_url', row.page_url)
    );
    renderRows(
      $('referrers-body'),
      referrers.referrers,
      [{ field: 'referrer', bar: true }, { field: 'page_views', num: true, format: fmt.int }, { field: 'sessions', num: true, format: fmt.int }],
      'referrers-row'
    );
    DIMENSIONS.forEach((dimension, i) => {
      renderRows(
        $('breakdown-' + dimension),
        breakdowns[i].rows,
        [{ field: 'value', bar: true }, { field: 'sessions', num: true, format: fmt.int }, { field: 'page_views', num: true, format: fmt.int }],
        'breakdown-row',
        dimension === 'country' ? null : (row) => setFilter(dimension, row.value)
      );
    });
  }

  function renderErrors(errors, params, gen) {
    $('errors-total').textContent = fmt.int(errors.total_errors);
    $('errors-total').dataset.value = errors.total_errors;
    $('errors-groups').textContent = fmt.int(errors.total_groups);
    $('errors-groups').dataset.value = errors.total_groups;
    const tbody = $('errors-body');
    if (!errors.groups.length) {
      emptyRow(tbody, 6, 'no errors in this range');
      $('error-detail').hidden = true;
      return;
    }
    tbody.replaceChildren(
      ...errors.groups.map((group) => {
        const tr = el(
          'tr',
          { class: 'clickable' + (group.fingerprint === selectedFingerprint ? ' selected' : ''), 'data-testid': 'error-row', 'data-fingerprint': group.fingerprint },
          el('td', { 'data-field': 'message', 'data-value': group.message }, (group.name ? group.name + ': ' : '') + group.message),
          el('td', { 'data-field': 'source', 'data-value': group.source || '' }, (group.source || '–') + (group.line !== null ? ':' + group.line : '')),
          el('td', { class: 'num', 'data-field': 'count', 'data-value': group.count }, fmt.int(group.count)),
          el('td', { class: 'num', 'data-field': 'sessions', 'data-value': group.sessions }, fmt.int(group.sessions)),
          el('td', { 'data-field': 'first_seen', 'data-value': group.first_seen }, fmt.time(group.first_seen)),
          el('td', { 'data-field': 'last_seen', 'data-value': group.last_seen }, fmt.time(group.last_seen))
        );
        tr.addEventListener('click', () => showErrorDetail(group.fingerprint, params, generation));
        return tr;
      })
    );
    if (selectedFingerprint && errors.groups.some((g) => g.fingerprint === selectedFingerprint)) {
      showErrorDetail(selectedFingerprint, params, gen);
    } else {
      $('error-detail').hidden = true;
    }
  }

  async function showErrorDetail(fingerprint, params, gen) {
    selectedFingerprint = fingerprint;
    for (const row of document.querySelectorAll('#errors-body tr')) {
      row.classList.toggle('selected', row.dataset.fingerprint === fingerprint);
    }
    const panel = $('error-detail');
    panel.dataset.state = 'loading';
    try {
      const detail = await api('/v1/stats/errors/detail', { ...params, fingerprint, limit: 10 });
      if (gen !== generation) return;
      panel.hidden = false;
      panel.dataset.fingerprint = fingerprint;
      const group = detail.group;
      if (!group) {
        $('error-detail-title').textContent = 'This error has no occurrence in the range';
        $('error-stack').textContent = '';
        $('error-occurrences').replaceChildren();
        panel.dataset.state = 'ready';
        return;
      }
      $('error-detail-title').textContent =
        (group.name ? group.name + ': ' : '') + group.message + ' — ' + fmt.int(group.count) + ' occurrences';
      $('error-stack').textContent = group.sample_stack || '(no stack trace was sent)';
      renderRows(
        $('error-occurrences'),
        detail.occurrences,
        [
          { field: 'timestamp', format: fmt.time },
          { field: 'page_url' },
          { field: 'browser' },
          { field: 'os' },
          { field: 'session_id' },
        ],
        'occurrence-row'
      );
      panel.dataset.occurrences = detail.occurrences.length;
      panel.dataset.state = 'ready';
    } catch (error) {
      panel.dataset.state = 'error';
      handleError(error);
    }
  }

  function perfCells(row) {
    const cells = [el('td', { class: 'num', 'data-field': 'samples', 'data-value': row.samples }, fmt.int(row.samples))];
    for (const [metric, short] of [['load_time', 'load'], ['dom_content_loaded', 'dcl']]) {
      for (const p of ['p50', 'p75', 'p95']) {
        const value = row[metric][p];
        cells.push(el('td', { class: 'num', 'data-field': short + '_' + p, 'data-value': value === null ? '' : value }, fmt.ms(value)));
      }
    }
    return cells;
  }

  function renderPerformance(perf) {
    $('perf-overall').replaceChildren(
      el('tr', { class: 'total', 'data-testid': 'perf-overall' }, el('td', {}, 'All pages'), ...perfCells(perf.overall))
    );
    if (!perf.pages.length) return emptyRow($('perf-pages'), 8, 'no performance events in this range');
    $('perf-pages').replaceChildren(
      ...perf.pages.map((row) =>
        el('tr', { 'data-testid': 'perf-row' }, el('td', { 'data-field': 'page_url', 'data-value': row.page_url }, row.page_url), ...perfCells(row))
      )
    );
  }

  function renderHealth(health) {
    const tenant = health.tenant;
    const worker = health.worker;
    $('health-minutes').textContent = tenant.events_per_minute.length;
    setFigure('health-events', tenant.events, fmt.int);
    setFigure('health-rate', tenant.avg_events_per_minute, fmt.dec);
    setFigure('health-lag', tenant.lag_ms.avg, (v) => (v === null || v === undefined ? '–' : fmt.ms(v) + ' ms'));
    setFigure('health-dead', worker.dead_lettered_total, fmt.int);
    setFigure('health-buffered', worker.sink_buffered_rows, fmt.int);
    drawChart($('health-chart'), tenant.events_per_minute, [{ key: 'events', label: 'events', color: '#18a37a' }], 'minute', {
      bars: true,
      height: 120,
      label: 'events stored per minute',
    });
    const reasons = Object.entries(worker.dead_lettered).map(([reason, events]) => ({ reason, events }));
    renderRows($('dead-letter-body'), reasons, [{ field: 'reason' }, { field: 'events', num: true, format: fmt.int }], 'dead-letter-row');
  }

  // -- refresh ---------------------------------------------------------------------------------
  function handleError(error) {
    if (error instanceof ApiError && error.status === 401) {
      localStorage.removeItem(STORAGE_KEY);
      showLogin('The read secret was refused. Enter a read secret (ingest keys cannot read).');
      return;
    }
    setStatus('error', error.message || String(error));
  }

  async function refresh() {
    const gen = ++generation;
    let range;
    try {
      range = currentRange();
    } catch (error) {
      handleError(error);
      return;
    }
    writeHash(range);
    const params = { from: new Date(range.from).toISOString(), to: new Date(range.to).toISOString(), ...filters(), ...bots() };
    const interval = $('interval').value;
    setStatus('loading', 'loading…');
    try {
      const [traffic, sessions, pages, referrers, errors, perf, health, ...breakdowns] = await Promise.all([
        api('/v1/stats/traffic', { ...params, interval }),
        api('/v1/stats/sessions', params),
        api('/v1/stats/pages', { ...params, limit: 10 }),
        api('/v1/stats/referrers', { ...params, limit: 10 }),
        api('/v1/stats/errors', { ...params, limit: 20 }),
        api('/v1/stats/performance', { ...params, limit: 10 }),
        api('/v1/stats/health', { minutes: 60 }),
        ...DIMENSIONS.map((by) => api('/v1/stats/breakdown', { ...params, by, limit: 8 })),
      ]);
      if (gen !== generation) return;
      renderTraffic(traffic);
      renderSessions(sessions);
      renderLists(pages, referrers, breakdowns);
      renderErrors(errors, params, gen);
      renderPerformance(perf);
      renderHealth(health);
      setStatus('ready', 'updated ' + new Date().toISOString().slice(11, 19) + 'Z');
    } catch (error) {
      if (gen === generation) handleError(error);
    }
  }

  // -- wiring ----------------------------------------------------------------------------------
  function start() {
    $('login-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const value = $('secret').value.trim();
      if (!value) return;
      // One cheap request checks the secret before it is kept or the dashboard is shown.
      setStatus('loading', 'checking…');
      try {
        await api('/v1/stats/health', { minutes: 1 }, value);
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) {
          showLogin('The read secret was refused. Enter a read secret (ingest keys cannot read).');
        } else {
          setStatus('error', error.message || String(error));
        }
        return;
      }
      localStorage.setItem(STORAGE_KEY, value);
      $('secret').value = '';
      showDashboard();
      refresh();
    });
    $('logout').addEventListener('click', () => {
      localStorage.removeItem(STORAGE_KEY);
      showLogin('');
    });
    $('controls').addEventListener('submit', (event) => {
      event.preventDefault();
      refresh();
    });
    $('preset').addEventListener('change', () => {
      if ($('preset').value !== 'custom') refresh();
    });
    $('include-bots').addEventListener('change', () => refresh());
    for (const id of ['from', 'to']) {
      $(id).addEventListener('change', () => {
        $('preset').value = 'custom';
      });
    }
    readHash();
    if (secret()) {
      showDashboard();
      refresh();
    } else {
      showLogin('');
    }
  }

  document.addEventListener('DOMContentLoaded', start);
})();
