// manifest.js: where in the YAML text a violation belongs. POST /manifests/parse answers, with
// the deployments read exactly as `husk apply` reads them, the line of every node by its path
// ("deployments.web.ports[0].published"); the API's 422 names fields inside one deployment
// ("ports[0].published"). Pure functions, unit-tested with node (tests/ui/test_client.mjs).

// "ports[0].published" -> ["ports", "[0]", "published"]
export function splitPath(path) {
  const out = [];
  for (const m of String(path).matchAll(/([^.[\]]+)|(\[\d+\])/g)) out.push(m[1] !== undefined ? m[1] : m[2]);
  return out;
}

export function joinPath(segments) {
  return segments.map((s, i) => (s.startsWith('[') || i === 0 ? s : '.' + s)).join('');
}

// The line of the field, or of its nearest ancestor written in the file (a missing field is
// reported at the mapping that lacks it); null when nothing of it is in the file.
export function lineOf(lines, prefix, field) {
  const segs = [...splitPath(prefix), ...(field ? splitPath(field) : [])];
  for (let n = segs.length; n > 0; n--) {
    const k = joinPath(segs.slice(0, n));
    if (lines && Object.prototype.hasOwnProperty.call(lines, k)) return { line: lines[k], exact: n === segs.length };
  }
  return null;
}

// A problem document's violations as {field, reason, line}: Ring's names or husk's.
export function violations(problem) {
  const list = (problem && Array.isArray(problem.violations) && problem.violations) || [];
  return list.map((v) => ({
    field: v.property_path || v.field || '',
    reason: v.message || v.reason || '',
    line: typeof v.line === 'number' ? v.line : null,
  }));
}

// Every violation of a deployment's 422, placed in the text: prefix is where the deployment
// sits ("deployments.web").
export function placeViolations(lines, prefix, problem) {
  return violations(problem).map((v) => {
    const at = v.line !== null ? { line: v.line, exact: true } : lineOf(lines, prefix, v.field);
    return { ...v, path: v.field ? `${prefix}.${v.field}` : prefix, line: at ? at.line : null, exact: at ? at.exact : false };
  });
}
