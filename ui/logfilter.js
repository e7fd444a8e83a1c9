// logfilter.js: which log lines the logs tab shows (level at least L, text search), decided in
// the page so that changing a filter neither reconnects nor loses lines. Unit-tested with node.

export const LEVELS = ['emerg', 'alert', 'crit', 'error', 'warning', 'notice', 'info', 'debug', 'unknown'];

export function levelRank(level) {
  const i = LEVELS.indexOf(String(level || 'info').toLowerCase());
  return i < 0 ? LEVELS.indexOf('info') : i;
}

export function matches(entry, { level = '', search = '' } = {}) {
  if (level && levelRank(entry.level) > levelRank(level)) return false;
  if (search) {
    const s = search.toLowerCase();
    if (!String(entry.message || '').toLowerCase().includes(s) && !String(entry.instance || '').toLowerCase().includes(s))
      return false;
  }
  return true;
}
