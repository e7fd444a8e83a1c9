// metrics.js: a few minutes of an instance's samples kept in the page, and the series the charts
// draw from them (rates from the cumulative counters). The samples are instance.metrics bodies
// (proto/schema.yaml) as GET /deployments/{id}/metrics answers them. Unit-tested with node.

export const KEEP_MS = 5 * 60 * 1000;

// The samples in an answer, whatever its envelope: a list, {samples: [...]}, {instances: [...]},
// or {instance_id: sample}.
export function samplesOf(answer) {
  if (Array.isArray(answer)) return answer.flatMap((x) => (x && x.instance_id ? [x] : samplesOf(x)));
  if (!answer || typeof answer !== 'object') return [];
  if (answer.instance_id) return [answer];
  for (const k of ['samples', 'instances', 'metrics', 'items']) if (answer[k]) return samplesOf(answer[k]);
  return Object.values(answer).flatMap((v) => (v && typeof v === 'object' ? samplesOf(v) : []));
}

// One sample's quantities, whichever names it has: the bus body's (instance.metrics: ts,
// cpu_percent, rss_bytes, network, disk_*_bytes, guest.mem_used_bytes) or GET
// /deployments/{id}/metrics's (Ring's: sampled_at, cpu_usage_percent, memory.usage_bytes,
// network, disk_io, guest.memory_used_bytes).
export function normalize(s) {
  const g = s.guest || {}, net = s.network || {}, disk = s.disk_io || {};
  const num = (...vs) => { for (const v of vs) if (typeof v === 'number' && Number.isFinite(v)) return v; return undefined; };
  return {
    ts: s.ts ?? s.sampled_at,
    cpu: num(s.cpu_percent, s.cpu_usage_percent) ?? 0,
    memory: num(g.mem_used_bytes, g.memory_used_bytes, s.memory && s.memory.usage_bytes, s.rss_bytes) ?? 0,
    net_rx: num(net.rx_bytes), net_tx: num(net.tx_bytes),
    disk_read: num(s.disk_read_bytes, disk.read_bytes), disk_write: num(s.disk_write_bytes, disk.write_bytes),
  };
}

// Sample time in ms: ts may be ns, us, ms or s since the epoch.
export function sampleMs(s, now = Date.now()) {
  const t = Number(s.ts ?? s.sampled_at);
  if (!Number.isFinite(t) || t <= 0) return now;
  if (t > 1e17) return t / 1e6;
  if (t > 1e14) return t / 1e3;
  if (t > 1e11) return t;
  return t * 1e3;
}

export class History {
  constructor(keepMs = KEEP_MS) {
    this.keepMs = keepMs;
    this.byInstance = new Map(); // instance id -> [{t, s}]
  }

  add(samples, now = Date.now()) {
    for (const s of samples) {
      const t = sampleMs(s, now);
      const list = this.byInstance.get(s.instance_id) || [];
      if (!list.length || list[list.length - 1].t < t) list.push({ t, s: normalize(s) });
      this.byInstance.set(s.instance_id, list);
    }
    const horizon = now - this.keepMs;
    for (const [id, list] of this.byInstance) {
      while (list.length && list[0].t < horizon) list.shift();
      if (!list.length) this.byInstance.delete(id);
    }
  }

  // {instance id: [[t, value], ...]} of one quantity: 'cpu', 'memory', 'net_rx', 'net_tx',
  // 'disk_read', 'disk_write' (the last four per second, from counter differences; a counter
  // that went back, a restart, gives no point).
  series(what) {
    const out = {};
    const counter = ['net_rx', 'net_tx', 'disk_read', 'disk_write'].includes(what);
    for (const [id, list] of this.byInstance) {
      const pts = [];
      for (let i = 0; i < list.length; i++) {
        const { t, s } = list[i];
        if (what === 'cpu' || what === 'memory') pts.push([t, s[what]]);
        else if (counter && i > 0) {
          const a = list[i - 1].s[what], b = s[what], dt = (t - list[i - 1].t) / 1000;
          if (typeof a === 'number' && typeof b === 'number' && b >= a && dt > 0) pts.push([t, (b - a) / dt]);
        }
      }
      out[id] = pts;
    }
    return out;
  }
}
